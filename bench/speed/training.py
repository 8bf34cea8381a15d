"""Figure 5: training heads on 512-d embeddings, 20 concepts, with and without cross-validation.

Each size is timed four ways: linear heads forced through ``SelectionConfig(kinds=(LINEAR,))``
(what the figure names) and the default training (every candidate head competes), each with
and without cross-validation (``HeadConfig(evaluate=False)``). Labels follow the clusters, with
5% of them moved to another concept, as labels of real embeddings do: fitting pure noise is
neither the common case nor a fair one for an optimiser.
"""

from __future__ import annotations

import time

import numpy as np

from .common import Row, fresh_home, met

CONCEPTS = 20
DIM = 512
GOALS = {10_000: 1.0, 100_000: 10.0}


def labelled_clusters(n: int, dim: int, concepts: int, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors (n, dim) in ``concepts`` groups, the group of each, a share ``noise`` of them wrong)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(concepts, dim)).astype(np.float32)
    labels = rng.integers(0, concepts, n)
    vectors = centres[labels] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    wrong = rng.random(n) < noise
    labels[wrong] = rng.integers(0, concepts, int(wrong.sum()))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def bench_training(rows: list[Row], sizes: tuple[int, ...]) -> None:
    """Figure 5: linear heads (and the default heads) on 512-d embeddings, 20 concepts, with and without cross-validation."""
    import hashlib

    from core.learning import train
    from core.learning.fitting import fit_linear
    from core.learning.heads import LINEAR, HeadConfig
    from core.learning.selection import SelectionConfig
    from core.storage import NewInput
    from core.storage.projects import create_project

    # Importing torch's optimiser is a one-off of a few seconds per process: not part of the figure.
    fit_linear(np.eye(2, dtype=np.float32), np.array([0, 1]), exclusive=True)
    for n in sizes:
        fresh_home()
        project = create_project(f"train-{n}", "tiny")
        vectors, labels = labelled_clusters(n, DIM, CONCEPTS, seed=n)
        items = [
            NewInput(hashlib.sha256(b"%d" % i).hexdigest(), "image", f"{i}", ".bin", b"%d" % i, "tiny-image", vectors[i]) for i in range(n)
        ]
        ids = project.store.add_inputs(items).ids
        concepts = project.store.ensure_concepts([f"concept {c}" for c in range(CONCEPTS)])
        for c in range(CONCEPTS):
            project.store.set_labels([ids[items[i].sha256] for i in np.flatnonzero(labels == c)], concepts[f"concept {c}"], 1)
        goal = GOALS.get(n)
        for heads, selection in (("linear", SelectionConfig(kinds=(LINEAR,))), ("default", SelectionConfig())):
            for evaluate in (False, True):
                start = time.perf_counter()
                result = train(project, HeadConfig(evaluate=evaluate), selection=selection)
                took = time.perf_counter() - start
                kinds = sorted({p.head for p in result.concepts if p.head != "none"})  # "none": the empty text space
                label = f"train {CONCEPTS} {heads} heads ({', '.join(kinds)}), {n:,} x {DIM}, " + (
                    "with cross-validation" if evaluate else "no cross-validation"
                )
                rows.append(Row(label, f"{took:.2f} s", "", "", f"< {goal:g} s" if goal else "", met(took < goal) if goal else ""))
