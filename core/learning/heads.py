"""Classifier heads on top of frozen embeddings, and how they score.

A trained model holds, for each embedding space, one ``SpaceHeads``: every concept in it gets
the head that won cross-validation (``selection.py``) among:

- ``zero-shot``: cosine to the concept name's text embedding (joint spaces only);
- ``nearest-neighbour``: mean similarity to its nearest labelled positives against its negatives;
- ``prototype``: similarity to the mean of its positives against the mean of its negatives;
- ``linear``: a logistic (one-vs-rest) or softmax (exclusive) layer trained in torch;
- ``tip-adapter``: a training-free cache of the labelled examples, affinity
  ``exp(-beta * (1 - cos))``, added to zero-shot logits (Zhang et al., 2022), or to the linear
  head's logits in a space without zero-shot.
- ``ensemble``: exclusive concepts: the linear and nearest-neighbour logits, each divided by
  its cross-validated temperature, summed: the product of the two heads' calibrated
  probabilities, so where one head is unsure the other decides.

Every head gives a raw logit per concept; a per-concept affine calibration turns logits into
probabilities (sigmoid for independent concepts, softmax over concepts for exclusive ones),
and a per-concept threshold decides whether a probability counts as a match. Prototype, linear
and cache heads work on transformed features (``transform_features``: a square root for
non-negative features, then centring on the mean of the space's inputs, then L2 norm).

Everything here is arrays in, arrays out; ``training.py`` and ``prediction.py`` deal with
the store and the embedder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"
NEAREST = "nearest-neighbour"
PROTOTYPE = "prototype"
LINEAR = "linear"
TIP_ADAPTER = "tip-adapter"
ENSEMBLE = "ensemble"
NO_HEAD = "none"
HEAD_KINDS = (ZERO_SHOT, NEAREST, PROTOTYPE, LINEAR, TIP_ADAPTER, ENSEMBLE, NO_HEAD)  # NO_HEAD last

# CLIP's learned logit scale is about 100; cosine gaps between prompts are a few hundredths.
ZERO_SHOT_SCALE = 100.0
# Cosine gaps between near and far neighbours are around 0.1: this makes them a clear decision.
NEAREST_SCALE = 25.0
# Centred features spread wider than raw ones: gaps of ~0.3 between own and other prototypes.
PROTOTYPE_SCALE = 10.0
NEAREST_POOL = 256
# Mean of the k best matches: steadier than the single nearest, still local.
NEAREST_K = 3
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class HeadConfig:
    """Settings for fitting heads; defaults are what ``train`` uses."""

    min_linear_positives: int = 5
    weight_decay: float = 1e-4
    max_iterations: int = 100
    tolerance: float = 1e-5  # L-BFGS stops when no gradient entry exceeds this
    # Cross-validate candidate heads, pick one per concept, calibrate and set thresholds on
    # held-out scores. False: the default head per concept, identity calibration, threshold 0.5.
    evaluate: bool = True
    seed: int = 0


def _empty() -> np.ndarray:
    return np.zeros((0, 0), np.float32)


@dataclass
class SpaceHeads:
    """All concept heads of one embedding space, as plain arrays (saved without pickle).

    Attributes:
        concept_ids: (C,) the concepts scored in this space.
        kinds: per concept, one of ``HEAD_KINDS``.
        exclusive: scores are a distribution over the concepts (single-label project).
        weights, bias: (C, d), (C,) the linear layer (on transformed features); rows of
            concepts without a linear or linear-based cache head are unused.
        memory, memory_ids, memory_labels: (m, d), (m,), (m, C) labelled examples (raw
            embeddings) for nearest-neighbour and cache heads and for explanations; labels are +1, -1 or 0.
        reference: (C,) similarity level that counts as a match when a concept has no negatives.
        zero_shot: (C, d) text embeddings of the concept names, or empty (d == 0) without zero-shot.
        zero_shot_background: (d,) embedding of generic prompts, the "none of these" baseline.
        zero_shot_weight: (C,) share of zero-shot in a nearest-neighbour logit (older versions).
        center: (d,) mean of the space's transformed inputs, or empty for no transform (older versions).
        feature_power: exponent applied to non-negative features before centring (1 = none).
        prototypes, negative_prototypes: (C, d) transformed means of positives and negatives
            (a zero row: no negatives, ``reference`` is used instead); empty when unused.
        tip: (C, 2) per concept, the two parameters of a two-part head: the cache head's
            (alpha, beta), the ensemble's (linear weight, nearest-neighbour weight); empty when unused.
        calibration: (C, 2) ``(a, b)``: probability = link(a * logit + b); empty = identity.
        thresholds: (C,) probability at or above which a concept matches; empty = 0.5.
        unknown_cutoff: an input whose nearest labelled example is less similar than this
            matches no concept ("unknown"); ``-inf`` turns this off.
        unknown_held_out, unknown_kept: how many held-out labelled inputs the cut-off was set on,
            and how many of them reach it (both 0 in versions older than this measure).
    """

    concept_ids: np.ndarray
    kinds: list[str]
    exclusive: bool
    weights: np.ndarray
    bias: np.ndarray
    memory: np.ndarray
    memory_ids: np.ndarray
    memory_labels: np.ndarray
    reference: np.ndarray
    zero_shot: np.ndarray
    zero_shot_background: np.ndarray
    zero_shot_weight: np.ndarray
    center: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    feature_power: float = 1.0
    prototypes: np.ndarray = field(default_factory=_empty)
    negative_prototypes: np.ndarray = field(default_factory=_empty)
    tip: np.ndarray = field(default_factory=_empty)
    calibration: np.ndarray = field(default_factory=_empty)
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    unknown_cutoff: float = float("-inf")
    unknown_held_out: int = 0
    unknown_kept: int = 0
    _memory_index: faiss.Index | None = field(default=None, repr=False, compare=False)
    _memory_features: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.concept_ids)
        if len(self.kinds) != n or any(k not in HEAD_KINDS for k in self.kinds):
            raise ValueError(f"kinds must list one of {HEAD_KINDS} per concept")
        for name in ("bias", "reference", "zero_shot_weight"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")
        if self.memory_labels.shape != (len(self.memory), n):
            raise ValueError("memory_labels must have one row per memory vector and one column per concept")
        dim = self.weights.shape[1] if self.weights.ndim == 2 else 0
        if self.calibration.size == 0:
            self.calibration = np.tile(np.array([1.0, 0.0], np.float32), (n, 1))
        if self.thresholds.size == 0:
            self.thresholds = np.full(n, DEFAULT_THRESHOLD, np.float32)
        if self.prototypes.size == 0:
            self.prototypes = np.zeros((n, dim), np.float32)
        if self.negative_prototypes.size == 0:
            self.negative_prototypes = np.zeros((n, dim), np.float32)
        if self.tip.size == 0:
            self.tip = np.zeros((n, 2), np.float32)
        for name, shape in (("calibration", (n, 2)), ("thresholds", (n,)), ("tip", (n, 2))):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}")
        if not ((self.thresholds >= 0) & (self.thresholds <= 1)).all():
            raise ValueError("thresholds must lie in [0, 1]")
        self.feature_power = float(self.feature_power)
        self.unknown_cutoff = float(self.unknown_cutoff)
        self.unknown_held_out, self.unknown_kept = int(self.unknown_held_out), int(self.unknown_kept)
        if not 0 <= self.unknown_kept <= self.unknown_held_out:
            raise ValueError("unknown_kept must lie between 0 and unknown_held_out")

    @property
    def has_zero_shot(self) -> bool:
        return self.zero_shot.size > 0

    def features(self, queries: np.ndarray) -> np.ndarray:
        """Queries in the transformed feature space of prototype, linear and cache heads."""
        return transform_features(queries, self.center, self.feature_power)

    def nearest_labelled(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar labelled examples of each query: (scores (n, k), input ids (n, k), -1 padded)."""
        n = len(queries)
        if len(self.memory) == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        if self._memory_index is None:
            import faiss  # here: scoring without a nearest-neighbour head never needs it

            index = faiss.IndexFlatIP(self.memory.shape[1])
            index.add(np.ascontiguousarray(self.memory, dtype=np.float32))
            self._memory_index = index
        kk = min(k, len(self.memory))
        scores, rows = self._memory_index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
        ids = np.where(rows >= 0, self.memory_ids[np.clip(rows, 0, None)], -1)
        if kk < k:
            scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
        return scores, ids

    def unknown(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is unknown (n,) bool, similarity to the nearest labelled example (n,))."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        nearest = self.nearest_labelled(queries, 1)[0][:, 0]
        return (nearest < self.unknown_cutoff) & np.isfinite(nearest), nearest

    def score(self, queries: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of shape (n, C); NaN for concepts without a head in this space."""
        logits = self.calibrated_logits(queries)
        scored = np.array([k != NO_HEAD for k in self.kinds], bool)
        out = np.full(logits.shape, np.nan)
        if not scored.any():
            return out
        out[:, scored] = _softmax(logits[:, scored]) if self.exclusive else _sigmoid(logits[:, scored])
        return out

    def calibrated_logits(self, queries: np.ndarray) -> np.ndarray:
        """``a * logit + b`` per concept: the input of the sigmoid (or softmax) in ``score``."""
        return self.logits(queries) * self.calibration[:, 0] + self.calibration[:, 1]

    def logits(self, queries: np.ndarray) -> np.ndarray:
        """Raw head outputs of shape (n, C), before calibration; NaN for concepts without a head."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n, c = len(queries), len(self.concept_ids)
        kinds = np.array(self.kinds)
        out = np.full((n, c), np.nan, dtype=np.float64)
        zs = self._zero_shot_logits(queries) if self.has_zero_shot else None
        needs_features = np.isin(kinds, (PROTOTYPE, LINEAR, TIP_ADAPTER, ENSEMBLE)).any()
        z = self.features(queries) if needs_features else None

        linear = kinds == LINEAR
        if linear.any():
            out[:, linear] = z @ self.weights[linear].T + self.bias[linear]

        nearest = kinds == NEAREST
        if nearest.any():
            knn = self._nearest_logits(queries, np.flatnonzero(nearest))
            if zs is not None:
                w = self.zero_shot_weight[nearest]
                knn = w * zs[:, nearest] + (1 - w) * knn
            out[:, nearest] = knn

        proto = kinds == PROTOTYPE
        if proto.any():
            out[:, proto] = PROTOTYPE_SCALE * self._prototype_margin(z, np.flatnonzero(proto))

        tip = kinds == TIP_ADAPTER
        if tip.any():
            columns = np.flatnonzero(tip)
            base = zs[:, tip] if zs is not None else z @ self.weights[tip].T + self.bias[tip]
            out[:, tip] = base + self.tip[tip, 0] * self._cache_affinity(z, columns, self.tip[tip, 1])

        ensemble = kinds == ENSEMBLE
        if ensemble.any():
            linear_part = z @ self.weights[ensemble].T + self.bias[ensemble]
            nearest_part = self._nearest_logits(queries, np.flatnonzero(ensemble))
            out[:, ensemble] = self.tip[ensemble, 0] * linear_part + self.tip[ensemble, 1] * nearest_part

        zero = kinds == ZERO_SHOT
        if zero.any() and zs is not None:
            out[:, zero] = zs[:, zero]
        return out

    def _zero_shot_logits(self, queries: np.ndarray) -> np.ndarray:
        sims = queries @ self.zero_shot.T
        if self.exclusive:
            return ZERO_SHOT_SCALE * sims
        background = queries @ self.zero_shot_background
        return ZERO_SHOT_SCALE * (sims - background[:, None])

    def _prototype_margin(self, z: np.ndarray, columns: np.ndarray) -> np.ndarray:
        own = z @ self.prototypes[columns].T
        if self.exclusive:
            return own
        negatives = self.negative_prototypes[columns]
        has_negatives = np.abs(negatives).sum(axis=1) > 0
        other = np.where(has_negatives, z @ negatives.T, self.reference[columns])
        return own - other

    def _cache_affinity(self, z: np.ndarray, columns: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """Tip-Adapter's cache: mean affinity to a concept's positives, less that to its negatives."""
        if self._memory_features is None:
            self._memory_features = self.features(self.memory)
        result = np.zeros((len(z), len(columns)))
        if len(self.memory) == 0:
            return result
        sims = z @ self._memory_features.T
        labels = self.memory_labels[:, columns]
        # Mean over a concept's positives (negatives) as one product with weights 1 / count.
        pos = (labels > 0) / np.maximum((labels > 0).sum(axis=0), 1)
        neg = (labels < 0) / np.maximum((labels < 0).sum(axis=0), 1) if not self.exclusive else np.zeros_like(pos)
        for beta in np.unique(betas):
            same = betas == beta
            affinity = np.exp(-beta * (1.0 - sims))
            result[:, same] = affinity @ pos[:, same] - affinity @ neg[:, same]
        return result

    def _nearest_logits(self, queries: np.ndarray, columns: np.ndarray) -> np.ndarray:
        pool = min(len(self.memory), NEAREST_POOL)
        sims, ids = self.nearest_labelled(queries, pool)
        rows = np.searchsorted(self.memory_ids, ids.clip(min=0))
        result = np.zeros((len(queries), len(columns)))
        k = NEAREST_K
        # A concept absent from the pool is farther than everything retrieved.
        floor = sims[:, -1] if pool else np.zeros(len(queries))
        for j, col in enumerate(columns):
            labels = np.where(ids >= 0, self.memory_labels[rows, col], 0) if pool else np.zeros_like(ids)
            pos = _mean_top_k(np.where(labels > 0, sims, -np.inf), k)
            pos = np.where(np.isfinite(pos), pos, floor)
            if self.exclusive:
                result[:, j] = NEAREST_SCALE * pos
                continue
            has_negatives = (self.memory_labels[:, col] < 0).any()
            neg = _mean_top_k(np.where(labels < 0, sims, -np.inf), k) if has_negatives else np.full(len(queries), self.reference[col])
            neg = np.where(np.isfinite(neg), neg, floor)
            result[:, j] = NEAREST_SCALE * (pos - neg)
        return result


def _mean_top_k(values: np.ndarray, k: int) -> np.ndarray:
    top = -np.sort(-values, axis=1)[:, :k]
    finite = np.isfinite(top)
    counts = finite.sum(axis=1)
    sums = np.where(finite, top, 0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    # A product with the inverse norms: numpy broadcasts a multiplication far faster than a division.
    inverse = np.where(norms > 1e-12, 1.0 / np.maximum(norms, 1e-12), 1.0).astype(np.float32)
    return x * inverse[:, None]


# The centre is a mean: this many inputs pin it down as well as all of them.
TRANSFORM_SAMPLE = 10_000


def fit_feature_transform(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """(center, power) for ``transform_features``, from a sample of the space's inputs.

    Non-negative features (post-ReLU CNN features) get a square root first, which makes their
    heavy-tailed dimensions more Gaussian; centring on the mean of the space's own inputs
    (labelled or not) removes the direction every input shares, so cosines compare what
    differs between inputs (SimpleShot, Wang et al. 2019; Hu et al. 2021).
    """
    if len(vectors) < 2:
        return np.zeros(0, np.float32), 1.0
    if len(vectors) > TRANSFORM_SAMPLE:
        vectors = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), TRANSFORM_SAMPLE, replace=False))]
    power = 0.5 if float(vectors.min()) >= 0 else 1.0
    return transform_features(vectors, np.zeros(0, np.float32), power).mean(axis=0).astype(np.float32), power


def transform_features(x: np.ndarray, center: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Apply the space's transform: power, L2 norm, minus ``center``, L2 norm again."""
    x = np.asarray(x, dtype=np.float32)
    if power == 0.5:
        x = np.sign(x) * np.sqrt(np.abs(x))
    elif power != 1.0:
        x = np.sign(x) * np.abs(x) ** power
    x = _normalize(x)
    if center.size == 0:
        return x
    return _normalize(x - center)


ProgressCallback = Callable[[float, str], None]
