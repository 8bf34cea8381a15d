"""Figure 7: similarity search latency and recall@10 against exact search."""

from __future__ import annotations

import time

import numpy as np

from .common import Row, clustered, met


def bench_search(rows: list[Row], sizes: tuple[int, ...], queries: int = 200) -> None:
    """Figure 7: similarity search latency and recall@10 against exact search."""
    import faiss

    from core.index import VectorIndex

    for n in sizes:
        vectors = clustered(n, 512, max(20, n // 2000), seed=7)
        rng = np.random.default_rng(1)
        picks = rng.integers(0, n, queries)
        q = vectors[picks] + 0.02 * rng.normal(size=(queries, 512)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        start = time.perf_counter()
        index = VectorIndex.build(np.arange(n, dtype=np.int64), vectors)
        build = time.perf_counter() - start
        exact = faiss.IndexFlatIP(512)
        exact.add(vectors)
        _, truth = exact.search(q, 10)
        latencies, found = [], []
        for row in q:
            start = time.perf_counter()
            _, ids = index.search(row[None], 10)
            latencies.append(time.perf_counter() - start)
            found.append(ids[0])
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        med = np.median(latencies) * 1e3
        goal = n >= 1_000_000
        rows.append(
            Row(
                f"search {n:,} x 512 ({index.kind}, built in {build:.0f} s)",
                f"{med:.2f} ms, recall@10 {recall:.3f}",
                "exact",
                "",
                "< 5 ms, >= 0.95" if goal else "",
                met(med < 5 and recall >= 0.95) if goal else "",
            )
        )
        del index, exact, vectors
