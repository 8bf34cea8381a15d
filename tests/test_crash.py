"""Crashes: SIGKILL at random points of ingest and of training, many times; then nothing finished may be lost.

After every kill the project must open, pass SQLite's integrity check, hold every input the victim
reported finished (with its embedding and its original file, whose hash matches), have FAISS indexes
that agree with storage, and register only model versions that load. Files the kill left behind are
orphans: ``Store.remove_orphans`` removes them, and never anything still referenced.

``make test`` runs a few kills of each kind; ``make fuzz`` (CONCEPTLAB_FUZZ=1) runs many more.
See also tests/test_ingest.py's kill of a whole ``python`` process mid-ingest.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from core.learning import load_model
from core.prediction import predict
from core.storage import NewInput
from core.storage.index import load_index
from core.storage.inputs import ORPHAN_MIN_AGE_S
from core.storage.projects import Project, create_project, open_project

from . import crash_victims

FUZZ = os.environ.get("CONCEPTLAB_FUZZ") == "1"
KILLS = 60 if FUZZ else 8


@pytest.fixture(scope="module")
def fork_server():
    """A multiprocessing context whose children fork from a server with the engine (and torch) imported."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.crash_victims", "torch"])
    return context


def _run_victim(context, target, args, kill_at, delay) -> int:
    process = context.Process(target=target, args=args, daemon=True)
    # multiprocessing re-runs the parent's __main__ in each child; after Streamlit's AppTest that is
    # app.py. The victims need nothing from __main__, so they are started with a bare one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
        process.start()
    if kill_at is None:
        time.sleep(delay)
        process.kill()
    process.join(timeout=120)
    assert process.exitcode is not None, "victim hung"
    assert process.exitcode in (0, -signal.SIGKILL), f"victim failed with exit code {process.exitcode}"
    return process.exitcode


def _logged(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def check_consistent(root: Path, finished: set[int]) -> dict[str, int]:
    """Every invariant a crash must not break; returns counts for the caller's own checks."""
    with sqlite3.connect(root / "project.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    project = Project("p", root)
    store = project.store
    records = store.list_inputs()
    ids = {r.id for r in records}
    assert finished <= ids, f"finished inputs lost: {sorted(finished - ids)[:10]}"
    spaces = store.embedding_spaces(ids)
    assert set(spaces) == ids, "an input without its embedding"
    for record in records:
        data = store.read_blob(record)
        assert hashlib.sha256(data).hexdigest() == record.sha256, f"original of input {record.id} is damaged"
    for space in store.spaces():
        stored_ids, vectors = store.load_embeddings(space)
        index = load_index(store, space)
        assert len(index) == len(stored_ids), f"{space} index has {len(index)} vectors, storage {len(stored_ids)}"
        if len(stored_ids):
            rows = np.random.default_rng(0).choice(len(stored_ids), min(5, len(stored_ids)), replace=False)
            _, found = index.search(vectors[rows], 1)
            # Ties (identical vectors) may return another id with the same vector.
            assert all(np.allclose(vectors[np.searchsorted(stored_ids, f[0])], vectors[r]) for f, r in zip(found, rows))
    versions = store.list_versions()
    for number, *_ in versions:
        assert load_model(project, number).version == number
    active = store.get_meta("active_version")
    assert active is None or int(active) in {v[0] for v in versions}
    store.close()
    return {"inputs": len(ids), "versions": len(versions)}


def remove_and_check_orphans(root: Path) -> list[Path]:
    """Remove every orphan (whatever its age); afterwards no temp file and no unreferenced file may remain."""
    project = Project("p", root)
    removed = project.store.remove_orphans(min_age_s=0)
    leftovers = [p for p in root.rglob(".tmp-*")]
    assert leftovers == [], leftovers
    shas = {r.sha256 for r in project.store.list_inputs() if not r.is_its_own_text}  # a table row needs no file
    blobs = {p.name[:64] for p in (root / "blobs").rglob("*") if p.is_file()}
    assert blobs == shas, f"blobs without inputs: {sorted(blobs - shas)[:3]}, inputs without blobs: {sorted(shas - blobs)[:3]}"
    registered = {v[2] for v in project.store.list_versions()}
    assert {p.name for p in (root / "versions").glob("*.npz")} == registered if (root / "versions").exists() else not registered
    project.store.close()
    return removed


def test_sigkill_at_random_points_of_ingest(fork_server, tmp_path):
    root = create_project("p", "tiny").root
    log = tmp_path / "finished.log"
    rng = random.Random(6)
    outcomes = {"killed": 0, "finished": 0, "orphans removed": 0}
    for round_number in range(KILLS):
        # Half the kills at a chosen write event, half after a random delay.
        kill_at = rng.randint(1, 100) if round_number % 2 == 0 else None  # a run makes about 110 write events
        args = (str(root), str(log), kill_at, round_number)
        code = _run_victim(fork_server, crash_victims.run_ingest, args, kill_at, rng.uniform(0, 0.4))
        outcomes["killed" if code else "finished"] += 1
        finished = {int(i) for line in _logged(log) if not line.startswith("labelled") for i in line.split()}
        counts = check_consistent(root, finished)
        assert counts["inputs"] >= len(finished)
        if round_number % 3 == 2:
            outcomes["orphans removed"] += len(remove_and_check_orphans(root))
            check_consistent(root, finished)
    assert outcomes["killed"] >= KILLS // 2, outcomes
    # A run that is not killed completes what the kills interrupted.
    crash_victims.run_ingest(str(root), str(log), None, KILLS)
    check_consistent(root, set())
    remove_and_check_orphans(root)


def test_sigkill_at_random_points_of_training(fork_server, tmp_path):
    project = create_project("p", "tiny")
    crash_victims.run_ingest(str(project.root), str(tmp_path / "ingest.log"), None, 0)
    log = tmp_path / "versions.log"
    rng = random.Random(7)
    killed = 0
    for round_number in range(KILLS):
        kill_at = rng.randint(1, 24) if round_number % 2 == 0 else None
        args = (str(project.root), str(log), kill_at, 2)
        code = _run_victim(fork_server, crash_victims.run_training, args, kill_at, rng.uniform(0, 0.8))
        killed += code != 0
        reported = {int(line.split()[1]) for line in _logged(log)}
        check_consistent(project.root, set())
        assert reported <= {v[0] for v in project.store.list_versions()}, "a version reported done is gone"
        if round_number % 3 == 2:
            remove_and_check_orphans(project.root)
    assert killed >= KILLS // 2
    remove_and_check_orphans(project.root)
    # The active version predicts.
    stored = project.store.list_inputs(kind="image", limit=1)[0]
    (result,) = list(predict(open_project("p"), [crash_victims.images(0, 1)[0]]))
    assert result.concepts and stored.id > 0


def test_orphans_are_removed_on_open_only_when_old(tmp_path):
    project = create_project("p", "tiny")
    crash_victims.run_ingest(str(project.root), str(tmp_path / "log"), None, 0)
    root = project.root
    stray_blob = root / "blobs" / "ab" / ("ab" + "0" * 62 + ".png")
    stray_blob.parent.mkdir(parents=True, exist_ok=True)
    stray_blob.write_bytes(b"left by a killed ingest")
    temp_blob = root / "blobs" / "ab" / ".tmp-x1"
    temp_version = root / "versions" / ".tmp-20260101-000000-deadbeef.npz"
    unregistered = root / "versions" / "20260101-000000-deadbeef.npz"
    temp_index = root / "index" / ".tmp-y2"
    for path in (temp_blob, temp_version, unregistered, temp_index):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    kept_fresh = root / "blobs" / "cd" / ("cd" + "1" * 62 + ".txt")
    kept_fresh.parent.mkdir(parents=True, exist_ok=True)
    kept_fresh.write_bytes(b"a concurrent writer's file, a moment before its commit")
    old = time.time() - ORPHAN_MIN_AGE_S - 60
    for path in (stray_blob, temp_blob, temp_version, unregistered, temp_index):
        os.utime(path, (old, old))
    referenced = [project.store.blob_path(r.sha256, r.suffix) for r in project.store.list_inputs() if not r.is_its_own_text]
    for path in referenced:
        os.utime(path, (old, old))  # old but referenced: must stay

    open_project("p")
    assert not any(p.exists() for p in (stray_blob, temp_blob, temp_version, unregistered, temp_index))
    assert kept_fresh.exists() and all(p.exists() for p in referenced)
    # Opening again soon after does not scan again (the check is throttled), and never fails.
    os.utime(kept_fresh, (old, old))
    open_project("p")
    assert kept_fresh.exists()
    assert len(project.store.remove_orphans()) == 1 and not kept_fresh.exists()


def test_interrupted_create_and_delete_leave_nothing_behind(data_home):
    create_project("p", "tiny")
    projects = data_home / "projects"
    for name in (".creating-0123", ".deleting-4567"):
        (projects / name).mkdir()
        (projects / name / "project.db").write_bytes(b"partial")
        old = time.time() - ORPHAN_MIN_AGE_S - 60
        os.utime(projects / name, (old, old))
    (projects / ".creating-fresh").mkdir()
    open_project("p")
    assert sorted(p.name for p in projects.iterdir()) == [".creating-fresh", "p"]


def test_blob_removed_by_a_sweep_mid_ingest_is_restored(tmp_path):
    """An orphan sweep deletes a blob that an ingest is about to reuse: after the commit, the blob is back."""
    store = create_project("p", "tiny").store
    item = crash_victims.images(0, 1)[0]
    new = NewInput(item.sha256, "image", item.name, item.suffix, item.data, "tiny-image", np.ones(768, np.float32) / np.sqrt(768))
    path = store.blob_path(new.sha256, new.suffix)
    original_transaction = type(store).transaction

    def sweeping_transaction(self):
        path.unlink(missing_ok=True)  # the sweep wins the race for the file, just before our commit
        return original_transaction(self)

    type(store).transaction = sweeping_transaction
    try:
        store.add_inputs([new])
    finally:
        type(store).transaction = original_transaction
    assert path.read_bytes() == item.data
