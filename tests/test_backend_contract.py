"""The backend contract (`clipaction.models.base`): every registered backend class has every
member its protocol declares, callers find what they use there, and a runtime is an object the
backend holds, swapped without patching methods onto the instance."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from clipaction.config import ModelConfig, SamplerConfig
from clipaction.models import BACKENDS, Backend, ClipBackend, FrameBackend, FrameFeatures, TorchRuntime, load_backend
from clipaction.models.base import Runtime, as_clip, as_frame
from clipaction.testing.footage import ColourBackend

PROTOCOLS = {"frame": FrameBackend, "clip": ClipBackend}


def _members(protocol: type) -> set[str]:
    """Every attribute and method `protocol` declares (its own and its bases')."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {name for name, value in vars(klass).items() if inspect.isfunction(value) and not name.startswith("_")}
    return names


def test_the_protocols_declare_what_callers_use():
    core = _members(Backend)
    assert {"config", "prepare_extraction", "fingerprint", "kind", "capabilities", "describe"} <= core
    assert _members(FrameBackend) - core == {"naflex", "runtime", "use_runtime"}
    assert _members(ClipBackend) - core == {"clip_frames", "frame_counts"}
    runtime_members = {"name", "fingerprint", "takes_bytes", "encode_pixels", "prepare_extraction", "describe"}
    assert runtime_members == _members(Runtime)


@pytest.mark.parametrize("family", sorted(BACKENDS.names()))
def test_every_registered_backend_class_has_its_protocols_members(family):
    backend_class = BACKENDS.get(family)
    protocol = PROTOCOLS[backend_class.kind]
    # instance attributes (set in __init__) are annotated on the class or set there: look at
    # the class for methods and properties, and at its __init__ for the rest
    source = "".join(inspect.getsource(klass) for klass in backend_class.__mro__ if klass is not object)
    for name in _members(protocol):
        assert hasattr(backend_class, name) or f"self.{name}" in source, f"{family} lacks {name}"


def test_loaded_backends_are_instances_of_their_protocol(tiny_model_dir, tmp_path):
    from clipaction.testing.tiny_video import build_random_video_model

    frame = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"))
    clip = load_backend(ModelConfig(name_or_path=str(build_random_video_model(tmp_path / "x", "xclip")), device="cpu"))
    assert isinstance(frame, FrameBackend) and isinstance(frame, Backend) and frame.kind == "frame"
    assert isinstance(clip, ClipBackend) and isinstance(clip, Backend) and clip.kind == "clip"
    assert as_frame(frame) is frame and as_clip(clip) is clip
    assert isinstance(frame.runtime, TorchRuntime) and isinstance(frame.runtime, Runtime)
    assert frame.config is not None and clip.config is not None
    with pytest.raises(TypeError):
        as_clip(frame)
    frame.prepare_extraction([], SamplerConfig())  # a no-op on torch, declared for every backend
    clip.prepare_extraction([], SamplerConfig())


def test_the_stand_in_backend_is_either_kind():
    frame, clip = ColourBackend(), ColourBackend(clip_frames=4)
    assert isinstance(frame, FrameBackend) and frame.kind == "frame"
    assert isinstance(clip, ClipBackend) and clip.kind == "clip" and clip.frame_counts == (4,)


class _RecordingRuntime:
    """A runtime that answers with fixed features and records what it was given."""

    name = "recording"
    fingerprint = {"name": "recording"}
    takes_bytes = False

    def __init__(self) -> None:
        self.prepared: list = []

    def encode_pixels(self, pixels: torch.Tensor) -> FrameFeatures:
        rows = torch.ones(len(pixels), 4) / 2
        return FrameFeatures(pooled=rows, embeds=rows)

    def prepare_extraction(self, paths, sampler) -> None:
        self.prepared.append(list(paths))

    def describe(self):
        return {"name": self.name}


def test_a_runtime_is_swapped_without_patching_the_instance(tiny_model_dir):
    backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"))
    before = dict(backend.fingerprint)
    frames = np.zeros((2, 48, 64, 3), dtype=np.uint8)
    torch_features = backend.encode_frames(frames)
    runtime = _RecordingRuntime()
    assert isinstance(runtime, Runtime)

    backend.use_runtime(runtime)
    assert backend.runtime is runtime
    assert backend.fingerprint == {**before, "runtime": runtime.fingerprint}
    assert torch.equal(backend.encode_frames(frames).embeds, torch.full((2, 4), 0.5))
    backend.prepare_extraction(["a.avi"], SamplerConfig())
    assert runtime.prepared == [["a.avi"]] and backend.describe()["runtime"] == {"name": "recording"}
    _assert_no_method_overrides(backend)

    backend.use_runtime(None)
    assert isinstance(backend.runtime, TorchRuntime) and backend.fingerprint == before
    torch.testing.assert_close(backend.encode_frames(frames).embeds, torch_features.embeds, atol=0, rtol=0)
    assert "runtime" not in backend.describe()
    _assert_no_method_overrides(backend)


def test_a_tuned_copy_runs_its_own_tower_on_torch(tiny_model_dir):
    backend = load_backend(ModelConfig(name_or_path=str(tiny_model_dir), device="cpu"))
    backend.use_runtime(_RecordingRuntime())
    tower = backend.image_tower()
    with torch.no_grad():
        for parameter in tower.parameters():
            parameter.mul_(0.5)
    tuned = backend.with_image_tower(tower, "halved")
    assert isinstance(tuned.runtime, TorchRuntime) and "runtime" not in tuned.fingerprint
    assert tuned.fingerprint["vision"] == "halved"
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    pixels = tuned.preprocess(frames)
    with torch.no_grad():
        expected = tower(pixels)
    torch.testing.assert_close(tuned.encode_pixels(pixels).embeds, expected / expected.norm(dim=-1, keepdim=True))
    assert isinstance(backend.runtime, _RecordingRuntime)  # the original keeps its runtime
    _assert_no_method_overrides(tuned)


def _assert_no_method_overrides(backend) -> None:
    """Nothing callable that the class defines is shadowed in the instance's __dict__."""
    overridden = [name for name, value in vars(backend).items() if callable(value) and hasattr(type(backend), name)]
    assert not overridden, overridden
    assert not {"encode_pixels", "prepare_extraction", "openvino"} & set(vars(backend))
