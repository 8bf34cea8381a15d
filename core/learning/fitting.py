"""Fitting the parts of heads from labelled embeddings: prototypes, their refinement, the linear layer.

Arrays in, arrays out; ``candidates.py`` decides which parts a training run needs.
"""

from __future__ import annotations

import logging

import numpy as np

from core.learning.heads import HeadConfig, ProgressCallback, _mean_top_k, _normalize

log = logging.getLogger(__name__)

# Above this many rows a linear layer is first fitted on half as many (see ``fit_linear``).
WARM_START_ROWS = 8000
# Label propagation: neighbours per input, the share of mass passed on per step, the steps
# (20 steps come within 0.8 ** 20 ~ 1 % of the fixed point), and the labelled inputs in the graph.
PROPAGATION_NEIGHBOURS = 10
PROPAGATION_ALPHA = 0.8
PROPAGATION_ITERATIONS = 20
PROPAGATION_MAX_LABELLED = 2000


def fit_prototypes(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive (C, d), negative (C, d)) normalised means; a concept without rows gets a zero row."""
    # Sums per concept as one product with the 0/1 label matrix; the norm makes them means.
    pos = (labels > 0).T.astype(np.float32) @ z
    neg = (labels < 0).T.astype(np.float32) @ z
    return _normalize(pos), _normalize(neg)


def refine_prototypes(
    prototypes: np.ndarray,
    z: np.ndarray,
    labels: np.ndarray,
    unlabelled: np.ndarray,
    neighbours: int = PROPAGATION_NEIGHBOURS,
    alpha: float = PROPAGATION_ALPHA,
) -> np.ndarray:
    """Exclusive concepts: prototypes that also average the unlabelled inputs label propagation gives them.

    Semi-supervised, as in Zhou et al. (2004) and its few-shot use by Liu et al. (2019): the
    labels spread from the labelled inputs along a graph joining every input to its nearest
    neighbours, so an unlabelled input takes the concept of the region it lies in, not merely
    of the nearest prototype. Each concept's mass is normalised before the vote, so a concept
    with more examples does not swallow the rest. A prototype becomes the mean of its labelled
    positives and the unlabelled inputs it won. This helps when the project's unlabelled
    inputs lie in regions by concept, and hurts when they do not: cross-validation decides.
    """
    trained = np.abs(prototypes).sum(axis=1) > 0
    if len(unlabelled) < neighbours or trained.sum() < 2:
        return prototypes
    positives = (labels > 0) & trained
    # A bounded graph: the labelled inputs past the cap still count in the means below.
    graph_rows = np.flatnonzero(positives.any(axis=1))
    if len(graph_rows) > PROPAGATION_MAX_LABELLED:
        graph_rows = np.sort(np.random.default_rng(0).choice(graph_rows, PROPAGATION_MAX_LABELLED, replace=False))
    nodes = np.concatenate([z[graph_rows], unlabelled]).astype(np.float32)
    seeds = np.zeros((len(nodes), len(prototypes)), np.float32)
    seeds[: len(graph_rows)] = positives[graph_rows]
    mass = propagate_labels(nodes, seeds, neighbours, alpha)[len(graph_rows) :]
    mass = mass[:, trained] / np.maximum(mass[:, trained].sum(axis=0), 1e-12)
    won = np.zeros((len(unlabelled), len(prototypes)), np.float32)
    reached = mass.max(axis=1) > 0
    won[np.flatnonzero(reached), np.flatnonzero(trained)[mass[reached].argmax(axis=1)]] = 1
    sums = positives.T.astype(np.float32) @ z + won.T @ unlabelled
    refined = prototypes.copy()
    refined[trained] = _normalize(sums[trained])
    return refined


def propagate_labels(nodes: np.ndarray, seeds: np.ndarray, neighbours: int, alpha: float) -> np.ndarray:
    """Label mass (n, C) after spreading ``seeds`` along the k-nearest-neighbour graph of ``nodes``.

    The fixed point of ``F = alpha * S @ F + (1 - alpha) * seeds`` (Zhou et al., 2004), with S
    the symmetrically normalised graph: edges weigh the cube of a positive cosine, so close
    neighbours count far more than loose ones. Iterated on the sparse graph: memory stays
    O(n * neighbours) where the closed form would invert a dense n x n matrix.
    """
    n = len(nodes)
    k = min(neighbours, n - 1)
    columns = np.empty((n, k), np.int64)
    weights = np.empty((n, k), np.float32)
    for start in range(0, n, 1024):  # blocks of similarities keep memory to 1024 x n
        sims = nodes[start : start + 1024] @ nodes.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        columns[start : start + len(sims)] = top
        weights[start : start + len(sims)] = np.maximum(np.take_along_axis(sims, top, axis=1), 0) ** 3
    # W + W^T as one edge list sorted by row, so each product is one gather and one segment sum.
    rows = np.concatenate([np.repeat(np.arange(n), k), columns.ravel()])
    cols = np.concatenate([columns.ravel(), np.repeat(np.arange(n), k)])
    values = np.concatenate([weights.ravel(), weights.ravel()])
    order = np.argsort(rows, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    degree = np.bincount(rows, weights=values, minlength=n)
    scale = 1 / np.sqrt(np.maximum(degree, 1e-12))
    values = (values * scale[rows] * scale[cols]).astype(np.float32)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    present = rows[starts]
    mass = seeds.astype(np.float32)
    for _ in range(PROPAGATION_ITERATIONS):
        spread = np.zeros_like(mass)
        spread[present] = np.add.reduceat(values[:, None] * mass[cols], starts, axis=0)
        mass = alpha * spread + (1 - alpha) * seeds
    return mass


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
    _skip_dynamo_import(torch)
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


def _skip_dynamo_import(torch) -> None:
    """Let torch's optimiser run without importing torch._dynamo first (about 2.5 s of a 3 s training command).

    Optimizer methods are wrapped by ``torch._disable_dynamo``, which imports the compiler on first call
    only to mark them "never compile", and caches the result on the function as ``__dynamo_disable``.
    Nothing here is ever compiled, so the plain function is that result: set it, and the import never
    happens. The numbers are the same either way (tests/learning/test_heads.py holds it).
    """
    wrapper_code = torch._compile._disable_dynamo(lambda: None).__code__
    for cls in (torch.optim.Optimizer, torch.optim.LBFGS):
        for attribute in vars(cls).values():
            original = getattr(attribute, "__wrapped__", None)
            if getattr(attribute, "__code__", None) is wrapper_code and getattr(original, "__dynamo_disable", None) is None:
                original.__dynamo_disable = original
