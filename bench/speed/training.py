"""Figure 5: training heads on 512-d embeddings, 20 concepts, with and without cross-validation."""

from __future__ import annotations

import time

import numpy as np

from .common import Row, clustered, fresh_home, met


def bench_training(rows: list[Row], sizes: tuple[int, ...]) -> None:
    """Figure 5: linear heads on 512-d embeddings, 20 concepts, with and without cross-validation."""
    import hashlib

    from core.heads import HeadConfig
    from core.projects import create_project
    from core.store import NewInput
    from core.training import train

    for n in sizes:
        fresh_home()
        project = create_project(f"train-{n}", "tiny")
        vectors = clustered(n, 512, 20, seed=n)
        labels = np.random.default_rng(n).integers(0, 20, n)
        items = [
            NewInput(hashlib.sha256(b"%d" % i).hexdigest(), "image", f"{i}", ".bin", b"%d" % i, "tiny-image", vectors[i]) for i in range(n)
        ]
        ids = project.store.add_inputs(items)
        concepts = project.store.ensure_concepts([f"concept {c}" for c in range(20)])
        for c in range(20):
            project.store.set_labels([ids[items[i].sha256] for i in np.flatnonzero(labels == c)], concepts[f"concept {c}"], 1)
        for evaluate in (False, True):
            config = _head_config(HeadConfig, evaluate)
            if config is None:
                continue
            start = time.perf_counter()
            train(project, config)
            took = time.perf_counter() - start
            goal = {10_000: 1.0, 100_000: 10.0}.get(n)
            label = f"train 20 linear heads, {n:,} x 512" + (", with cross-validation" if evaluate else "")
            rows.append(
                Row(
                    label,
                    f"{took:.2f} s",
                    "",
                    "",
                    f"< {goal:g} s" if goal and not evaluate else "",
                    met(took < goal) if goal and not evaluate else "",
                )
            )


def _head_config(head_config, evaluate: bool):
    fields = getattr(head_config, "__dataclass_fields__", {})
    for name in ("cross_validate", "evaluate", "cross_validation"):
        if name in fields:
            return head_config(**{name: evaluate})
    return head_config() if not evaluate else None
