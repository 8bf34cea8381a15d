"""Processes that tests/test_crash.py kills on purpose: each does real ingest or training work on a project.

They run in children of a fork server that has the engine imported already, so starting one costs
milliseconds. A victim can be told to kill itself (SIGKILL, no cleanup of any kind) at its N-th
"write event": opening a file for writing, renaming or removing a file (seen through an audit hook),
and beginning or committing a database transaction (seen through a wrapper around
``Store.transaction``). That reaches every step between two writes, which a random delay rarely hits.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from core.ingestion import ingest
from core.inputs import RawInput, read_texts
from core.learning import train
from core.storage import Store
from core.storage.projects import Project

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def arm(kill_at: int | None, log_path: str) -> None:
    """Kill this process at its ``kill_at``-th write event (never, with None); ``log_path`` is not counted."""
    if kill_at is None:
        return
    seen = [0]

    def tick() -> None:
        seen[0] += 1
        if seen[0] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and str(path) != log_path:
                tick()
        elif event in ("os.rename", "os.replace", "os.remove", "os.unlink"):
            tick()

    original = Store.transaction

    @contextmanager
    def ticking(self):  # type: ignore[no-untyped-def]
        tick()
        with original(self) as conn:
            yield conn
            tick()  # everything written, not yet committed
        tick()  # committed

    Store.transaction = ticking  # type: ignore[method-assign]
    sys.addaudithook(hook)


def _log(path: str, line: str) -> None:
    # One write() per line: a line is either whole in the log or absent, even if we die right after.
    with open(path, "a") as f:
        f.write(line + "\n")


def images(round_number: int, count: int) -> list[RawInput]:
    """Small PNGs of a colour per concept, different in every round."""
    rng = np.random.default_rng(round_number)
    items = []
    for i in range(count):
        concept = ("red", "green", "blue")[i % 3]
        base = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}[concept]
        pixels = np.clip(np.array(base) + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        data = buffer.getvalue()
        items.append(RawInput(f"round{round_number}/{concept}{i}.png", "image", data, hashlib.sha256(data).hexdigest(), ".png", concept))
    return items


def texts(round_number: int, count: int) -> list[str]:
    return [f"round {round_number} note {i} about {'cats' if i % 2 else 'dogs'}" for i in range(count)]


def run_ingest(root: str, log_path: str, kill_at: int | None, round_number: int) -> None:
    """Ingest this round's images and texts (and the previous round's again), then label some negative."""
    arm(kill_at, log_path)
    project = Project("p", Path(root))

    def progress(report, message) -> None:  # type: ignore[no-untyped-def]
        _log(log_path, " ".join(str(i) for i in report.added + report.already_stored))

    items = images(round_number, 24) + images(max(round_number - 1, 0), 6)
    ingest(project, items, progress=progress)
    ingest(project, read_texts(texts(round_number, 40), concept="pets"), progress=progress)
    ids = [r.id for r in project.store.list_inputs(kind="image")][-5:]
    project.store.set_labels(ids, project.store.ensure_concepts(["dark"])["dark"], -1)
    _log(log_path, "labelled " + " ".join(map(str, ids)))


def run_training(root: str, log_path: str, kill_at: int | None, rounds: int) -> None:
    """Train ``rounds`` versions, changing one label between them; log each version when it is done."""
    import torch

    torch.set_num_threads(1)  # the machine's few cores are shared with the test process
    arm(kill_at, log_path)
    project = Project("p", Path(root))
    for r in range(rounds):
        result = train(project)
        _log(log_path, f"version {result.version}")
        first = project.store.list_inputs(kind="image", limit=1, offset=r)
        if first:
            project.store.set_labels([first[0].id], project.store.ensure_concepts(["red"])["red"], -1 if r % 2 else 1)
