"""FAISS indexes checked against brute-force numpy search, and the cache's staleness rules."""

from __future__ import annotations

import numpy as np
import pytest

from core import index as index_module
from core.index import VectorIndex, load_index
from core.store import NewInput, Store


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


def test_ivf_above_the_exact_limit_keeps_recall(monkeypatch):
    monkeypatch.setattr(index_module, "EXACT_SEARCH_LIMIT", 500)
    rng = np.random.default_rng(0)
    centres = _unit(rng, 20, 32)
    vectors = centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64)
    index = VectorIndex.build(ids, vectors)
    assert index.kind == "IVF"
    _, found = index.search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(found[i]) & set(exact[i])) / 10 for i in range(50)])
    assert recall >= 0.9


def test_empty_index_returns_padding():
    scores, ids = VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 0), np.float32)).search(np.ones((2, 3), np.float32), 4)
    assert ids.shape == (2, 4) and (ids == -1).all() and np.isneginf(scores).all()


def test_search_one_excludes_ids():
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 10, 8)
    hits = VectorIndex.build(np.arange(10), vectors).search_one(vectors[3], 3, exclude={3})
    assert [h.input_id for h in hits] != [] and 3 not in [h.input_id for h in hits] and len(hits) == 3


def _add(store: Store, rng: np.random.Generator, start: int, n: int, space: str = "s") -> None:
    store.add_inputs(
        [
            NewInput(f"{i:064x}", "text", f"t{i}", ".txt", b"x%d" % i, space, _unit(rng, 1, 8)[0], text=f"t{i}")
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
