"""A record, in the project itself, of the upload that is running: so a batch a reload or a crash cut short
is told on return ("128 of 150 files were stored"), not silently half there.

The record lives in the project's ``meta`` table (key ``upload``, JSON): written when an upload starts,
refreshed after each stored batch, and cleared when it ends. When the page's run is stopped (a reload,
a closed tab) the upload marks it stopped; a record still "running" but not refreshed for a while is a
server that died mid-batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from core.ingestion import IngestReport
from core.storage.projects import Project

_KEY = "upload"
# A running upload refreshes its record after every batch (seconds apart); one silent this long is dead.
STALE_AFTER_S = 120.0


@dataclass(frozen=True)
class UploadRecord:
    """How far an upload got: inputs expected, stored (new or known), failed, and whether it is still going."""

    total: int
    stored: int
    failed: int
    started: float
    updated: float
    state: str  # "running" or "stopped"


def start_upload_record(project: Project, total: int) -> None:
    """Note that an upload of ``total`` inputs starts now (replacing any earlier record)."""
    now = time.time()
    _write(project, UploadRecord(total, 0, 0, now, now, "running"))


def update_upload_record(project: Project, stored: int, failed: int) -> None:
    """Refresh the running upload's counts after a batch."""
    record = read_upload_record(project)
    if record is not None:
        _write(project, UploadRecord(record.total, stored, failed, record.started, time.time(), record.state))


def end_upload_record(project: Project, finished: bool) -> None:
    """The upload is over: cleared when it finished, kept as stopped when it was cut short."""
    record = read_upload_record(project)
    if finished or record is None:
        project.store.set_meta(_KEY, "")
    else:
        _write(project, UploadRecord(record.total, record.stored, record.failed, record.started, time.time(), "stopped"))


def find_stopped_upload(project: Project, now: float | None = None) -> UploadRecord | None:
    """The upload that was cut short (stopped, or running but silent past ``STALE_AFTER_S``), or None."""
    record = read_upload_record(project)
    if record is None:
        return None
    if record.state == "stopped" or (time.time() if now is None else now) - record.updated > STALE_AFTER_S:
        return record
    return None


def dismiss_upload_record(project: Project) -> None:
    """Forget the record once the person has been told."""
    project.store.set_meta(_KEY, "")


def read_upload_record(project: Project) -> UploadRecord | None:
    """The record as stored, or None (none, or unreadable: a record is a courtesy, never a reason to fail)."""
    raw = project.store.get_meta(_KEY) or ""
    try:
        return UploadRecord(**json.loads(raw)) if raw else None
    except (ValueError, TypeError):
        return None


def _write(project: Project, record: UploadRecord) -> None:
    project.store.set_meta(_KEY, json.dumps(asdict(record)))


def describe_nothing_new(report: IngestReport) -> str:
    """When an upload found only inputs the project already had, say so ("All 12 were already in the project"); else empty."""
    known = len(report.already_stored)
    if report.added or not known:
        return ""
    if report.failed:
        text = f"{known} {'was' if known == 1 else 'were'} already in the project, so nothing new went in"
    else:
        text = "It was already in the project" if known == 1 else f"All {known} were already in the project"
        text += ": nothing new went in"
    return text + (f", and {'its' if known == 1 else 'their'} labels were updated." if report.labelled else ".")
