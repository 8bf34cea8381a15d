"""Figure 7: similarity search latency and recall@10 against exact search, and the indexes not chosen.

Each size gets a row for the index ``core.storage.index`` builds (structure, build time, bytes, median latency of
one query per call as the app makes them, the CPU time of that call, recall@10 against exact search).
At ``compare_at`` vectors the alternatives are built side by side on the same vectors and queries, so the
choice in ``IndexConfig`` stays visible: IVFFlat, SQ8 without re-ranking, the old k-means training, HNSW.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .common import Row, clustered, met

DIM = 512


def _measure(index, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(median wall ms, median CPU ms, recall@10) over single-query calls of ``index.search(query, 10)``."""

    def search(query: np.ndarray) -> np.ndarray:
        return index.search(query, 10)[1][0]

    search(queries[:1])  # warm
    wall, cpu, found = [], [], []
    for row in queries:
        start, start_cpu = time.perf_counter(), time.process_time()
        found.append(search(row[None]))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) if len(truth) else float("nan")
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3), float(recall)


def _timed(build: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    built = build()
    return built, time.perf_counter() - start


def _alternatives(vectors: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """Indexes not chosen, each a function building it over ``vectors`` (a bare FAISS index)."""
    import faiss

    from core.storage.index import DEFAULT_CONFIG as c

    n = len(vectors)
    cells = c.cells_for(n)

    def ivf(sq8: bool, refine: bool, iterations: int, per_cell: int) -> faiss.Index:
        quantiser = faiss.IndexFlatIP(DIM)
        if sq8:
            index = faiss.IndexIVFScalarQuantizer(quantiser, DIM, cells, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantiser, DIM, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter, index.cp.min_points_per_centroid = iterations, 1
        picks = np.sort(np.random.default_rng(0).choice(n, min(n, cells * per_cell), replace=False))
        index.train(vectors[picks])
        index.nprobe = c.probes_for(n, cells)
        outer = faiss.IndexRefineFlat(index) if refine else index
        if refine:
            outer.k_factor = float(c.rerank_factor)
        outer.add(vectors)
        return outer

    def hnsw() -> faiss.Index:
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = 40, 64
        index.add(vectors)
        return index

    probe = f"{cells} cells, nprobe {c.probes_for(n, cells)}"
    return [
        (f"IVFFlat ({probe})", lambda: ivf(False, False, c.kmeans_iterations, c.training_points_per_cell)),
        (f"IVF-SQ8 not re-ranked ({probe})", lambda: ivf(True, False, c.kmeans_iterations, c.training_points_per_cell)),
        (f"IVF-SQ8 re-ranked, k-means 25 it. x 64 pts/cell ({probe})", lambda: ivf(True, True, 25, 64)),
        ("HNSW (M 32, efConstruction 40, efSearch 64)", hnsw),
    ]


def bench_search(rows: list[Row], sizes: tuple[int, ...], queries: int = 200, compare_at: int = 100_000) -> None:
    """Figure 7: similarity search latency and recall@10 against exact search."""
    for n in sizes:
        _bench_size(rows, n, queries, compare_alternatives=n == compare_at, compare_threads=n == max(sizes))


def _bench_size(rows: list[Row], n: int, queries: int, compare_alternatives: bool, compare_threads: bool) -> None:
    import faiss

    from core.storage.index import VectorIndex

    vectors = clustered(n, DIM, max(20, n // 2000), seed=7)
    rng = np.random.default_rng(1)
    q = vectors[rng.integers(0, n, queries)] + 0.02 * rng.normal(size=(queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(q, 10)  # one batched call: the ground truth
    exact_ms, exact_cpu, _ = _measure(exact, q[:20], truth[:0])
    reference = f"exact: {exact_ms:.2f} ms (CPU {exact_cpu:.2f})"
    del exact

    index, build = _timed(lambda: VectorIndex.build(np.arange(n, dtype=np.int64), vectors))
    ms, cpu, recall = _measure(index, q, truth)
    goal = n >= 1_000_000
    shape = f"{index.kind}, {index.cells} cells" if index.cells else index.kind
    rows.append(
        Row(
            f"search {n:,} x {DIM} ({shape}, built in {build:.0f} s, {index.nbytes / 2**20:.0f} MiB)",
            f"{ms:.2f} ms (CPU {cpu:.2f}), recall@10 {recall:.3f}",
            reference,
            f"{exact_ms / ms:.0f}x",
            "< 5 ms, >= 0.95" if goal else "",
            met(ms < 5 and recall >= 0.95) if goal else "",
        )
    )
    if compare_threads and index.cells:
        # FAISS answers one query on one thread: a thread count of 1 should change nothing.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        one_ms, one_cpu, _ = _measure(index, q, truth)
        faiss.omp_set_num_threads(threads)
        rows.append(
            Row(f"  same, faiss.omp_set_num_threads(1) (default {threads})", f"{one_ms:.2f} ms (CPU {one_cpu:.2f})", f"{ms:.2f} ms")
        )
    del index
    if compare_alternatives:
        for label, make in _alternatives(vectors):
            other, seconds = _timed(make)
            ms, cpu, recall = _measure(other, q, truth)
            size = faiss.serialize_index(other).size / 2**20
            rows.append(
                Row(
                    f"  not chosen: {label}, built in {seconds:.0f} s, {size:.0f} MiB",
                    f"{ms:.2f} ms (CPU {cpu:.2f}), recall@10 {recall:.3f}",
                    reference,
                )
            )
            del other
