"""Heads on clearly separated synthetic clusters: each kind must classify them right."""

from __future__ import annotations

import numpy as np
import pytest

from core.learning import fitting
from core.learning.fitting import estimate_reference, fit_linear, fit_prototypes, propagate_labels, refine_prototypes
from core.learning.heads import (
    ENSEMBLE,
    LINEAR,
    NEAREST,
    NO_HEAD,
    PROTOTYPE,
    TIP_ADAPTER,
    ZERO_SHOT,
    HeadConfig,
    SpaceHeads,
    fit_feature_transform,
    transform_features,
)

DIM = 32


def _clusters(n_per: int, n_clusters: int = 3, noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_clusters), n_per)
    x = centres[labels] + noise * rng.normal(size=(len(labels), DIM)) / np.sqrt(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels, centres.astype(np.float32)


def _heads(kinds, exclusive, memory, memory_labels, weights=None, bias=None, zero_shot=None, reference=None) -> SpaceHeads:
    c = len(kinds)
    return SpaceHeads(
        concept_ids=np.arange(c, dtype=np.int64),
        kinds=kinds,
        exclusive=exclusive,
        weights=weights if weights is not None else np.zeros((c, DIM), np.float32),
        bias=bias if bias is not None else np.zeros(c, np.float32),
        memory=memory,
        memory_ids=np.arange(len(memory), dtype=np.int64),
        memory_labels=memory_labels,
        reference=reference if reference is not None else np.zeros(c, np.float32),
        zero_shot=zero_shot if zero_shot is not None else np.zeros((0, 0), np.float32),
        zero_shot_background=np.zeros(DIM if zero_shot is not None else 0, np.float32),
        zero_shot_weight=np.full(c, 0.5 if zero_shot is not None else 0.0, np.float32),
    )


def _one_vs_rest(labels: np.ndarray, c: int) -> np.ndarray:
    return np.where(np.eye(c)[labels] > 0, 1, -1).astype(np.int8)


@pytest.mark.parametrize("exclusive", [False, True])
def test_linear_head_separates_clusters(exclusive):
    x, y, _ = _clusters(40)
    test_x, test_y, _ = _clusters(20, seed=0)
    targets = y if exclusive else _one_vs_rest(y, 3)
    w, b = fit_linear(x, targets, exclusive=exclusive)
    heads = _heads([LINEAR] * 3, exclusive, x, _one_vs_rest(y, 3), w, b)
    scores = heads.score(test_x)
    assert (scores.argmax(axis=1) == test_y).mean() == 1.0
    own = scores[np.arange(len(test_y)), test_y]
    assert own.min() > 0.5
    if exclusive:
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)


def test_linear_head_is_deterministic_under_a_seed():
    x, y, _ = _clusters(30)
    first = fit_linear(x, _one_vs_rest(y, 3), exclusive=False, config=HeadConfig(seed=7))
    second = fit_linear(x, _one_vs_rest(y, 3), exclusive=False, config=HeadConfig(seed=7))
    np.testing.assert_array_equal(first[0], second[0])


def test_linear_head_ignores_masked_targets():
    x, y, _ = _clusters(30)
    targets = _one_vs_rest(y, 3)
    targets[y == 2, 0] = 0  # concept 0 says nothing about cluster 2: must not learn anything from it
    w, b = fit_linear(x, targets, exclusive=False)
    assert w.shape == (3, DIM) and np.isfinite(w).all()


def test_linear_head_reports_progress():
    x, y, _ = _clusters(30)
    seen = []
    fit_linear(x, _one_vs_rest(y, 3), exclusive=False, progress=lambda f, m: seen.append(f))
    assert all(0 <= f <= 1 for f in seen)


@pytest.mark.parametrize("shots", [1, 2, 4])
def test_nearest_neighbour_head_with_few_shots(shots):
    x, y, _ = _clusters(30, noise=0.5)
    pick = np.concatenate([np.flatnonzero(y == c)[:shots] for c in range(3)])
    heads = _heads([NEAREST] * 3, False, x[pick], _one_vs_rest(y[pick], 3))
    rest = np.setdiff1d(np.arange(len(y)), pick)
    scores = heads.score(x[rest])
    assert (scores.argmax(axis=1) == y[rest]).mean() >= 0.95
    assert scores[np.arange(len(rest)), y[rest]].mean() > 0.5


def test_nearest_neighbour_without_negatives_uses_the_reference():
    x, y, _ = _clusters(30)
    positives = x[y == 0][:3]
    reference = estimate_reference(positives, x[y != 0], 3)
    heads = _heads([NEAREST], False, positives, np.ones((3, 1), np.int8), reference=np.array([reference], np.float32))
    inside, outside = heads.score(x[y == 0][3:]), heads.score(x[y != 0])
    assert inside.min() > 0.5 > outside.max()


def test_zero_shot_and_no_head():
    x, y, centres = _clusters(10)
    heads = _heads([ZERO_SHOT, ZERO_SHOT, NO_HEAD], False, np.zeros((0, DIM), np.float32), np.zeros((0, 3), np.int8), zero_shot=centres)
    scores = heads.score(x)
    assert np.isnan(scores[:, 2]).all()
    assert (scores[y == 0, 0] > scores[y == 0, 1]).all()


def test_exclusive_non_linear_scores_are_a_distribution():
    x, y, _ = _clusters(10)
    heads = _heads([NEAREST] * 3, True, x, _one_vs_rest(y, 3))
    np.testing.assert_allclose(heads.score(x).sum(axis=1), 1.0, atol=1e-6)


def test_nearest_labelled_pads_and_maps_ids():
    x, y, _ = _clusters(2)
    heads = _heads([NEAREST] * 3, False, x, _one_vs_rest(y, 3))
    scores, ids = heads.nearest_labelled(x[:1], 10)
    assert ids[0, 0] == 0 and (ids[0, 6:] == -1).all() and np.isneginf(scores[0, 6:]).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kinds": ["linear", "magic"]}, "kinds"),
        ({"kinds": ["linear"]}, "kinds"),
        ({"bias": np.zeros(3, np.float32)}, "bias"),
        ({"memory_labels": np.zeros((1, 2), np.int8)}, "memory_labels"),
        ({"calibration": np.ones((2, 3), np.float32)}, "calibration"),
        ({"thresholds": np.array([0.5, 1.5], np.float32)}, "thresholds"),
        ({"thresholds": np.array([0.5], np.float32)}, "thresholds"),
        ({"tip": np.ones((3, 2), np.float32)}, "tip"),
    ],
)
def test_space_heads_validates_its_arrays(change, message):
    fields = dict(
        concept_ids=np.arange(2),
        kinds=[LINEAR, LINEAR],
        exclusive=False,
        weights=np.zeros((2, 4), np.float32),
        bias=np.zeros(2, np.float32),
        memory=np.zeros((0, 4), np.float32),
        memory_ids=np.zeros(0, np.int64),
        memory_labels=np.zeros((0, 2), np.int8),
        reference=np.zeros(2, np.float32),
        zero_shot=np.zeros((0, 0), np.float32),
        zero_shot_background=np.zeros(0, np.float32),
        zero_shot_weight=np.zeros(2, np.float32),
    )
    with pytest.raises(ValueError, match=message):
        SpaceHeads(**{**fields, **change})


def test_feature_transform_square_roots_non_negative_features_and_centres_them():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(50, DIM))).astype(np.float32)
    center, power = fit_feature_transform(x)
    assert power == 0.5 and center.shape == (DIM,)
    z = transform_features(x, center, power)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert abs(float(z.mean(axis=0) @ z.mean(axis=0))) < abs(float(x.mean(axis=0) @ x.mean(axis=0)))
    assert fit_feature_transform(x - 0.5)[1] == 1.0  # signed features are left as they are
    assert fit_feature_transform(x[:1])[0].size == 0  # one input: nothing to centre on


@pytest.mark.parametrize("exclusive", [False, True])
def test_prototype_head_on_transformed_features(exclusive):
    x, y, _ = _clusters(20, noise=0.5)
    center, power = fit_feature_transform(x)
    labels = _one_vs_rest(y, 3)
    pos, neg = fit_prototypes(transform_features(x, center, power), labels)
    heads = _heads([PROTOTYPE] * 3, exclusive, x, labels)
    heads.center, heads.feature_power, heads.prototypes, heads.negative_prototypes = center, power, pos, neg
    test_x, test_y, _ = _clusters(10, noise=0.5, seed=0)
    assert (heads.score(test_x).argmax(axis=1) == test_y).mean() >= 0.95


def test_refined_prototypes_move_towards_their_unlabelled_clusters():
    x, y, centres = _clusters(40, noise=0.6)
    one = np.array([np.flatnonzero(y == c)[0] for c in range(3)])
    labels = _one_vs_rest(y[one], 3)
    pos, _ = fit_prototypes(x[one], labels)
    refined = refine_prototypes(pos, x[one], labels, np.delete(x, one, axis=0))
    before = (pos * centres).sum(axis=1) / np.linalg.norm(centres, axis=1)
    after = (refined * centres).sum(axis=1) / np.linalg.norm(centres, axis=1)
    assert (after > before).all()


def _two_arcs(n_per: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Two parallel arcs a radian long: each point's neighbours lie on its own arc, yet an arc's
    far end is closer to the other arc's start than to its own."""
    angle = np.tile(np.linspace(0, 1, n_per), 2)
    arc = np.repeat([0, 1], n_per)
    x = np.zeros((2 * n_per, DIM))
    x[:, 0], x[:, 1], x[:, 2] = np.cos(angle), np.sin(angle), 0.3 * arc
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), arc


def test_labels_propagate_along_each_arc_where_the_nearest_seed_is_wrong():
    x, arc = _two_arcs()
    first, last = 0, len(x) - 1  # the start of arc 0, the far end of arc 1
    seeds = np.zeros((len(x), 2), np.float32)
    seeds[first, 0] = seeds[last, 1] = 1
    mass = propagate_labels(x, seeds, neighbours=10, alpha=0.8)
    assert mass.shape == (len(x), 2) and (mass >= 0).all()
    assert (mass.argmax(axis=1) == arc).all()
    nearest_seed = np.argmax(x @ x[[first, last]].T, axis=1)
    assert (nearest_seed != arc).sum() >= 10  # the data is built so that propagation must matter


def test_refined_prototypes_follow_the_arcs_of_their_labelled_ends():
    x, arc = _two_arcs()
    ends = np.array([0, len(x) - 1])
    labels = _one_vs_rest(arc[ends], 2)
    pos, _ = fit_prototypes(x[ends], labels)
    refined = refine_prototypes(pos, x[ends], labels, np.delete(x, ends, axis=0))
    np.testing.assert_allclose(np.linalg.norm(refined, axis=1), 1, atol=1e-5)
    assert (np.argmax(x @ pos.T, axis=1) == arc).mean() < 0.8
    assert (np.argmax(x @ refined.T, axis=1) == arc).all()


@pytest.mark.parametrize(
    "case",
    [
        "no unlabelled",
        "fewer unlabelled than neighbours",
        "one trained concept",
        "an untrained concept",
        "duplicates",
        "labelled past the cap",
    ],
)
def test_refine_prototypes_edge_cases(case, monkeypatch):
    x, arc = _two_arcs()
    ends = np.array([0, len(x) - 1])
    labels = _one_vs_rest(arc[ends], 2)
    unlabelled = np.delete(x, ends, axis=0)
    if case == "an untrained concept":  # a third concept without examples keeps its zero prototype
        labels = np.concatenate([labels, -np.ones((2, 1), np.int8)], axis=1)
    if case == "duplicates":
        unlabelled = np.concatenate([unlabelled, unlabelled])
    if case == "one trained concept":
        labels[:, 1] = -1
    if case == "labelled past the cap":  # every labelled input still counts in its concept's mean
        monkeypatch.setattr(fitting, "PROPAGATION_MAX_LABELLED", 1)
    pos, _ = fit_prototypes(x[ends], labels)
    if case == "no unlabelled":
        unlabelled = unlabelled[:0]
    if case == "fewer unlabelled than neighbours":
        unlabelled = unlabelled[:5]
    refined = refine_prototypes(pos, x[ends], labels, unlabelled)
    assert refined.shape == pos.shape
    if case in ("no unlabelled", "fewer unlabelled than neighbours", "one trained concept"):
        np.testing.assert_array_equal(refined, pos)
        return
    if case == "labelled past the cap":
        assert (refined[:2] @ x[ends].T).diagonal().min() > 0.3
        return
    assert (np.argmax(x @ refined[:2].T, axis=1) == arc).all()
    if case == "an untrained concept":
        assert not refined[2].any()


def test_tip_adapter_adds_the_cache_to_its_base():
    x, y, centres = _clusters(10)
    labels = _one_vs_rest(y, 3)
    base = _heads([ZERO_SHOT] * 3, False, x, labels, zero_shot=centres)
    tip = _heads([TIP_ADAPTER] * 3, False, x, labels, zero_shot=centres)
    np.testing.assert_allclose(tip.logits(x), base.logits(x))  # alpha 0: the base alone
    tip.tip = np.tile(np.array([2.0, 5.5], np.float32), (3, 1))
    gain = tip.logits(x) - base.logits(x)
    own = gain[np.arange(len(y)), y]
    assert (own > 0).all() and (own[:, None] >= gain - 1e-9).all()  # the cache favours the input's own concept


@pytest.mark.parametrize("linear_weight, nearest_weight", [(1.0, 0.0), (0.0, 1.0), (0.7, 1.3)])
def test_ensemble_weighs_the_linear_and_nearest_neighbour_logits(linear_weight, nearest_weight):
    x, y, _ = _clusters(20)
    labels = _one_vs_rest(y, 3)
    w, b = fit_linear(x, y, exclusive=True, n_classes=3)
    linear = _heads([LINEAR] * 3, True, x, labels, weights=w, bias=b)
    nearest = _heads([NEAREST] * 3, True, x, labels)
    ensemble = _heads([ENSEMBLE] * 3, True, x, labels, weights=w, bias=b)
    ensemble.tip = np.tile(np.array([linear_weight, nearest_weight], np.float32), (3, 1))
    queries = _clusters(5, seed=3)[0]
    expected = linear_weight * linear.logits(queries) + nearest_weight * nearest.logits(queries)
    np.testing.assert_allclose(ensemble.logits(queries), expected, rtol=1e-5, atol=1e-5)


def test_calibration_and_thresholds_shape_the_scores():
    x, y, _ = _clusters(10)
    heads = _heads([NEAREST] * 3, False, x, _one_vs_rest(y, 3))
    raw = heads.score(x)
    heads.calibration = np.tile(np.array([0.0, 0.0], np.float32), (3, 1))
    np.testing.assert_allclose(heads.score(x), 0.5)  # slope 0: no information, probability one half
    heads.calibration = np.tile(np.array([1.0, 0.0], np.float32), (3, 1))
    np.testing.assert_allclose(heads.score(x), raw)


def test_unknown_inputs_are_far_from_every_labelled_example():
    x, y, centres = _clusters(10)
    heads = _heads([NEAREST] * 3, False, x, _one_vs_rest(y, 3))
    assert not heads.unknown(x)[0].any()  # never, by default
    heads.unknown_cutoff = 0.5
    far = -centres.sum(axis=0, keepdims=True)
    far /= np.linalg.norm(far)
    unknown, nearest = heads.unknown(np.concatenate([x[:2], far]))
    assert unknown.tolist() == [False, False, True] and nearest[2] < 0.5


_FIT_IN_A_FRESH_PROCESS = """
import hashlib, sys
import numpy as np
import core.learning.fitting as fitting
if sys.argv[1] == "with-dynamo":
    fitting._skip_dynamo_import = lambda torch: None
rng = np.random.default_rng(0)
x = rng.normal(size=(40, 32)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
w, b = fitting.fit_linear(x, np.arange(40) % 3, exclusive=True)
print(hashlib.sha256(w.tobytes() + b.tobytes()).hexdigest(), "torch._dynamo" in sys.modules)
"""


def test_linear_heads_fit_without_importing_the_compiler_and_to_the_same_numbers():
    import subprocess
    import sys

    def fit(mode: str) -> list[str]:
        command = [sys.executable, "-c", _FIT_IN_A_FRESH_PROCESS, mode]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        return done.stdout.split()

    (fast, fast_imported), (plain, plain_imported) = fit("fast"), fit("with-dynamo")
    assert (fast_imported, plain_imported) == ("False", "True")
    assert fast == plain  # bit for bit
