"""Few-shot adaptation methods on generated features with known answers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from clipaction.adapt.linear_probe import LinearProbeClassifier
from clipaction.adapt.methods import (
    AdaptedClassifier,
    FewShotData,
    MethodSettings,
    fit_method,
    group_accuracy,
    holdout_split,
    list_methods,
    pick_best,
    video_embeddings,
)
from clipaction.adapt.projection import video_logits
from clipaction.config import TrainSettings

SCALE = 100.0
FAST = MethodSettings(
    projection=TrainSettings(lr=1e-2, epochs=30, batch_size=8),
    probe=TrainSettings(lr=1e-2, epochs=30, batch_size=8, weight_decay=0.0),
    tip_f=TrainSettings(lr=1e-2, epochs=20, batch_size=8, weight_decay=0.0),
)


@dataclass
class World:
    """C classes whose videos, through CLIP's projection, lean towards the NEXT class's text
    (so zero-shot is nearly always wrong) while carrying a class signal orthogonal to every
    text, and more signal in dimensions the projection ignores: separable for every method."""

    text: torch.Tensor  # (C, E) normalised
    projection: torch.Tensor  # (E, D) = [I_E | 0]
    centres: np.ndarray  # (C, D)
    noise: float

    def videos(self, per_class: int, seed: int, frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        labels = np.repeat(np.arange(len(self.centres)), per_class)
        shape = (len(labels), frames, self.centres.shape[1])
        pooled = self.centres[labels][:, None, :] + self.noise * rng.standard_normal(shape)
        return torch.tensor(pooled, dtype=torch.float32), torch.tensor(labels)

    def data(self, per_class: int = 8, seed: int = 1) -> FewShotData:
        pooled, labels = self.videos(per_class, seed)
        return FewShotData(pooled, labels, self.text, self.projection, SCALE)

    def zero_shot(self, pooled: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return video_logits(pooled @ self.projection.T, self.text if text is None else text, SCALE)


def make_world(
    n_classes: int = 4, embed: int = 16, extra: int = 8, lean: float = 0.1, noise: float = 0.2, seed: int = 0
) -> World:
    """`lean` sets how far videos lean towards the wrong text: 0.1 gives zero-shot margins of a
    few logits, as CLIP's are."""
    rng = np.random.default_rng(seed)
    half = embed // 2
    text = np.zeros((n_classes, embed))
    text[:, :half] = rng.standard_normal((n_classes, half))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    centres = np.zeros((n_classes, embed + extra))
    centres[:, :embed] = lean * np.roll(text, -1, axis=0)
    centres[:, half:] += rng.standard_normal((n_classes, half + extra))
    projection = np.hstack([np.eye(embed), np.zeros((embed, extra))])
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    return World(as_tensor(text), as_tensor(projection), centres, noise)


def other_texts(world: World, count: int = 3, seed: int = 7) -> torch.Tensor:
    """(count, E) normalised texts of classes outside training."""
    text = torch.tensor(np.random.default_rng(seed).standard_normal((count, world.text.shape[1])), dtype=torch.float32)
    return text / text.norm(dim=1, keepdim=True)


def acc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float((scores.argmax(1) == labels).float().mean())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: a second intra-op thread only adds synchronisation, which on a
    busy 2-core machine made this file several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def fitted(world):
    """Each method fitted once on the default shots (the fits are the slow part)."""
    cache: dict[str, AdaptedClassifier] = {}

    def get(name: str) -> AdaptedClassifier:
        if name not in cache:
            cache[name] = fit_method(name, world.data(), FAST)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def test_videos(world):
    return world.videos(per_class=10, seed=99)


def test_generated_world_fools_zero_shot(world, test_videos):
    pooled, labels = test_videos
    assert acc(world.zero_shot(pooled), labels) < 0.25


# -- registry ------------------------------------------------------------------------------


def test_registry_lists_the_five_methods():
    assert list_methods() == ["linear-probe", "projection", "tip-adapter", "tip-adapter-f", "wise-ft"]
    assert list_methods("tip-*") == ["tip-adapter", "tip-adapter-f"]


def test_registry_holds_exactly_the_methods_a_config_accepts():
    from clipaction.config import ADAPT_METHODS

    assert sorted(ADAPT_METHODS) == list_methods()


def test_shared_names_are_re_exported_from_methods():
    from clipaction.adapt import base, methods

    for name in (
        "FewShotData",
        "AdaptedClassifier",
        "ProjectionClassifier",
        "match_classes",
        "ADAPTATION_METHODS",
        "holdout_split",
        "accuracy",
        "group_accuracy",
        "pick_best",
        "video_embeddings",
    ):
        assert getattr(methods, name) is getattr(base, name), name


def test_unknown_method_names_the_valid_ones(world):
    with pytest.raises(ValueError, match="unknown adaptation method 'lora'.*linear-probe, projection, tip-adapter"):
        fit_method("lora", world.data())


def test_settings_and_data_are_checked(world):
    with pytest.raises(ValueError, match="wise-ft alphas"):
        MethodSettings(wise_alphas=(0.0, 1.5))
    with pytest.raises(ValueError, match="holdout_fraction"):
        MethodSettings(holdout_fraction=1.0)
    with pytest.raises(ValueError, match="labels must index"):
        FewShotData(world.data().pooled, torch.full((32,), 9), world.text, world.projection, SCALE)


# -- shared helpers ------------------------------------------------------------------------


def test_holdout_split_is_stratified_seeded_and_keeps_a_shot_per_class():
    labels = torch.tensor([0] * 8 + [1] * 4 + [2] * 1)
    fit, held = holdout_split(labels, 0.25, seed=0)
    assert sorted(fit.tolist() + held.tolist()) == list(range(13))
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 1, 0]
    assert set(labels[fit].tolist()) == {0, 1, 2}
    assert torch.equal(held, holdout_split(labels, 0.25, seed=0)[1])
    assert not torch.equal(held, holdout_split(labels, 0.25, seed=1)[1])
    assert holdout_split(torch.tensor([0, 1, 2]), 0.25, seed=0) is None


def test_pick_best_breaks_ties_by_preference():
    assert pick_best([0.0, 0.1, 0.2], [0.5, 0.9, 0.9], prefer=lambda a: a) == 0.1
    assert pick_best([0.0, 0.1, 0.2], [0.5, 0.9, 0.9], prefer=lambda a: -a) == 0.2


def test_group_accuracy_splits_trained_and_other_classes():
    scores = torch.eye(4)[[0, 1, 0, 3]]
    result = group_accuracy(scores, torch.tensor([0, 1, 2, 3]), torch.tensor([True, True, False, False]))
    assert result == {"overall": 0.75, "trained": 1.0, "others": 0.5}
    assert math.isnan(group_accuracy(scores[:2], torch.tensor([0, 1]), torch.tensor([True] * 4))["others"])


def test_video_embeddings_reproduce_video_logits_exactly(world, test_videos):
    pooled, _ = test_videos
    assert torch.equal(SCALE * video_embeddings(pooled, world.projection) @ world.text.T, world.zero_shot(pooled))


# -- projection ----------------------------------------------------------------------------


def test_projection_method_changes_the_projection_and_learns(world, test_videos, fitted):
    classifier = fitted("projection")
    pooled, labels = test_videos
    assert classifier.changes_projection
    assert acc(classifier.scores(pooled, world.text), labels) > acc(world.zero_shot(pooled), labels) + 0.5
    assert classifier.info["loss_curve"][-1] < classifier.info["loss_curve"][0]


# -- linear probe --------------------------------------------------------------------------


def test_linear_probe_before_training_is_zero_shot_exactly(world, test_videos):
    untrained = LinearProbeClassifier.zero_shot(world.data())
    pooled, _ = test_videos
    assert torch.equal(untrained.scores(pooled, world.text), world.zero_shot(pooled))


def test_linear_probe_learns_and_records_the_chosen_weight_decay(world, test_videos, fitted):
    classifier = fitted("linear-probe")
    pooled, labels = test_videos
    assert acc(classifier.scores(pooled, world.text), labels) > acc(world.zero_shot(pooled), labels) + 0.5
    assert classifier.info["weight_decay"] in FAST.probe_weight_decays
    assert [s["weight_decay"] for s in classifier.info["selection"]] == list(FAST.probe_weight_decays)
    assert classifier.info["selected_on"].startswith("held-out shots (8 of 32)")
    assert not classifier.changes_projection and torch.equal(classifier.projection, world.projection)


def test_linear_probe_scores_other_classes_zero_shot(world, test_videos, fitted):
    classifier = fitted("linear-probe")
    pooled, _ = test_videos
    others = other_texts(world)
    mixed = torch.cat([others[:1], world.text, others[1:]])
    scores = classifier.scores(pooled, mixed)
    assert torch.allclose(scores[:, [0, 5, 6]], world.zero_shot(pooled, others), atol=1e-4)
    assert torch.allclose(scores[:, 1:5], classifier.scores(pooled, world.text), atol=1e-4)
    assert classifier.trained_columns(mixed).tolist() == [False, True, True, True, True, False, False]


def test_linear_probe_without_a_held_out_shot_uses_the_fallback(world):
    single = world.data(per_class=1)
    classifier = fit_method("linear-probe", single, FAST)
    assert classifier.info["weight_decay"] == FAST.probe.weight_decay
    assert classifier.info["selected_on"].startswith("fallback")


# -- wise-ft -------------------------------------------------------------------------------


def test_wise_ft_ends_are_zero_shot_and_the_fine_tuned_projection(world, test_videos, fitted):
    classifier = fitted("wise-ft")
    projection_only = fitted("projection")
    pooled, _ = test_videos
    assert torch.equal(classifier.at(0.0).scores(pooled, world.text), world.zero_shot(pooled))
    assert not classifier.at(0.0).changes_projection
    assert torch.equal(classifier.at(1.0).projection, projection_only.projection)
    assert torch.equal(classifier.at(1.0).scores(pooled, world.text), projection_only.scores(pooled, world.text))
    middle = classifier.at(0.3).projection
    assert torch.allclose(middle, 0.7 * world.projection + 0.3 * projection_only.projection)


def test_wise_ft_curve_and_held_out_alpha(world, test_videos, fitted):
    classifier = fitted("wise-ft")
    pooled, labels = test_videos
    others = other_texts(world)
    curve = classifier.curve(pooled, labels, world.text)
    assert [round(p["alpha"], 6) for p in curve] == [round(i / 10, 6) for i in range(11)]
    assert set(curve[0]) == {"alpha", "overall", "trained", "others"}
    assert curve[0]["trained"] == acc(world.zero_shot(pooled), labels) and curve[-1]["trained"] > 0.8
    assert math.isnan(curve[0]["others"])  # every test video is of a trained class
    # Scored among classes outside training too: the same line, their columns now compete.
    wider = classifier.curve(pooled, labels, torch.cat([world.text, others]))
    assert len(wider) == 11 and all(p["overall"] == p["trained"] for p in wider)
    info = classifier.info
    assert info["alpha"] in FAST.wise_alphas and classifier.alpha == info["alpha"]
    best = max(s["heldout_accuracy"] for s in info["selection"])
    assert info["alpha"] == min(s["alpha"] for s in info["selection"] if s["heldout_accuracy"] == best)
    assert torch.equal(classifier.projection, classifier.at(info["alpha"]).projection)
    assert classifier.changes_projection == (info["alpha"] > 0)


# -- tip-adapter ---------------------------------------------------------------------------


def test_tip_adapter_with_alpha_zero_is_zero_shot(world, test_videos, fitted):
    classifier = fitted("tip-adapter").with_params(alpha=0.0)
    pooled, _ = test_videos
    assert torch.equal(classifier.scores(pooled, world.text), world.zero_shot(pooled))


def test_tip_adapter_cache_vanishes_with_large_beta(world, test_videos, fitted):
    classifier = fitted("tip-adapter").with_params(alpha=3.0, beta=1e4)
    pooled, _ = test_videos
    assert torch.allclose(classifier.scores(pooled, world.text), world.zero_shot(pooled), atol=1e-4, rtol=0)


def test_a_cached_video_raises_its_own_class_score(world, fitted):
    data = world.data()
    classifier = fitted("tip-adapter").with_params(alpha=2.0, beta=1e4)
    lift = classifier.scores(data.pooled, world.text) - world.zero_shot(data.pooled)
    expected = 2.0 * torch.nn.functional.one_hot(data.labels, 4).float()
    assert torch.allclose(lift, expected, atol=1e-2)  # float32 puts 1 - f @ f within ~1e-7 of 0


def test_tip_adapter_with_beta_zero_adds_a_constant_for_balanced_shots(world, test_videos, fitted):
    """beta = 0 makes every affinity 1: the cache adds alpha x (shots of the class), the same
    for every class when the shots are balanced, so zero-shot's ranking is kept."""
    classifier = fitted("tip-adapter").with_params(alpha=0.5, beta=0.0)
    pooled, _ = test_videos
    lift = classifier.scores(pooled, world.text) - world.zero_shot(pooled)
    assert torch.allclose(lift, torch.full_like(lift, 0.5 * 8), atol=1e-4)


def test_tip_adapter_learns_and_adds_nothing_to_other_classes(world, test_videos, fitted):
    classifier = fitted("tip-adapter")
    pooled, labels = test_videos
    assert acc(classifier.scores(pooled, world.text), labels) > acc(world.zero_shot(pooled), labels) + 0.5
    assert classifier.info["alpha"] in FAST.tip_alphas and classifier.info["beta"] in FAST.tip_betas
    assert len(classifier.info["selection"]) == len(FAST.tip_alphas) * len(FAST.tip_betas)
    others = other_texts(world)
    scores = classifier.scores(pooled, torch.cat([world.text, others]))
    assert torch.allclose(scores[:, 4:], world.zero_shot(pooled, others), atol=1e-4)
    assert not classifier.changes_projection and torch.equal(classifier.projection, world.projection)


def test_tip_adapter_f_trains_its_keys_and_learns(world, test_videos, fitted):
    data = world.data()
    classifier = fitted("tip-adapter-f")
    assert not torch.equal(classifier.keys, video_embeddings(data.pooled, data.projection))
    assert torch.equal(fitted("tip-adapter").keys, video_embeddings(data.pooled, data.projection))
    assert classifier.info["loss_curve"][-1] < classifier.info["loss_curve"][0]
    pooled, labels = test_videos
    assert acc(classifier.scores(pooled, world.text), labels) > acc(world.zero_shot(pooled), labels) + 0.5
    assert not classifier.changes_projection


# -- every method --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_methods())
def test_every_method_is_deterministic_for_a_seed(name, world, test_videos, fitted):
    first, second = fitted(name), fit_method(name, world.data(), FAST)
    pooled, _ = test_videos
    assert torch.equal(first.scores(pooled, world.text), second.scores(pooled, world.text))
    assert first.info == second.info
    json.dumps(first.info, allow_nan=False)  # ready for results.json
    assert first.name == name


@pytest.mark.parametrize("name", list_methods())
def test_every_method_scores_any_class_texts_and_leaves_its_inputs_alone(name, world, test_videos):
    data = world.data()
    saved = (data.pooled.clone(), data.projection.clone(), data.text_features.clone())
    classifier = fit_method(name, data, FAST)
    pooled, _ = test_videos
    others = other_texts(world, count=5)
    assert classifier.scores(pooled, others).shape == (len(pooled), 5)
    assert classifier.scores(pooled[:0], world.text).shape == (0, 4)
    assert classifier.projection.shape == world.projection.shape
    if not classifier.changes_projection:
        assert torch.allclose(classifier.scores(pooled, others), world.zero_shot(pooled, others), atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(saved, (data.pooled, data.projection, data.text_features)))
