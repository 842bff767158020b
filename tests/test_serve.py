"""`clipaction serve` without a server: labels, presets, the folder picker's rule, the browser
preview, the CLI flags and the missing-extra message (the page itself: test_serve_page.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import pytest

from clipaction.errors import ClipactionError, ConfigError, DataError
from clipaction.serve.picker import list_videos, resolve_choice
from clipaction.serve.presets import list_presets, parse_labels, preset_labels
from clipaction.serve.preview import browser_playable, make_preview
from clipaction.serve.settings import ServeConfig
from clipaction.testing.videos import SyntheticVideo, write_video


def test_labels_one_per_line_or_comma_separated():
    assert parse_labels("riding a bike, juggling ,swimming") == ["riding a bike", "juggling", "swimming"]
    assert parse_labels("riding a bike\n\n  eating, then sleeping \nswimming\n") == [
        "riding a bike",
        "eating, then sleeping",
        "swimming",
    ]
    with pytest.raises(ConfigError, match="at least one label"):
        parse_labels(" \n ,, ")
    with pytest.raises(ConfigError, match="'juggling' given more than once"):
        parse_labels("juggling\nswimming\njuggling")


def test_the_page_says_how_to_read_the_probabilities():
    from clipaction.serve.analysis import score_note

    assert "sum to 100%" in score_note("softmax", 3) and "3 labels" in score_note("softmax", 3)
    assert "independent" in score_note("sigmoid", 3)


def test_presets_are_the_dataset_classes_in_words():
    presets = list_presets()
    study, ucf, hmdb = (preset_labels(name) for name in presets)
    assert len(study) == 15 and len(ucf) == 101 and len(hmdb) == 51
    assert study == ucf[:15]
    assert study[0] == "apply eye makeup" and study[-1] == "body weight squats"
    assert "brush hair" in hmdb
    for labels in (study, ucf, hmdb):
        assert parse_labels("\n".join(labels)) == labels  # usable as typed labels, none twice
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_labels("Kinetics")


def test_the_class_files_match_the_official_lists(shared_dir):
    from importlib import resources

    from clipaction.data.ucf101 import read_class_index

    shipped = resources.files("clipaction.data").joinpath("ucf101_classes.txt").read_text().split()
    assert shipped == read_class_index(shared_dir / "ucf101_splits" / "classInd.txt")
    hmdb = resources.files("clipaction.data").joinpath("hmdb51_classes.txt").read_text().split()
    assert hmdb == sorted({p.name.rsplit("_test_split", 1)[0] for p in (shared_dir / "hmdb51_splits").iterdir()})


@pytest.fixture()
def picker_tree(tmp_path):
    """root/ with videos, plus links that lead out of it and a secret outside."""
    root = tmp_path / "videos"
    outside = tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for path in (root / "a.mp4", root / "sub" / "b.avi", outside / "secret.mp4", root / ".hidden.mp4"):
        path.write_bytes(b"x")
    (root / "notes.txt").write_text("not a video")
    (outside / "passwords.txt").write_text("nope")
    os.symlink(outside / "secret.mp4", root / "link-out.mp4")  # a file link leaving root
    os.symlink(outside, root / "dir-out")  # a folder link leaving root
    os.symlink(outside / "passwords.txt", root / "sneaky.mp4")  # a video name for a non-video
    os.symlink(root / "a.mp4", root / "sub" / "alias.mp4")  # a link that stays inside: fine
    return root, outside


def test_picker_lists_only_videos_inside_the_folder(picker_tree):
    root, _ = picker_tree
    assert list_videos(root) == ["a.mp4", "sub/alias.mp4", "sub/b.avi"]


def test_picker_refuses_every_way_out(picker_tree):
    root, outside = picker_tree
    assert resolve_choice(root, "sub/b.avi") == (root / "sub" / "b.avi").resolve()
    assert resolve_choice(root, "sub/alias.mp4") == (root / "a.mp4").resolve()
    refused = [
        "../private/secret.mp4",
        "sub/../../private/secret.mp4",
        "sub/../a.mp4",  # '..' is refused even when it would stay inside
        str(outside / "secret.mp4"),
        str((root / "a.mp4").resolve()),  # absolute paths are refused even inside
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "..\\private\\secret.mp4",
        "link-out.mp4",
        "dir-out/secret.mp4",
        "sneaky.mp4",
        ".hidden.mp4",
        "./a.mp4",
        "notes.txt",
        "missing.mp4",
        "a.mp4\x00.txt",
        "",
    ]
    for choice in refused:
        with pytest.raises(DataError) as caught:
            resolve_choice(root, choice)
        assert caught.value.setting == "video", choice


def test_preview_is_h264_mp4_when_the_source_is_not_playable(tmp_path):
    avi = write_video(tmp_path / "clip.avi", SyntheticVideo(codec="mpeg4", width=80, height=60, num_frames=30))
    mp4 = write_video(tmp_path / "clip.mp4", SyntheticVideo(codec="h264", num_frames=30))
    assert not browser_playable(avi)  # MPEG-4 Part 2 in AVI, as UCF101 ships
    assert browser_playable(mp4)
    preview = make_preview(avi, tmp_path / "preview.mp4")
    assert browser_playable(preview)
    with av.open(str(preview)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.frames == 30
        assert (stream.codec_context.width, stream.codec_context.height) == (80, 60)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(DataError, match="cannot read junk.avi as a video"):
        make_preview(junk, tmp_path / "junk.mp4")
    assert not (tmp_path / "junk.mp4").exists() and not (tmp_path / ".tmp-junk.mp4").exists()


def test_serve_flags_default_to_serve_config():
    import argparse

    from clipaction.cli.parser import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = action.choices["serve"].parse_args([])
    config = ServeConfig()
    assert (args.host, args.port, args.max_upload_mb, args.prompts) == (
        config.host,
        config.port,
        config.max_upload_mb,
        config.templates,
    )
    assert config.host == "127.0.0.1" and config.port == 7860 and config.max_upload_mb == 500
    assert not config.public and ServeConfig(host="0.0.0.0").public
    with pytest.raises(ConfigError):
        ServeConfig(max_upload_mb=0)


def test_listening_beyond_this_machine_warns():
    pytest.importorskip("gradio", reason='the ui extra is not installed (pip install -e ".[ui]")')
    from clipaction.serve.app import exposure_warning

    assert exposure_warning(ServeConfig()) is None
    assert exposure_warning(ServeConfig(host="localhost")) is None
    warning = exposure_warning(ServeConfig(host="0.0.0.0", port=8000))
    assert "anyone who can reach port 8000" in warning


@pytest.mark.subprocess
def test_other_commands_do_not_import_gradio():
    code = (
        "import sys; from clipaction.cli.parser import build_parser; build_parser().parse_args(['serve']); "
        "import clipaction.serve, clipaction.cli.commands; print('gradio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_extra_is_one_line_with_the_install_command(monkeypatch, capsys, tiny_model_dir):
    from clipaction.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    monkeypatch.delitem(sys.modules, "clipaction.serve.app", raising=False)
    with pytest.raises(ClipactionError, match=r'pip install -e "\.\[ui\]"'):
        import clipaction.serve.app  # noqa: F401
    assert main(["serve", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'clipaction: error: the web page needs the ui extra: pip install -e ".[ui]"'
