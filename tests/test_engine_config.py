"""The engine settings: validation naming the setting, flags on every command that extracts,
and the checks made before any Ray work (no Ray instance is started here)."""

from __future__ import annotations

import importlib.util

import pytest

from clipaction.cli import main
from clipaction.config import EngineConfig, SamplerConfig
from clipaction.errors import ConfigError
from clipaction.features.engines import extract


@pytest.mark.parametrize(
    "changes, setting",
    [({"name": "spark"}, "engine.name"), ({"workers": 0}, "engine.workers"), ({"gpus_per_worker": -1.0}, "engine.gpus_per_worker"),
     ({"cpus_per_worker": 0.0}, "engine.cpus_per_worker"), ({"threads_per_worker": 0}, "engine.threads_per_worker")],
)  # fmt: skip
def test_bad_engine_settings_name_the_setting(changes, setting):
    with pytest.raises(ConfigError) as error:
        EngineConfig(**changes)
    assert error.value.setting == setting


def test_run_and_benchmark_take_the_engine_flags_into_their_config(capsys):
    assert main(["run", "--engine", "ray", "--ray-workers", "3", "--ray-gpus-per-worker", "0.5", "--print-config"]) == 0
    text = capsys.readouterr().out
    engine = text[text.index("[engine]") :]
    assert 'name = "ray"' in engine and "workers = 3" in engine and "gpus_per_worker = 0.5" in engine
    assert main(["benchmark", "--engine", "ray", "--ray-address", "ray://head:10001", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert 'name = "ray"' in text and 'ray_address = "ray://head:10001"' in text
    assert main(["run", "--ray-workers", "many", "--print-config"]) == 2
    assert "--ray-workers" in capsys.readouterr().err


def test_the_ray_engine_needs_a_cache_and_the_models_own_settings(tiny_backend, tiny_model_dir):
    sampler = SamplerConfig(name="middle")
    with pytest.raises(ConfigError, match="cache"):
        extract([], tiny_backend, sampler, None, engine=EngineConfig(name="ray"))
    if importlib.util.find_spec("ray") is None:
        with pytest.raises(ConfigError, match="pip install"):
            extract([], tiny_backend, sampler, object(), engine=EngineConfig(name="ray"))
        return
    from clipaction.config import ModelConfig
    from clipaction.features.engines.ray_engine import actor_count, fill_cache

    # a backend the workers cannot rebuild from its settings (here: other weights) is refused
    # before anything runs
    other = ModelConfig(name_or_path=str(tiny_model_dir), precision="int8")
    with pytest.raises(ConfigError) as error:
        fill_cache([], tiny_backend, other, sampler, None, engine=EngineConfig(name="ray"))
    assert error.value.setting == "engine.name"
    assert actor_count(EngineConfig(name="ray"), {"CPU": 2.0}) == 1
    assert actor_count(EngineConfig(name="ray"), {"CPU": 64.0, "GPU": 8.0}) == 32  # 1 CPU each + 1 for decoding
    assert actor_count(EngineConfig(name="ray", gpus_per_worker=0.5), {"CPU": 64.0, "GPU": 8.0}) == 16
    assert actor_count(EngineConfig(name="ray", workers=5), {"CPU": 2.0}) == 5
    with pytest.raises(ConfigError) as error:
        actor_count(EngineConfig(name="ray", gpus_per_worker=1.0), {"CPU": 2.0})
    assert error.value.setting == "engine.gpus_per_worker"
