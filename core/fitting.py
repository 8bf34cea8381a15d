"""Fitting the parts of heads from labelled embeddings: prototypes, their refinement, the linear layer.

Arrays in, arrays out; ``candidates.py`` decides which parts a training run needs.
"""

from __future__ import annotations

import logging

import numpy as np

from .heads import PROTOTYPE_SCALE, HeadConfig, ProgressCallback, _mean_top_k, _normalize, _softmax

log = logging.getLogger(__name__)

# Above this many rows a linear layer is first fitted on half as many (see ``fit_linear``).
WARM_START_ROWS = 8000


def fit_prototypes(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive (C, d), negative (C, d)) normalised means; a concept without rows gets a zero row."""
    # Sums per concept as one product with the 0/1 label matrix; the norm makes them means.
    pos = (labels > 0).T.astype(np.float32) @ z
    neg = (labels < 0).T.astype(np.float32) @ z
    return _normalize(pos), _normalize(neg)


def refine_prototypes(prototypes: np.ndarray, z: np.ndarray, labels: np.ndarray, unlabelled: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Exclusive concepts: move prototypes towards the unlabelled inputs they attract (soft k-means).

    Semi-supervised, as in Ren et al. (2018): the labelled examples stay assigned to their own
    concept, each unlabelled input is shared among concepts by a softmax over similarities.
    It helps when the project's unlabelled inputs cluster by concept, and hurts when they do
    not: cross-validation decides whether it is used.
    """
    trained = np.abs(prototypes).sum(axis=1) > 0
    if len(unlabelled) == 0 or trained.sum() < 2:
        return prototypes
    labelled_sum = np.stack([z[labels[:, j] > 0].sum(axis=0) if trained[j] else np.zeros(z.shape[1]) for j in range(len(prototypes))])
    current = prototypes.copy()
    for _ in range(iterations):
        logits = PROTOTYPE_SCALE * (unlabelled @ current[trained].T)
        weights = _softmax(logits)
        updated = labelled_sum[trained] + weights.T @ unlabelled
        current[trained] = _normalize(updated)
    return current


def estimate_reference(positives: np.ndarray, background: np.ndarray, k: int) -> float:
    """Similarity level halfway between how close positives are to each other and to other inputs.

    Used as the "negative" side of a nearest-neighbour or prototype head that has no negatives.
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


def fit_linear(
    x: np.ndarray,
    targets: np.ndarray,
    exclusive: bool,
    config: HeadConfig = HeadConfig(),
    progress: ProgressCallback | None = None,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a linear layer on embeddings by L-BFGS; deterministic for a given seed.

    Every concept's layer is fitted at once as one matrix problem, in float32. Above
    ``WARM_START_ROWS`` rows the layer is first fitted on a sample of half as many and then
    polished on all: the loss is convex, so the sample's optimum starts a few steps from the end.

    Args:
        x: (n, d) L2-normalised embeddings.
        targets: exclusive: (n,) class index per row; otherwise (n, C) with +1 / -1 and
            0 where a row says nothing about a concept (masked out of the loss).
        exclusive: softmax cross-entropy over classes instead of per-concept sigmoids.
        config: weight decay, iterations, tolerance and seed (the seed picks the warm-start sample).
        progress: called with (fraction done, message).
        n_classes: exclusive: number of classes (default: the largest index in ``targets`` + 1).

    Returns:
        (weights (C, d) float32, bias (C,) float32).
    """
    import torch  # here, not at the top: scoring and the command line's quick commands never need it

    torch.manual_seed(config.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if exclusive:
        classes = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        n_classes = int(n_classes or int(classes.max()) + 1)
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

    layer = torch.nn.Linear(xt.shape[1], int(n_classes))
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    if len(x) > WARM_START_ROWS:
        sample = np.sort(np.random.default_rng(config.seed).choice(len(x), WARM_START_ROWS // 2, replace=False))
        sample_targets = np.asarray(targets)[sample]
        w, b = fit_linear(x[sample], sample_targets, exclusive, config, None, n_classes)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
    optimizer = torch.optim.LBFGS(
        layer.parameters(),
        lr=1.0,
        max_iter=config.max_iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=config.tolerance,
        tolerance_change=config.tolerance * 1e-4,
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

    # These matrices are small: one thread avoids OpenMP hand-offs that cost more than the maths,
    # above all on a busy machine. The embedders' setting is restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            final = optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    log.debug("linear head: %d rows, %d classes, %d evaluations, loss %.4f", len(x), n_classes, calls, float(final.detach()))
    return layer.weight.detach().numpy().astype(np.float32), layer.bias.detach().numpy().astype(np.float32)
