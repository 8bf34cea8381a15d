"""FAISS indexes checked against brute-force numpy search, and the cache's staleness rules."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np
import pytest

from core.storage import NewInput, Store
from core.storage import index as index_module
from core.storage.index import IndexConfig, VectorIndex, load_index


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n, d, k", [(1, 8, 1), (50, 16, 5), (1000, 64, 10), (7, 4, 20)])
def test_search_matches_brute_force(n, d, k):
    rng = np.random.default_rng(n)
    vectors, queries = _unit(rng, n, d), _unit(rng, 5, d)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    scores, found = VectorIndex.build(ids, vectors).search(queries, k)
    exact = queries @ vectors.T
    for q in range(len(queries)):
        order = np.argsort(-exact[q])[: min(k, n)]
        np.testing.assert_array_equal(found[q, : len(order)], ids[order])
        np.testing.assert_allclose(scores[q, : len(order)], exact[q, order], rtol=1e-5, atol=1e-5)
        assert (found[q, len(order) :] == -1).all()


def _clustered(rng: np.random.Generator, n: int, d: int, clusters: int = 20) -> np.ndarray:
    """Unit vectors in groups, like real embeddings and bench.speed's ``clustered`` (uniform noise is no index's case)."""
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(found: np.ndarray, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int = 10) -> float:
    exact = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]
    return float(np.mean([len(set(f[:k]) & set(e)) / k for f, e in zip(found, exact)]))


# A switch point low enough for a test; a small scan so that the approximate path is really approximate.
SMALL = IndexConfig(exact_limit=500, min_scanned=256)


@pytest.mark.parametrize("n, d", [(3000, 32), (1200, 64), (3000, 8)])
def test_approximate_index_above_the_switch_keeps_recall_and_exact_scores(n, d):
    rng = np.random.default_rng(n)
    vectors = _clustered(rng, n, d)
    queries = vectors[:50] + 0.05 * rng.normal(size=(50, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    index = VectorIndex.build(ids, vectors, SMALL)
    assert index.kind == "IVF-SQ8" and index.cells == SMALL.cells_for(n) and len(index) == n
    scores, found = index.search(queries, 10)
    assert _recall(found, queries, vectors, ids) >= 0.95
    # The shortlist is re-ranked against the exact vectors: the scores are true cosines, in order.
    rows = {int(i): r for r, i in enumerate(ids)}
    exact = np.array([[queries[q] @ vectors[rows[int(i)]] for i in found[q]] for q in range(len(queries))])
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize(
    "n, cells, probes",
    [(20_001, 565, 116), (100_000, 1024, 42), (1_000_000, 1024, 8), (100, 40, 40)],
)
def test_cells_grow_with_the_vectors_and_small_cells_are_probed_more(n, cells, probes):
    config = IndexConfig()
    assert config.cells_for(n) == cells and config.probes_for(n, cells) == probes


def test_concurrent_single_searches_agree_and_keep_each_threads_setting():
    rng = np.random.default_rng(13)
    vectors = _clustered(rng, 2000, 16)
    index = VectorIndex.build(np.arange(2000), vectors, SMALL)
    expected = [index.search(v, 10)[1][0].tolist() for v in vectors[:40]]
    threads = faiss.omp_get_max_threads()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda v: index.search(v, 10)[1][0].tolist(), vectors[:40]))
    assert got == expected and faiss.omp_get_max_threads() == threads


def test_exact_up_to_the_switch_point():
    rng = np.random.default_rng(9)
    vectors = _clustered(rng, 500, 16)
    assert VectorIndex.build(np.arange(500), vectors, SMALL).kind == "exact"
    assert VectorIndex.build(np.arange(501), _clustered(rng, 501, 16), SMALL).kind == "IVF-SQ8"


def test_k_larger_than_an_approximate_index_pads_with_minus_one():
    rng = np.random.default_rng(10)
    vectors = _clustered(rng, 600, 16)
    index = VectorIndex.build(np.arange(600), vectors, SMALL)
    for k in (30, 599, 700):  # 30: from the probed cells; more than they hold: every vector, exactly
        scores, found = index.search(vectors[:2], k)
        assert found.shape == (2, k) and list(found[:, 0]) == [0, 1]
        assert _recall(found, vectors[:2], vectors, np.arange(600), min(k, 600)) >= 0.95
        for row, score in zip(found, scores):
            real = row[row >= 0]
            assert len(real) == len(set(real)) == min(k, 600) and np.isneginf(score[row < 0]).all()
    assert index.search_one(vectors[0], 5, exclude={0})[0].input_id != 0


@pytest.mark.parametrize(
    "make, error",
    [
        (
            lambda: VectorIndex.build(np.arange(10), _unit(np.random.default_rng(0), 10, 8)).search(np.ones((1, 9), np.float32), 3),
            "dimensions",
        ),
        (
            lambda: VectorIndex.build(np.arange(10), _unit(np.random.default_rng(0), 10, 8)).search(np.ones((1, 2, 8), np.float32), 3),
            "dimensions",
        ),
        (lambda: VectorIndex.build(np.arange(9), _unit(np.random.default_rng(0), 10, 8)), "9 ids for 10 vectors"),
        (lambda: IndexConfig(exact_limit=0), "exact_limit"),
        (lambda: IndexConfig(min_probes=0), "min_probes"),
        (lambda: IndexConfig(regrow_ratio=1.0), "regrow_ratio"),
    ],
)
def test_bad_inputs_raise_with_context(make, error):
    with pytest.raises(ValueError, match=error):
        make()


def test_empty_index_returns_padding():
    scores, ids = VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 0), np.float32)).search(np.ones((2, 3), np.float32), 4)
    assert ids.shape == (2, 4) and (ids == -1).all() and np.isneginf(scores).all()


def test_search_one_excludes_ids():
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 10, 8)
    hits = VectorIndex.build(np.arange(10), vectors).search_one(vectors[3], 3, exclude={3})
    assert [h.input_id for h in hits] != [] and 3 not in [h.input_id for h in hits] and len(hits) == 3


def _add(store: Store, rng: np.random.Generator, start: int, n: int, space: str = "s", vectors: np.ndarray | None = None) -> None:
    vectors = _unit(rng, n, 8) if vectors is None else vectors
    store.add_inputs(
        [
            NewInput(f"{i:064x}", "text", f"t{i}", ".txt", b"x%d" % i, space, vectors[i - start], text=f"t{i}")
            for i in range(start, start + n)
        ]
    )


def test_load_index_rebuilds_when_store_changes(tmp_path):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(2)
    _add(store, rng, 0, 5)
    first = load_index(store, "s")
    assert len(first) == 5 and load_index(store, "s") is first
    _add(store, rng, 5, 3)
    assert len(load_index(store, "s")) == 8


def test_stale_or_corrupt_cache_file_is_never_used(tmp_path):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(3)
    _add(store, rng, 0, 4)
    load_index(store, "s")
    index_module._cache.clear()
    (store.root / "index" / "s.faiss").write_bytes(b"garbage")
    ids, vectors = store.load_embeddings("s")
    rebuilt = load_index(store, "s")
    _, found = rebuilt.search(vectors[:1], 1)
    assert len(rebuilt) == 4 and found[0, 0] == ids[0]
    # The cache written by that rebuild is used by a fresh process.
    index_module._cache.clear()
    assert len(load_index(store, "s")) == 4


def test_added_rows_extend_the_index_without_a_rebuild(tmp_path, monkeypatch):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(4)
    _add(store, rng, 0, 5)
    first = load_index(store, "s")
    builds = []
    original = VectorIndex.build.__func__
    monkeypatch.setattr(VectorIndex, "build", classmethod(lambda cls, ids, vectors: builds.append(len(ids)) or original(cls, ids, vectors)))
    _add(store, rng, 5, 3)
    grown = load_index(store, "s")
    ids, vectors = store.load_embeddings("s")
    _, found = grown.search(vectors, 1)
    assert builds == [] and len(grown) == 8 and list(found[:, 0]) == list(ids)
    assert len(first) == 5  # the index other threads may still hold is left alone
    index_module._cache.clear()  # a new process extends from the cache file just the same
    _add(store, rng, 8, 2)
    assert len(load_index(store, "s")) == 10 and builds == []


def test_deleting_the_last_input_and_reusing_its_id_forces_a_rebuild(tmp_path):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(5)
    _add(store, rng, 0, 3)
    load_index(store, "s")
    ids, _ = store.load_embeddings("s")
    store.delete_inputs([int(ids[-1])])
    _add(store, rng, 100, 1)  # SQLite hands the deleted largest id out again
    new_ids, vectors = store.load_embeddings("s")
    assert int(new_ids[-1]) == int(ids[-1])
    scores, found = load_index(store, "s").search(vectors[-1:], 1)
    assert found[0, 0] == new_ids[-1] and scores[0, 0] > 0.999


def _count_builds(monkeypatch) -> list[int]:
    builds: list[int] = []
    original = VectorIndex.build.__func__
    monkeypatch.setattr(
        VectorIndex,
        "build",
        classmethod(lambda cls, ids, vectors, config=SMALL: builds.append(len(ids)) or original(cls, ids, vectors, config)),
    )
    return builds


def test_extending_an_approximate_index_matches_a_rebuild(tmp_path, monkeypatch):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(11)
    data = _clustered(rng, 800, 8, clusters=12)
    _add(store, rng, 0, 600, vectors=data[:600])
    assert load_index(store, "s", SMALL).kind == "IVF-SQ8"
    builds = _count_builds(monkeypatch)
    _add(store, rng, 600, 200, vectors=data[600:])
    grown = load_index(store, "s", SMALL)
    assert builds == [] and len(grown) == 800 and grown.kind == "IVF-SQ8"
    ids, vectors = store.load_embeddings("s")
    rebuilt = VectorIndex.build(ids, vectors, SMALL)
    _, by_growth = grown.search(vectors, 10)
    _, by_rebuild = rebuilt.search(vectors, 10)
    assert list(by_growth[:, 0]) == list(ids) == list(by_rebuild[:, 0])  # every input finds itself first
    assert _recall(by_growth, vectors, vectors, ids) >= 0.95 and _recall(by_rebuild, vectors, vectors, ids) >= 0.95
    # The cache file of the grown index serves a new process with the same answers.
    index_module._cache.clear()
    _, reloaded = load_index(store, "s", SMALL).search(vectors, 10)
    np.testing.assert_array_equal(reloaded, by_growth)
    assert builds == [800]  # only the comparison rebuild above


def test_growing_far_past_its_cells_lays_the_index_out_again(tmp_path, monkeypatch):
    store = Store.initialize(tmp_path / "p", {"name": "p"})
    rng = np.random.default_rng(12)
    _add(store, rng, 0, 520, vectors=_clustered(rng, 520, 8))
    first = load_index(store, "s", SMALL)
    builds = _count_builds(monkeypatch)
    _add(store, rng, 520, 80, vectors=_clustered(rng, 80, 8))
    assert load_index(store, "s", SMALL).cells == first.cells and builds == []
    _add(store, rng, 600, 700, vectors=_clustered(rng, 700, 8))  # 4 * sqrt(1300) >= 1.5 * 4 * sqrt(520)
    regrown = load_index(store, "s", SMALL)
    assert builds == [1300] and regrown.cells == SMALL.cells_for(1300) > first.cells
