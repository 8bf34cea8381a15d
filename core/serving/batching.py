"""Dynamic batching: inputs from requests that arrive together are embedded in one forward pass.

Each caller decodes and prepares its own photos (resize, crop, normalise) in its own thread, so
many requests' photos are made ready side by side; one worker thread per embedder then takes the
first waiting request, waits a few milliseconds for more (up to a batch's worth) when other
requests are being handled, runs the model on them all at once and hands each request its own results.
The queue is bounded in inputs: when it is full a request is refused at once (the server answers
503 with Retry-After) instead of memory growing without end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from core.embedding.base import Embedder
from core.errors import ConceptlabError, InputError
from core.ingestion import DecodedInput, EmbeddedInput, decode_inputs, embed_decoded, prepare_decoded
from core.inputs.raw import RawInput

logger = logging.getLogger(__name__)


class QueueFullError(ConceptlabError):
    """Too many inputs are waiting to be embedded; the client should try again shortly."""


@dataclass(frozen=True)
class BatchConfig:
    """How long a batch waits to fill, how big it may get, and how many inputs may wait in all."""

    window_s: float = 0.005
    max_batch: int = 32
    max_waiting: int = 256


@dataclass
class _Request:
    decoded: list[DecodedInput | InputError]
    future: Future


class EmbedBatcher:
    """Embeds the inputs of concurrent callers together; ``embed`` blocks until the caller's own results are in."""

    def __init__(self, embedder: Embedder, config: BatchConfig = BatchConfig(), callers: Callable[[], int] | None = None) -> None:
        """``callers``: how many requests are being handled now; the batch waits for more only when others are."""
        self.embedder = embedder
        self.config = config
        self._callers = callers or (lambda: 2)
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._waiting = 0
        self._lock = threading.Lock()
        self.batches = 0  # forward batches run so far (for tests and logs)
        threading.Thread(target=self._work, name=f"conceptlab-batch-{embedder.spec}", daemon=True).start()

    def embed(self, raws: list[RawInput]) -> list[EmbeddedInput | InputError]:
        """Embed ``raws`` (in order), batched with whatever other requests are waiting.

        Raises:
            QueueFullError: more than ``max_waiting`` inputs would be waiting.
        """
        if not raws:
            return []
        with self._lock:
            if self._waiting + len(raws) > self.config.max_waiting:
                raise QueueFullError(f"{self._waiting} inputs are waiting to be embedded: try again in a moment")
            self._waiting += len(raws)
        try:
            decoded = prepare_decoded(self.embedder, decode_inputs(raws, self.embedder.image_size))
        except BaseException:
            with self._lock:
                self._waiting -= len(raws)
            raise
        if self._callers() <= 1 and self._queue.empty():
            # Alone: nothing to batch with, so the model runs here rather than after a hop to the worker and back.
            with self._lock:
                self._waiting -= len(raws)
            return embed_decoded(self.embedder, decoded)
        request = _Request(decoded, Future())
        self._queue.put(request)
        return request.future.result()

    def _work(self) -> None:
        while True:
            requests = [self._queue.get()]
            size = len(requests[0].decoded)
            # A lone request does not wait for company that is not coming: that would only add the window to it.
            window = self.config.window_s if self._callers() > 1 else 0.0
            deadline = time.monotonic() + window
            while size < self.config.max_batch:
                try:
                    request = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                requests.append(request)
                size += len(request.decoded)
            self._run(requests, size)

    def _run(self, requests: list[_Request], size: int) -> None:
        with self._lock:
            self._waiting -= size
        try:
            results = embed_decoded(self.embedder, [item for r in requests for item in r.decoded])
        except Exception as e:  # noqa: BLE001 - handed to every waiting caller, who raises it in its own request
            for request in requests:
                request.future.set_exception(e)
            return
        self.batches += 1
        start = 0
        for request in requests:
            request.future.set_result(results[start : start + len(request.decoded)])
            start += len(request.decoded)
