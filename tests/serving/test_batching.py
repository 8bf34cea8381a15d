"""Tests for core.serving.batching: requests that arrive together share a forward pass; a full queue refuses."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.embedding import load_embedder
from core.inputs import read_texts
from core.serving.batching import BatchConfig, EmbedBatcher, QueueFullError


def test_concurrent_requests_share_forward_batches_and_get_their_own_vectors():
    embedder = load_embedder("tiny")
    batcher = EmbedBatcher(embedder, BatchConfig(window_s=0.05, max_batch=64))
    texts = [f"text number {i}" for i in range(16)]
    results: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        (embedded,) = batcher.embed(list(read_texts([texts[i]])))
        results[i] = embedded.vector

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = embedder.embed_texts(texts)
    assert all(np.allclose(results[i], alone[i]) for i in range(16))
    assert batcher.batches < 16  # some requests were embedded together


def test_a_full_queue_refuses_at_once():
    batcher = EmbedBatcher(load_embedder("tiny"), BatchConfig(max_waiting=4))
    with pytest.raises(QueueFullError, match="waiting to be embedded"):
        batcher.embed(list(read_texts(["x"] * 5)))
    assert len(batcher.embed(list(read_texts(["x"] * 4)))) == 4


@pytest.mark.parametrize("callers, inline", [(1, True), (3, False)])
def test_a_lone_request_runs_the_model_itself_and_others_share_the_worker(monkeypatch, callers, inline):
    import core.serving.batching as batching

    embedder = load_embedder("tiny")
    batcher = EmbedBatcher(embedder, BatchConfig(window_s=0.0), callers=lambda: callers)
    ran_in: list[str] = []
    original = batching.embed_decoded
    monkeypatch.setattr(batching, "embed_decoded", lambda *a, **k: ran_in.append(threading.current_thread().name) or original(*a, **k))
    (embedded,) = batcher.embed(list(read_texts(["a lone text"])))
    assert np.allclose(embedded.vector, embedder.embed_texts(["a lone text"])[0])
    assert (ran_in == [threading.current_thread().name]) == inline and (batcher.batches == 0) == inline
