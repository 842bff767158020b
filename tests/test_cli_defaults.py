"""One source of defaults: every flag that sets a config field defaults to that field's own
default, for every command, and the registries feed the choices."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from clipaction.cli.parser import SETTING_FLAGS, build_parser
from clipaction.config import BenchConfig, ZeroShotConfig


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _config_default(setting: str):
    value = ZeroShotConfig()
    for part in setting.split("."):
        value = getattr(value, part)
    return value


# `run` and `benchmark` flags default to None on purpose: they override a config file.
COMMANDS_WITH_CONFIG_DEFAULTS = ("zeroshot", "extract", "predict")


@pytest.mark.parametrize("command", COMMANDS_WITH_CONFIG_DEFAULTS)
def test_every_config_flag_defaults_to_the_dataclass_default(command):
    parser = _subparsers()[command]
    checked = 0
    for action in parser._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        setting = next((s for s, f in SETTING_FLAGS.items() if f == flag), None)
        if setting is None or setting in ("labels", "out", "strict"):
            continue
        if setting == "dataset.num_classes":
            # a documented exception: it depends on --dataset (ucf101: 15; others: all)
            assert action.default is None and "15" in action.help
            continue
        if setting == "sampler.frames":
            # the other: it depends on the model (a clip model's own count; else the field's)
            assert action.default is None and f"default {_config_default(setting)}" in action.help
            continue
        try:
            expected = _config_default(setting)
        except AttributeError:  # a setting this command's config does not hold
            continue
        if expected == ():  # an empty tuple (no classes) is the flag left out
            expected = None
        assert action.default == expected, f"{command} {flag}: {action.default!r} != {setting} {expected!r}"
        checked += 1
    assert checked >= 8  # the walk really visited the sampler, model and prompt flags


def test_bench_flags_default_to_bench_config():
    parser = _subparsers()["bench"]
    defaults = {a.dest: a.default for a in parser._actions}
    config = BenchConfig()
    assert defaults["videos"] == config.videos and defaults["workers"] == config.workers
    assert defaults["device"] == config.device
    assert defaults["batch_sizes"] == ",".join(map(str, config.batch_sizes))


def test_choices_come_from_the_registries():
    from clipaction.data import list_datasets
    from clipaction.video.sampling import list_samplers

    parser = _subparsers()["zeroshot"]
    choices = {a.dest: a.choices for a in parser._actions if a.choices}
    assert list(choices["sampler"]) == list_samplers()
    assert list(choices["dataset"]) == list_datasets()


def test_a_registered_sampler_is_usable_everywhere_without_other_edits(monkeypatch):
    """Adding a sampler is one function and its registration: the config accepts it, its
    cache fields and name follow from `uses`, and the CLI offers it."""
    from clipaction.config import SamplerConfig
    from clipaction.video import sampling

    monkeypatch.setattr(sampling.SAMPLERS, "_items", dict(sampling.SAMPLERS._items))

    @sampling.register_sampler("first-n", uses=("frames",))
    def first_n(meta, *, frames, window=0.0, clips=1):
        """The first `frames` frames."""
        return [min(i, meta.num_frames - 1) for i in range(frames)]

    config = SamplerConfig(name="first-n", frames=4)
    assert config.cache_fields() == {"name": "first-n", "frames": 4}
    assert config.label == "first-n-4" and config.frames_per_video == 4
    assert sampling.sample_indices(sampling.VideoMeta.from_frames(10, 25), config) == [0, 1, 2, 3]
    help_text = _subparsers()["zeroshot"].format_help()
    assert "first-n" in help_text and "The first `frames` frames." in help_text
    assert dataclasses.replace(config, window=9.0).cache_fields() == config.cache_fields()
