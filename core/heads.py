"""Classifier heads on top of frozen embeddings, and how they score.

A trained model holds, for each embedding space, one ``SpaceHeads``: every concept
in it gets the best head its data allows:

- ``zero-shot``: cosine to the concept name's text embedding (joint spaces only);
- ``nearest-neighbour``: similarity to its few labelled positives against its
  negatives, searched with FAISS over the labelled examples, blended with
  zero-shot where the space has it;
- ``linear``: a logistic (one-vs-rest) or softmax (exclusive) layer trained in torch.

Everything here is arrays in, arrays out; ``training.py`` and ``predict.py`` deal with
the store and the embedder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"
NEAREST = "nearest-neighbour"
LINEAR = "linear"
NO_HEAD = "none"
HEAD_KINDS = (ZERO_SHOT, NEAREST, LINEAR, NO_HEAD)

# CLIP's learned logit scale is about 100; cosine gaps between prompts are a few hundredths.
ZERO_SHOT_SCALE = 100.0
# Cosine gaps between near and far neighbours are around 0.1: this makes them a clear decision.
NEAREST_SCALE = 25.0
NEAREST_POOL = 1024
# Mean of the k best matches: steadier than the single nearest, still local.
NEAREST_K = 3


@dataclass(frozen=True)
class HeadConfig:
    """Settings for fitting heads; defaults are what ``train`` uses."""

    min_linear_positives: int = 5
    weight_decay: float = 1e-4
    max_iterations: int = 100
    seed: int = 0


@dataclass
class SpaceHeads:
    """All concept heads of one embedding space, as plain arrays (saved without pickle).

    Attributes:
        concept_ids: (C,) the concepts scored in this space.
        kinds: per concept, one of ``HEAD_KINDS``.
        exclusive: scores are a distribution over the concepts (single-label project).
        weights, bias: (C, d), (C,) the linear layer; rows of non-linear concepts are unused.
        memory, memory_ids, memory_labels: (m, d), (m,), (m, C) labelled examples for
            nearest-neighbour heads and for explanations; labels are +1, -1 or 0.
        reference: (C,) cosine level that counts as a match when a concept has no negatives.
        zero_shot: (C, d) text embeddings of the concept names, or empty (d == 0) without zero-shot.
        zero_shot_background: (d,) embedding of generic prompts, the "none of these" baseline.
        zero_shot_weight: (C,) how much of a nearest-neighbour score comes from zero-shot.
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
    _memory_index: faiss.Index | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.concept_ids)
        if len(self.kinds) != n or any(k not in HEAD_KINDS for k in self.kinds):
            raise ValueError(f"kinds must list one of {HEAD_KINDS} per concept")
        for name in ("bias", "reference", "zero_shot_weight"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},)")
        if self.memory_labels.shape != (len(self.memory), n):
            raise ValueError("memory_labels must have one row per memory vector and one column per concept")

    @property
    def has_zero_shot(self) -> bool:
        return self.zero_shot.size > 0

    def nearest_labelled(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar labelled examples of each query: (scores (n, k), input ids (n, k), -1 padded)."""
        n = len(queries)
        if len(self.memory) == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        if self._memory_index is None:
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

    def score(self, queries: np.ndarray) -> np.ndarray:
        """Scores in [0, 1] of shape (n, C); NaN for concepts without a head in this space."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n, c = len(queries), len(self.concept_ids)
        kinds = np.array(self.kinds)
        out = np.full((n, c), np.nan, dtype=np.float64)
        zs = self._zero_shot_scores(queries) if self.has_zero_shot else None

        linear = kinds == LINEAR
        if linear.any():
            logits = queries @ self.weights[linear].T + self.bias[linear]
            out[:, linear] = _softmax(logits) if self.exclusive else _sigmoid(logits)

        nearest = kinds == NEAREST
        if nearest.any():
            knn = self._nearest_scores(queries, np.flatnonzero(nearest))
            if zs is not None:
                w = self.zero_shot_weight[nearest]
                knn = w * zs[:, nearest] + (1 - w) * knn
            out[:, nearest] = knn

        zero = kinds == ZERO_SHOT
        if zero.any() and zs is not None:
            out[:, zero] = zs[:, zero]

        if self.exclusive and not linear.any():
            # Make the per-concept scores a distribution, as a softmax head's would be.
            scored = ~np.isnan(out[0]) if n else np.zeros(c, bool)
            totals = out[:, scored].sum(axis=1, keepdims=True)
            out[:, scored] = out[:, scored] / np.maximum(totals, 1e-12)
        return out

    def _zero_shot_scores(self, queries: np.ndarray) -> np.ndarray:
        sims = queries @ self.zero_shot.T
        if self.exclusive:
            return _softmax(ZERO_SHOT_SCALE * sims)
        background = queries @ self.zero_shot_background
        return _sigmoid(ZERO_SHOT_SCALE * (sims - background[:, None]))

    def _nearest_scores(self, queries: np.ndarray, columns: np.ndarray) -> np.ndarray:
        pool = min(len(self.memory), NEAREST_POOL)
        sims, ids = self.nearest_labelled(queries, pool)
        rows = np.searchsorted(self.memory_ids, ids.clip(min=0))
        result = np.zeros((len(queries), len(columns)))
        k = NEAREST_K
        for j, col in enumerate(columns):
            labels = np.where(ids >= 0, self.memory_labels[rows, col], 0)
            pos = _mean_top_k(np.where(labels > 0, sims, -np.inf), k)
            has_negatives = (self.memory_labels[:, col] < 0).any()
            neg = _mean_top_k(np.where(labels < 0, sims, -np.inf), k) if has_negatives else np.full(len(queries), self.reference[col])
            # A concept absent from the pool is farther than everything retrieved.
            floor = sims[:, -1:].min(axis=1) if pool else np.zeros(len(queries))
            pos = np.where(np.isfinite(pos), pos, floor)
            neg = np.where(np.isfinite(neg), neg, floor)
            result[:, j] = _sigmoid(NEAREST_SCALE * (pos - neg))
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


def estimate_reference(positives: np.ndarray, background: np.ndarray, k: int) -> float:
    """Cosine level halfway between how close positives are to each other and to other inputs.

    Used as the "negative" side of a nearest-neighbour head that has no negatives.
    """
    if len(positives) >= 2:
        sims = positives @ positives.T
        np.fill_diagonal(sims, -np.inf)
        within = float(_mean_top_k(sims, k).mean())
    else:
        within = 1.0
    if len(background):
        outside = float(_mean_top_k(background @ positives.T, k).mean())
    else:
        outside = within - 0.2
    return (within + outside) / 2


ProgressCallback = Callable[[float, str], None]


def fit_linear(
    x: np.ndarray,
    targets: np.ndarray,
    exclusive: bool,
    config: HeadConfig = HeadConfig(),
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a linear layer on embeddings; deterministic for a given seed.

    Args:
        x: (n, d) L2-normalised embeddings.
        targets: exclusive: (n,) class index per row; otherwise (n, C) with +1 / -1 and
            0 where a row says nothing about a concept (masked out of the loss).
        exclusive: softmax cross-entropy over classes instead of per-concept sigmoids.
        config: weight decay, iterations and seed.
        progress: called with (fraction done, message).

    Returns:
        (weights (C, d) float32, bias (C,) float32).
    """
    import torch  # here, not at the top: scoring and the command line's quick commands never need it

    torch.manual_seed(config.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if exclusive:
        classes = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        n_classes = int(classes.max()) + 1
        counts = torch.bincount(classes, minlength=n_classes).float()
        # Balanced classes: a concept with 500 examples must not drown one with 10.
        class_weight = counts.sum() / (n_classes * counts.clamp(min=1))
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
        y = classes
    else:
        t = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        n_classes = t.shape[1]
        mask = (t != 0).float()
        y = (t > 0).float()
        n_pos = (y * mask).sum(0)
        n_neg = ((1 - y) * mask).sum(0)
        pos_weight = (n_neg / n_pos.clamp(min=1)).clamp(min=1e-3, max=1e3)

        def loss_fn(logits, target):
            raw = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
            return (raw * mask).sum() / mask.sum().clamp(min=1)

    layer = torch.nn.Linear(xt.shape[1], n_classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.LBFGS(
        layer.parameters(), lr=1.0, max_iter=config.max_iterations, history_size=20, line_search_fn="strong_wolfe"
    )
    calls = 0

    def closure():
        nonlocal calls
        optimizer.zero_grad()
        loss = loss_fn(layer(xt), y) + config.weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        calls += 1
        if progress and calls % 10 == 0:
            progress(min(calls / config.max_iterations, 1.0), f"fitting linear head (step {calls})")
        return loss

    with torch.enable_grad():
        final = optimizer.step(closure)
    log.debug("linear head: %d rows, %d classes, %d evaluations, loss %.4f", len(x), n_classes, calls, float(final.detach()))
    return layer.weight.detach().numpy().astype(np.float32), layer.bias.detach().numpy().astype(np.float32)
