"""A full disk or a read-only data home: one clear line (``StorageError``), and nothing stored is damaged.

Three levels of realism, each honest about what it is:

- simulated inside SQLite and Python: ``PRAGMA max_page_count`` makes SQLite itself report
  SQLITE_FULL, ``PRAGMA query_only`` makes it report SQLITE_READONLY, and a patched ``os.fsync`` or
  ``tempfile.mkstemp`` raises ENOSPC where our own file writes happen;
- a real kernel limit: a child process with ``RLIMIT_FSIZE`` gets EFBIG from the kernel for every file
  write past the limit, SQLite's included (no privileges needed);
- the real thing, where the tests run as root with mount namespaces (``unshare -m``): a 2 MB tmpfs that
  fills up, and a read-only bind mount of the data home. Skipped elsewhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import run
from core.errors import StorageError
from core.exchange import export_model_to
from core.ingestion import ingest
from core.inputs import read_inputs, read_texts, sample_frames
from core.learning import train
from core.storage.projects import create_project, open_project

from ..photos import solid_image

ROOT = Path(__file__).resolve().parents[2]


def _noise_images(folder: Path, count: int, size: int = 96, seed: int = 0) -> Path:
    """Incompressible PNGs (about 27 KB each), so a small disk fills after a few."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"noise{i:03d}.png")
    return folder


def _consistent(project) -> int:
    """Integrity check, and every input complete (embedding + original whose bytes are intact); returns the count."""
    with sqlite3.connect(project.store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    records = project.store.list_inputs()
    assert set(project.store.embedding_spaces([r.id for r in records])) == {r.id for r in records}
    for record in records:
        assert project.store.read_blob(record)
    return len(records)


# ---------------------------------------------------------------- simulated in SQLite and Python


def test_database_full_fails_the_batch_cleanly_and_the_project_goes_on(tmp_path):
    project = create_project("p", "tiny")
    ingest(project, read_texts([f"kept sentence {i}" for i in range(10)]))
    conn = project.store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # SQLite now answers SQLITE_FULL, as on a full disk
    with pytest.raises(StorageError, match=r"cannot write to .*/projects/p: the disk is full \(free some space and try again\)"):
        ingest(project, read_texts([f"a longer sentence number {i} " * 20 for i in range(200)]))
    assert not conn.in_transaction  # a failed COMMIT used to leave the connection stuck in its transaction
    count = _consistent(project)
    assert 10 <= count < 210
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: the same project simply goes on
    report = ingest(project, read_texts([f"a longer sentence number {i} " * 20 for i in range(200)]))
    assert len(report.added) + len(report.already_stored) == 200 and _consistent(project) == 210


def test_read_only_database_refuses_writes_in_one_line():
    project = create_project("p", "tiny")
    ingest(project, read_texts(["one", "two"]))
    project.store._connection().execute("PRAGMA query_only = ON")  # SQLite answers SQLITE_READONLY
    with pytest.raises(StorageError, match="it is read-only"):
        project.store.create_concept("cats")
    with pytest.raises(StorageError, match="it is read-only"):
        ingest(project, read_texts(["three"]))
    assert [r.text for r in project.store.list_inputs()] == ["one", "two"]  # reading still works


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_no_space_for_an_original_file(tmp_path, monkeypatch):
    project = create_project("p", "tiny")
    ingest(project, read_texts(["already here"]))
    monkeypatch.setattr("core.disk.os.fsync", _enospc)
    with pytest.raises(StorageError, match="the disk is full"):
        ingest(project, read_inputs([_noise_images(tmp_path / "new", 2, seed=4)]))  # originals need files; texts do not
    monkeypatch.undo()
    assert [r.text for r in project.store.list_inputs()] == ["already here"]
    assert list(project.root.rglob(".tmp-*")) == []


def test_no_space_for_a_video_temp_copy(monkeypatch):
    monkeypatch.setattr("core.inputs.video.tempfile.mkstemp", _enospc)
    with pytest.raises(StorageError, match="the disk is full"):
        sample_frames(b"\x00\x00\x00\x18ftypmp42" + b"\0" * 100, "clip.mp4")


def test_no_space_for_an_export(tmp_path, monkeypatch):
    project = create_project("p", "tiny")
    ingest(project, read_texts(["a cat", "a dog"], concept="pets"))
    train(project)
    monkeypatch.setattr("core.disk.os.fsync", _enospc)
    with pytest.raises(StorageError, match="the disk is full"):
        export_model_to(project, tmp_path / "model.zip")
    assert list(tmp_path.glob("*model*")) == [] and list(tmp_path.glob(".tmp-*")) == []


def test_command_line_says_it_in_one_line(tmp_path, monkeypatch, capsys):
    create_project("p", "tiny")
    photos = _noise_images(tmp_path / "photos", 1, seed=5)
    monkeypatch.setattr("core.disk.os.fsync", _enospc)
    assert run(["ingest", "p", str(photos)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to ") and err.endswith("the disk is full (free some space and try again)\n")
    assert err.count("\n") == 1


# ---------------------------------------------------------------- a real kernel limit (RLIMIT_FSIZE)

_FSIZE_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the kernel's answer is the error EFBIG
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from core.cli import run
    sys.exit(run(["ingest", "p", sys.argv[2]]))
    """
)


def test_kernel_file_size_limit_mid_ingest(tmp_path, data_home):
    project = create_project("p", "tiny")
    ingest(project, read_inputs([_noise_images(tmp_path / "first", 3, seed=1)]))
    project.store.close()
    limit = 256 * 1024  # the database may grow a little; a few 27 KB originals fit, then no more
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONCEPTLAB_HOME": str(data_home)}
    done = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(limit), str(_noise_images(tmp_path / "more", 80, seed=2))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: cannot write to ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    reopened = open_project("p")
    assert _consistent(reopened) >= 3
    report = ingest(reopened, read_inputs([tmp_path / "more"]))  # without the limit, everything goes in
    assert report.failed == [] and _consistent(reopened) == 83


# ---------------------------------------------------------------- the real thing (root and mount namespaces)


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"
    return subprocess.run(["unshare", "-m", "sh", "-c", probe], capture_output=True).returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root and mount namespaces (unshare -m)")

_CLI_SESSION = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from core.cli import run
    results = []
    for argv in json.loads(sys.argv[1]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run(argv)
            except BaseException as e:  # what a person would see as a traceback
                code, err = 99, io.StringIO(f"CRASH {type(e).__name__}: {e}")
        results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
    print(json.dumps(results))
    """
)


def _session_in_namespace(setup: str, commands: list[list[str]], home: Path) -> list[dict]:
    """Run CLI commands in one Python process inside a private mount namespace prepared by ``setup``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONCEPTLAB_HOME": str(home)}
    script = f"{setup} && exec {sys.executable} -c '{_CLI_SESSION}' '{json.dumps(commands)}'"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_mount
def test_real_full_disk(tmp_path):
    """A 2 MB tmpfs as data home: ingest fills it, and fails with one line; everything before stays whole."""
    home = tmp_path / "small-disk"
    home.mkdir()
    first, more = _noise_images(tmp_path / "first", 4, seed=3), _noise_images(tmp_path / "more", 120, seed=4)
    commands = [
        ["project", "create", "p", "--embedder", "tiny"],
        ["ingest", "p", str(first), "--concept", "noise"],
        ["ingest", "p", str(more)],
        ["--json", "inputs", "p", "--limit", "1000"],
        ["label", "p", "1", "noise", "--negative"],
    ]
    results = _session_in_namespace(f"mount -t tmpfs -o size=2m tmpfs {home}", commands, home)
    created, ingested, filled, listed, labelled = results
    assert created["code"] == 0 and ingested["code"] == 0
    assert filled["code"] == 1 and filled["err"].startswith("error: cannot write to "), filled
    assert "disk is full" in filled["err"] and filled["err"].count("\n") == 1
    stored = json.loads(listed["out"])
    assert listed["code"] == 0 and len(stored) >= 4
    # Labelling either fits in what space is left, or says why in one line.
    assert labelled["code"] == 0 or (labelled["code"] == 1 and labelled["err"].startswith("error: ")), labelled


@needs_mount
def test_real_read_only_data_home(tmp_path, data_home):
    """The data home mounted read-only: reading, searching and predicting work; every write says why."""
    project = create_project("p", "tiny")
    ingest(project, read_texts(["a cat on the mat", "a dog in the fog", "a kitten"], concept="pets"))
    solid_image((200, 30, 30)).save(tmp_path / "red.png")
    train(project)
    before = sorted((p.relative_to(data_home), p.stat().st_mtime_ns) for p in data_home.rglob("*") if p.is_file())
    project.store.close()
    commands = [
        ["inputs", "p"],
        ["concepts", "p"],
        ["search", "p", "--text", "cat"],
        ["predict", "p", "--text", "a cat"],
        ["export", "p", str(tmp_path / "model.zip")],
        ["ingest", "p", str(tmp_path / "red.png")],
        ["label", "p", "1", "cats"],
        ["train", "p"],
        ["import", "p", str(tmp_path / "model.zip")],
        ["project", "create", "q", "--embedder", "tiny"],
        ["project", "rename", "p", "r"],
        ["project", "delete", "p"],
    ]
    results = _session_in_namespace(f"mount --bind {data_home} {data_home} && mount -o remount,bind,ro {data_home}", commands, data_home)
    reads, writes = results[:5], results[5:]
    for result in reads:
        assert result["code"] == 0 and result["err"] == "", result
    assert "pets" in results[3]["out"]
    for result in writes:
        assert result["code"] == 1, result
        assert result["err"].startswith("error: cannot write to ") and result["err"].endswith("it is read-only\n"), result
    after = sorted((p.relative_to(data_home), p.stat().st_mtime_ns) for p in data_home.rglob("*") if p.is_file())
    assert after == before
    assert _consistent(open_project("p")) == 3
