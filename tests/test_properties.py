"""Property tests (issue 5) that the per-module tests lack.

Already elsewhere: sampler indices in range, sorted, counted and centred for everyday metadata
(tests/test_sampling.py), and "any text parses or raises DatasetError" for split lists
(tests/test_ucf101.py). Here: samplers at extreme metadata; split lists, class indexes,
manifests and label maps from any bytes and from well-formed text with every decoration; the
UCF101 loader never leaving its data root; class-name styles.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from clipaction.config import DatasetConfig, SamplerConfig
from clipaction.data import DatasetError, load_dataset
from clipaction.data.names import (
    format_class_name,
    list_name_styles,
    load_label_map,
    name_exceptions,
    prompt_names,
    split_words,
)
from clipaction.data.ucf101 import read_class_index, read_split_list
from clipaction.video.sampling import VideoMeta, center_clip, sample_indices, window_length

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


# --- samplers at the edges ----------------------------------------------------------------------

extreme_metas = st.builds(
    VideoMeta,
    num_frames=st.integers(min_value=1, max_value=10**9),
    fps=st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False),
    # probe may report a duration that disagrees with the frame count: samplers must not care
    duration=st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=400, deadline=None)
@given(
    meta=extreme_metas,
    frames=st.integers(min_value=1, max_value=256),
    window=st.floats(min_value=1e-4, max_value=1e5, allow_nan=False, allow_infinity=False),
    name=st.sampled_from(["middle", "uniform", "center-clip"]),
)
def test_samplers_inside_sorted_counted_and_centred_at_extremes(meta, frames, window, name) -> None:
    idx = sample_indices(meta, SamplerConfig(name=name, frames=frames, window=window))
    assert len(idx) == (1 if name == "middle" else frames)
    assert idx == sorted(idx)
    assert all(type(i) is int and 0 <= i < meta.num_frames for i in idx)
    assert idx == sample_indices(meta, SamplerConfig(name=name, frames=frames, window=window))  # pure
    centre = (meta.num_frames - 1) / 2
    if name == "center-clip":
        step = window_length(meta, window) / frames
        assert abs(sum(idx) / len(idx) - centre) <= max(1.0, step)
    elif name == "middle":
        assert abs(idx[0] - centre) <= 0.5


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5000),
    frames=st.integers(min_value=1, max_value=64),
    fps=st.sampled_from([8.0, 15.0, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0]),
    window=st.floats(min_value=0.04, max_value=10.0),
)
def test_center_clip_window_is_symmetric(n, frames, fps, window) -> None:
    # Mirroring the indices about the video's centre gives the same set, up to flooring.
    idx = center_clip(VideoMeta.from_frames(n, fps), frames=frames, window=window)
    mirrored = sorted(n - 1 - i for i in idx)
    assert all(abs(a - b) <= 1 for a, b in zip(idx, mirrored))


# --- split lists and class indexes ---------------------------------------------------------------


def _content_lines(data: bytes) -> list[list[str]]:
    """The whitespace-split fields of each non-blank line (LF, CRLF or CR) of UTF-8 `data`."""
    text = data.decode("utf-8-sig")
    return [line.split() for line in re.split(r"\r\n|\r|\n", text) if line.split()]


@FAST
@given(data=st.binary(max_size=400))
@example(data=b"\xef\xbb\xbfArchery/v_1.avi 1\r\n\nBiking/v_2.avi\r  \nBiking/v_3.avi 02\n")
@example(data=b"1 Archery\r\n\n2 Biking\r03 Jump\n")
def test_split_list_and_class_index_from_any_bytes(scratch, data) -> None:
    # Either a one-line DatasetError, or a result that says what the bytes say.
    path = _write(scratch, "bytes.txt", data)
    try:
        entries = read_split_list(path)
    except DatasetError as err:
        assert str(err) and "\n" not in str(err)
    else:
        lines = _content_lines(data)  # the parse succeeded, so the bytes are UTF-8
        assert [path for path, _ in entries] == [fields[0] for fields in lines]
        assert [label for _, label in entries] == [int(f[1]) if len(f) == 2 else None for f in lines]
        assert all(label is None or label >= 1 for _, label in entries)
    try:
        names = read_class_index(path)
    except DatasetError as err:
        assert str(err) and "\n" not in str(err)
    else:
        lines = _content_lines(data)
        assert names and names == [fields[1] for fields in lines]
        assert [int(fields[0]) for fields in lines] == list(range(1, len(names) + 1))
        assert len({name.casefold() for name in names}) == len(names)


segment = st.text(alphabet=string.ascii_letters + string.digits + "_-.()'&+é三", min_size=1, max_size=12)
entry_path = (
    st.lists(segment, min_size=2, max_size=3)
    .map("/".join)
    .filter(lambda p: not p.startswith("/") and all(part not in ("", ".", "..") for part in p.split("/")))
)
blank = st.sampled_from(["", " ", "\t", "  \t "])
pad = st.sampled_from(["", " ", "  ", "\t", " \t"])
newline = st.sampled_from(["\n", "\r\n", "\r"])


@FAST
@given(
    entries=st.lists(st.tuples(entry_path, st.one_of(st.none(), st.integers(1, 10**6))), max_size=12),
    decorations=st.data(),
)
def test_split_list_round_trip_through_crlf_blanks_and_spaces(scratch, entries, decorations) -> None:
    lines: list[str] = []
    for listed, label in entries:
        lines += decorations.draw(st.lists(blank, max_size=2))
        sep = decorations.draw(st.sampled_from([" ", "\t", "  "]))
        body = listed if label is None else f"{listed}{sep}{label}"
        lines.append(decorations.draw(pad) + body + decorations.draw(pad))
    eol = decorations.draw(newline)
    bom = decorations.draw(st.sampled_from(["", "\ufeff"]))
    path = _write(scratch, "list.txt", bom + eol.join(lines) + decorations.draw(st.sampled_from(["", eol])))
    assert read_split_list(path) == entries


@FAST
@given(
    names=st.lists(
        st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10), max_size=10, unique_by=str.casefold
    ),
    eol=newline,
)
def test_class_index_round_trip(scratch, names, eol) -> None:
    path = _write(scratch, "classInd.txt", eol.join(f"{i} {n}  " for i, n in enumerate(names, 1)) + eol)
    if names:
        assert read_class_index(path) == names
    else:
        with pytest.raises(DatasetError, match="no classes"):
            read_class_index(path)


# --- the UCF101 loader never leaves its data root -------------------------------------------------

UCF_CLASSES = ["Archery", "Basketball"]


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ucf-prop")
    root, splits = base / "UCF-101", base / "splits"
    for c in UCF_CLASSES:
        (root / c).mkdir(parents=True)
        for k in (1, 2):
            (root / c / f"v_{c}_g01_c0{k}.avi").touch()
    (base / "secret.avi").touch()
    (root / "Archery" / "..avi").touch()
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    (splits / "trainlist01.txt").write_text("")
    return root, splits


hostile_part = st.sampled_from(
    [
        "Archery",
        "archery",
        "Basketball",
        "..",
        ".",
        "",
        "~",
        "C:",
        "secret.avi",
        "v_Archery_g01_c01.avi",
        "V_ARCHERY_G01_C02.AVI",
        "v_Basketball_g01_c01.avi",
        "..avi",
        "UCF-101",
        "x\\..\\..",
        "%2e%2e",
    ]
)
hostile_entry = (
    st.tuples(st.sampled_from(["", "/", "\\", "./", "../"]), st.lists(hostile_part, max_size=5))
    .map(lambda t: t[0] + "/".join(t[1]))
    .filter(lambda e: e.strip() and not any(ch.isspace() for ch in e))
)


@FAST
@given(entries=st.lists(hostile_entry, max_size=10))
def test_ucf101_loader_never_leaves_the_data_root(ucf_tree, entries) -> None:
    root, splits = ucf_tree
    (splits / "testlist01.txt").write_text("\r\n".join(entries) + "\r\n")
    config = DatasetConfig(name="ucf101", root=str(root), splits_dir=str(splits), num_classes=None)
    try:
        ds = load_dataset(config)
    except DatasetError as err:
        assert "not in" in str(err)  # an entry naming a class folder classInd.txt lacks
        return
    real_root = os.path.realpath(root)
    for record in ds.records:
        assert os.path.realpath(record.path).startswith(real_root + os.sep)
        assert record.path.is_file() and ds.classes[record.label] == record.class_name
    assert len({r.path for r in ds.records}) == len(ds.records)  # named twice, kept once
    for missing in ds.missing:
        assert missing.error == "not found" or missing.error.startswith(("refused", "ambiguous"))
    refused = {m.path for m in ds.missing if m.error.startswith("refused")}
    for entry in entries:
        if ".." in entry.replace("\\", "/").split("/"):
            assert entry in refused


# --- manifests and label maps -------------------------------------------------------------------


@pytest.mark.slow
@FAST
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_manifest_from_any_bytes_parses_or_raises_dataset_error(scratch, data) -> None:
    manifest = _write(scratch, "manifest.csv", data)
    try:
        ds = load_dataset(DatasetConfig(name="folder", manifest=str(manifest), num_classes=None))
    except DatasetError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert all(r.path.is_file() and 0 <= r.label < len(ds.classes) for r in ds.records)


cell = st.text(alphabet=string.ascii_letters + string.digits + ' ,"._/-é', max_size=10)


@FAST
@given(
    rows=st.lists(st.lists(cell, min_size=1, max_size=4), max_size=8),
    header=st.booleans(),
    subset=st.sampled_from(["train", "test", "all"]),
)
def test_manifest_rows_parse_or_raise_dataset_error(scratch, rows, header, subset) -> None:
    import csv
    import io

    (scratch / "clips").mkdir(exist_ok=True)
    (scratch / "clips" / "a.mp4").touch()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(["path", "label", "split"])
    writer.writerows(rows)
    manifest = _write(scratch, "rows.csv", buffer.getvalue())
    try:
        ds = load_dataset(DatasetConfig(name="folder", manifest=str(manifest), subset=subset, num_classes=None))
    except DatasetError as err:
        assert "line" in str(err) or "no videos" in str(err)
        return
    assert list(ds.classes) == sorted(set(ds.classes))
    assert all(r.class_name == ds.classes[r.label] and r.path.is_file() for r in ds.records)


@FAST
@given(text=st.text(max_size=200), suffix=st.sampled_from([".csv", ".json", ".txt"]))
def test_label_map_from_any_text_parses_or_raises_dataset_error(scratch, text, suffix) -> None:
    path = _write(scratch, f"labels{suffix}", text)
    try:
        mapping = load_label_map(path)
    except DatasetError as err:
        assert str(err)
        return
    assert mapping and all(k == k.strip() and k and v == v.strip() and v for k, v in mapping.items())


# --- class-name styles ----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=40))
# Found by searching: a capital with no lowercase form, a symbol with one, a decomposed accent,
# a capital whose lowercase gains a combining dot.
@example("A\U0001d56c")
@example("\u24b6")
@example("Cafe\u0301Ole")
@example("\u0130stanbulWalk")
def test_name_styles_never_crash_and_spaced_is_lowercase_and_idempotent(name) -> None:
    for style in list_name_styles():
        assert isinstance(format_class_name(name, style), str)
    assert format_class_name(name, "raw") == name
    spaced = format_class_name(name, "spaced")
    assert spaced == spaced.lower()
    assert format_class_name(spaced, "spaced") == spaced
    if any(ch.isalnum() for ch in name):
        assert spaced.strip()  # a prompt never loses a name that has letters or digits


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=40))
def test_split_words_keeps_every_letter_and_digit_in_order(name) -> None:
    words = split_words(name)
    assert all(words)
    assert [c for c in "".join(words) if c.isalnum()] == [c for c in name if c.isalnum()]


# Two letters at least: CamelCase cannot tell "AA" (two words) from an acronym.
lower_word = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=8)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(lower_word, min_size=1, max_size=5), join=st.sampled_from(["camel", "snake", "kebab"]))
def test_spaced_undoes_camel_snake_and_kebab_case(words, join) -> None:
    name = {"camel": "".join(w.capitalize() for w in words), "snake": "_".join(words), "kebab": "-".join(words)}[join]
    assume(name.casefold() not in {k.casefold() for k in name_exceptions()})
    assert format_class_name(name, "spaced") == " ".join(words)


@settings(max_examples=200, deadline=None)
@given(
    classes=st.lists(st.text(min_size=1, max_size=15), min_size=1, max_size=6), style=st.sampled_from(["raw", "spaced"])
)
def test_prompt_names_one_text_per_class(classes, style) -> None:
    texts = prompt_names(classes, style)
    assert len(texts) == len(classes) and all(isinstance(t, str) for t in texts)
    if style == "raw":
        assert texts == classes
