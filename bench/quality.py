"""k-shot quality: conceptlab's cross-validated heads against scikit-learn baselines on real data.

For each dataset (bench/datasets.py), each k in SHOTS and each of SEEDS seeds: k labelled
examples per concept are drawn from the pool; the rest of the pool stays in the project
unlabelled, as when a person uploads a folder and labels a few files (conceptlab may use it:
feature centring and, if cross-validation favours it, prototypes refined by label propagation;
the baselines see only the labelled examples). Everyone is scored on the same fixed test set, on the same
``lite`` embeddings. Exclusive concepts: accuracy and macro F1 of the top concept.

Run with ``make bench`` or ``python -m bench.quality [--seeds N] [--datasets a,b]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter, defaultdict

import numpy as np

from bench.datasets import Dataset, load_datasets, say

SHOTS = (1, 2, 4, 8, 16, 64)
SEEDS = 5
METHODS = ("conceptlab", "LogisticRegression", "1-NN", "class means")


def _conceptlab(ds: Dataset, shots: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    from core.learning.candidates import SpaceData, default_heads, kind_of
    from core.learning.heads import ENSEMBLE, HeadConfig
    from core.learning.selection import SelectionConfig, fit_space

    c = len(ds.classes)
    y = ds.pool_labels[shots]
    labels = np.where(np.eye(c, dtype=bool)[y], 1, -1).astype(np.int8)
    rest = np.setdiff1d(np.arange(len(ds.pool)), shots)
    unlabelled = ds.pool[np.random.default_rng(seed).permutation(rest)[: SelectionConfig().unlabelled_sample]]
    config = HeadConfig()
    data = SpaceData(
        space=ds.name,
        names=list(ds.classes),
        concept_ids=np.arange(c),
        exclusive=True,
        ids=shots.astype(np.int64),
        vectors=ds.pool[shots],
        labels=labels,
        unlabelled=unlabelled,
        defaults=default_heads((labels > 0).sum(0), (labels < 0).sum(0), True, False, config.min_linear_positives),
    )
    fit = fit_space(data, config)
    candidate = fit.choices[0].candidate
    # The ensemble's weights differ on every draw: counted by kind, or each would be its own entry.
    return np.nanargmax(fit.heads.score(ds.test), axis=1), ENSEMBLE if kind_of(candidate) == ENSEMBLE else candidate


def _baselines(ds: Dataset, shots: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

    x, y = ds.pool[shots], ds.pool_labels[shots]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "LogisticRegression": LogisticRegression(max_iter=2000).fit(x, y).predict(ds.test),
            "1-NN": KNeighborsClassifier(1).fit(x, y).predict(ds.test),
            "class means": NearestCentroid().fit(x, y).predict(ds.test),
        }


def _macro_f1(truth: np.ndarray, predicted: np.ndarray, n: int) -> float:
    scores = []
    for c in range(n):
        tp = int(((predicted == c) & (truth == c)).sum())
        denominator = int((predicted == c).sum() + (truth == c).sum())
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def run(datasets: list[Dataset], shots: tuple[int, ...], seeds: int) -> dict:
    """{dataset: {method: {k: (mean accuracy, mean macro F1)}}} and the heads conceptlab chose."""
    results: dict = {}
    for ds in datasets:
        c = len(ds.classes)
        scores: dict = defaultdict(lambda: defaultdict(list))
        chosen: dict = defaultdict(Counter)
        seconds: dict = defaultdict(list)
        for k in shots:
            for seed in range(seeds):
                rng = np.random.default_rng(1000 * k + seed)
                picks = [
                    rng.choice(np.flatnonzero(ds.pool_labels == j), min(k, int((ds.pool_labels == j).sum())), replace=False)
                    for j in range(c)
                ]
                shots_idx = np.sort(np.concatenate(picks))
                started = time.perf_counter()
                predicted = {"conceptlab": None}
                predicted["conceptlab"], candidate = _conceptlab(ds, shots_idx, seed)
                seconds[k].append(time.perf_counter() - started)
                chosen[k][candidate] += 1
                predicted.update(_baselines(ds, shots_idx))
                for method, p in predicted.items():
                    scores[method][k].append((float((p == ds.test_labels).mean()), _macro_f1(ds.test_labels, p, c)))
            say(f"{ds.name}: k={k} done, conceptlab trains in {np.mean(seconds[k]):.2f}s, chose {dict(chosen[k])}")
        results[ds.name] = {
            "scores": {m: {k: tuple(np.mean(scores[m][k], axis=0)) for k in shots} for m in METHODS},
            "chosen": {k: dict(chosen[k]) for k in shots},
            "seconds": {k: float(np.mean(seconds[k])) for k in shots},
            "sizes": (len(ds.classes), len(ds.pool), len(ds.test)),
        }
    return results


def format_table(results: dict, shots: tuple[int, ...]) -> str:
    """accuracy / macro F1 per k, conceptlab first, the best baseline marked per column."""
    lines = []
    for name, result in results.items():
        classes, pool, test = result["sizes"]
        lines.append(f"\n{name}: {classes} concepts, pool {pool}, test {test}  (accuracy / macro F1, mean of seeds)")
        lines.append(f"{'method':<20}" + "".join(f"{f'k={k}':>14}" for k in shots))
        for method in METHODS:
            cells = "".join(f"{acc:>7.3f}/{f1:.3f}" for acc, f1 in (result["scores"][method][k] for k in shots))
            lines.append(f"{method:<20}{cells}")
        margin = []
        for k in shots:
            best = max(result["scores"][m][k][0] for m in METHODS[1:])
            margin.append(result["scores"]["conceptlab"][k][0] - best)
        lines.append(f"{'vs best baseline':<20}" + "".join(f"{m:>+14.3f}" for m in margin))
        lines.append(f"{'train seconds':<20}" + "".join(f"{result['seconds'][k]:>14.2f}" for k in shots))
        for k in shots:
            lines.append(f"  k={k}: heads chosen {result['chosen'][k]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--datasets", default="openclipart,fashion-mnist,chatterbot")
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    args = parser.parse_args(argv)
    shots = tuple(int(k) for k in args.shots.split(","))
    started = time.perf_counter()
    results = run(load_datasets(tuple(args.datasets.split(","))), shots, args.seeds)
    print(format_table(results, shots))
    print(f"\n{args.seeds} seeds, lite embedder, {time.perf_counter() - started:.0f}s in all")


if __name__ == "__main__":
    main()
