"""When is an input "unknown"? The cut-off rule measured on real data: inputs of the labelled concepts kept, others caught.

For each dataset (bench/datasets.py), each k in SHOTS and each of SEEDS seeds: half the classes
(drawn per seed) are the concepts a person labelled, k examples each, the rest of their pool is
unlabelled; the other classes are what the person never labelled. On the fixed test set, an
in-distribution input (a test input of a labelled class) should be kept (not called unknown) and
an out-of-distribution one (a test input of another class) caught.

Two tables:

- the rules: the old one (the lowest held-out nearest-labelled similarity less 0.02 below 100
  inputs, else its 1 % quantile less 0.02) and the one training uses now (``fit_unknown_cutoff``:
  a stated share of held-out inputs must pass), both on the same cross-validated similarities;
- the scores: does anything separate the two kinds of input better than the similarity to the
  nearest labelled example? Area under the ROC curve, and the share of out-of-distribution
  inputs caught where 95 % of the in-distribution test inputs are kept (a cut-off set on the
  test set itself: the best any rule could do with that score).

Run with ``python -m bench.unknown [--seeds N] [--datasets a,b]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.datasets import Dataset, load_datasets, say

SHOTS = (2, 4, 8, 16, 64)
SEEDS = 5
KEEP = 0.95


def _old_cutoff(nearest: np.ndarray) -> float:
    """The rule before cross-validated calibration: the minimum below 100 inputs, else the 1 % quantile; less 0.02."""
    values = nearest[np.isfinite(nearest)]
    level = values.min() if len(values) < 100 else np.quantile(values, 0.01)
    return float(level - 0.02)


def _fit(ds: Dataset, labelled: np.ndarray, shots: np.ndarray):
    from core.learning.candidates import SpaceData, default_heads
    from core.learning.heads import HeadConfig
    from core.learning.selection import fit_space

    c = len(labelled)
    y = np.searchsorted(labelled, ds.pool_labels[shots])
    labels = np.where(np.eye(c, dtype=bool)[y], 1, -1).astype(np.int8)
    rest = np.setdiff1d(np.flatnonzero(np.isin(ds.pool_labels, labelled)), shots)
    config = HeadConfig()
    data = SpaceData(
        space=ds.name,
        names=[ds.classes[i] for i in labelled],
        concept_ids=np.arange(c),
        exclusive=True,
        ids=shots.astype(np.int64),
        vectors=ds.pool[shots],
        labels=labels,
        unlabelled=ds.pool[rest],
        defaults=default_heads((labels > 0).sum(0), (labels < 0).sum(0), True, False, config.min_linear_positives),
    )
    return fit_space(data, config)


def _scores(heads, x: np.ndarray) -> dict[str, np.ndarray]:
    """Candidate in-distribution scores (higher: more like the labelled examples) for inputs x."""
    sims = x @ heads.memory.T
    features = heads.features(x) @ heads.features(heads.memory).T
    probabilities = heads.score(x)
    predicted = np.nanargmax(probabilities, axis=1)
    positives = heads.memory_labels.T > 0  # (C, m)
    logits = heads.calibrated_logits(x)
    top = logits.max(axis=1)
    return {
        "nearest labelled (used)": sims.max(axis=1),
        "mean of 3 nearest": -np.sort(-sims, axis=1)[:, :3].mean(axis=1),
        "nearest, centred features": features.max(axis=1),
        "nearest of the predicted concept": np.where(positives[predicted], sims, -np.inf).max(axis=1),
        "top probability": np.nanmax(probabilities, axis=1),
        "energy (log-sum-exp of logits)": top + np.log(np.exp(logits - top[:, None]).sum(axis=1)),
    }


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    above = inside[:, None] > outside[None, :]
    ties = inside[:, None] == outside[None, :]
    return float(above.mean() + 0.5 * ties.mean())


def run(datasets: list[Dataset], shots: tuple[int, ...], seeds: int) -> tuple[dict, dict]:
    rules: dict = {}
    scores: dict = {}
    for ds in datasets:
        n_classes = len(ds.classes)
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            labelled = np.sort(rng.permutation(n_classes)[: n_classes // 2])
            inside, outside = ds.test[np.isin(ds.test_labels, labelled)], ds.test[~np.isin(ds.test_labels, labelled)]
            for k in shots:
                picks = np.sort(np.concatenate([rng.permutation(np.flatnonzero(ds.pool_labels == c))[:k] for c in labelled]))
                fit = _fit(ds, labelled, picks)
                similarity_in, similarity_out = fit.heads.unknown(inside)[1], fit.heads.unknown(outside)[1]
                for rule, cutoff in (("old", _old_cutoff(fit.oof_nearest)), ("new", fit.heads.unknown_cutoff)):
                    row = rules.setdefault((ds.name, k, rule), {"keep": [], "catch": [], "held out": []})
                    row["keep"].append(float((similarity_in >= cutoff).mean()))
                    row["catch"].append(float((similarity_out < cutoff).mean()))
                    row["held out"].append(int(np.isfinite(fit.oof_nearest).sum()))
                a, b = _scores(fit.heads, inside), _scores(fit.heads, outside)
                for name in a:
                    row = scores.setdefault((ds.name, k, name), {"auroc": [], "catch at 95 % kept": []})
                    row["auroc"].append(_auroc(a[name], b[name]))
                    row["catch at 95 % kept"].append(float((b[name] < np.quantile(a[name], 1 - KEEP)).mean()))
            say(f"{ds.name}: seed {seed + 1} of {seeds} done")
    return rules, scores


def print_report(rules: dict, scores: dict, seeds: int) -> None:
    print(f"\n## Unknown-input rules (mean of {seeds} seeds; keep: in-distribution test inputs kept, catch: others caught)\n")
    print("| dataset | shots per concept | held-out inputs | old keep | old catch | new keep | new catch |")
    print("|---|---|---|---|---|---|---|")
    for ds, k in sorted({(d, k) for d, k, _ in rules}, key=lambda x: (x[0], x[1])):
        old, new = rules[(ds, k, "old")], rules[(ds, k, "new")]
        print(
            f"| {ds} | {k} | {np.mean(new['held out']):.0f} | {np.mean(old['keep']):.1%} | {np.mean(old['catch']):.1%} "
            f"| {np.mean(new['keep']):.1%} | {np.mean(new['catch']):.1%} |"
        )
    print("\n## Scores (area under the ROC curve; share caught where 95 % of in-distribution test inputs are kept)\n")
    names = list(dict.fromkeys(name for _, _, name in scores))
    print("| dataset | shots | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for ds, k in sorted({(d, k) for d, k, _ in scores}, key=lambda x: (x[0], x[1])):
        cells = [f"{np.mean(scores[(ds, k, n)]['auroc']):.2f} / {np.mean(scores[(ds, k, n)]['catch at 95 % kept']):.0%}" for n in names]
        print(f"| {ds} | {k} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--datasets", default="openclipart,fashion-mnist")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rules, scores = run(load_datasets(tuple(args.datasets.split(","))), SHOTS, args.seeds)
    print_report(rules, scores, args.seeds)
    say(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
