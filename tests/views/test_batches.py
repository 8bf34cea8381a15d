"""Tests for core.views.batches: the record of a running upload, and telling one that was cut short."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.ingestion import IngestReport
from core.storage.projects import create_project
from core.views.batches import (
    STALE_AFTER_S,
    describe_nothing_new,
    dismiss_upload_record,
    end_upload_record,
    find_stopped_upload,
    read_upload_record,
    start_upload_record,
    update_upload_record,
)


@pytest.mark.parametrize(
    "steps, later_s, stopped",
    [
        (["start", "update"], 1.0, None),  # still running, refreshed a moment ago: not cut short
        (["start", "update", "end-finished"], 1.0, None),  # done: nothing to tell
        (["start", "update", "end-stopped"], 1.0, (150, 128, 2)),  # the page's run was stopped mid-batch
        (["start", "update"], STALE_AFTER_S + 5, (150, 128, 2)),  # running, but silent too long: the server died
        (["start", "update", "end-stopped", "dismiss"], 1.0, None),  # told once
        (["corrupt"], 1.0, None),  # an unreadable record is no record
    ],
)
def test_an_upload_cut_short_is_found_once(steps, later_s, stopped):
    project = create_project("p", "tiny")
    for step in steps:
        if step == "start":
            start_upload_record(project, 150)
        elif step == "update":
            update_upload_record(project, stored=128, failed=2)
        elif step == "end-finished":
            end_upload_record(project, finished=True)
        elif step == "end-stopped":
            end_upload_record(project, finished=False)
        elif step == "dismiss":
            dismiss_upload_record(project)
        elif step == "corrupt":
            project.store.set_meta("upload", "{not json")
    record = read_upload_record(project)
    found = find_stopped_upload(project, now=(record.updated if record else 0.0) + later_s)
    assert (None if found is None else (found.total, found.stored, found.failed)) == stopped


@pytest.mark.parametrize(
    "added, known, failed, labelled, said",
    [
        (0, 12, 0, 0, "All 12 were already in the project: nothing new went in."),
        (0, 1, 0, 0, "It was already in the project: nothing new went in."),
        (0, 12, 0, 12, "All 12 were already in the project: nothing new went in, and their labels were updated."),
        (0, 3, 1, 0, "3 were already in the project, so nothing new went in."),  # not "all": one could not be used
        (2, 10, 0, 0, ""),  # something new went in: the usual report
        (0, 0, 2, 0, ""),  # nothing stored at all: "Nothing went in" is said by the failures
    ],
)
def test_an_upload_of_files_already_there_says_so(added, known, failed, labelled, said):
    report = IngestReport(
        list(range(added)), list(range(100, 100 + known)), labelled, [InputError(f"{i}.png", "broken") for i in range(failed)]
    )
    assert describe_nothing_new(report) == said
