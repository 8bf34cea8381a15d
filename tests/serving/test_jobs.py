"""Tests for core.serving.jobs: one training job per project at a time, progress, results and failures."""

from __future__ import annotations

import threading
import time

import pytest

from core.serving.jobs import JobConflictError, TrainingJobs


def test_one_training_job_per_project_at_a_time():
    jobs = TrainingJobs()
    release = threading.Event()

    def slow(progress):
        progress(0.5, "half way")
        release.wait(10)
        return {"version": 7}

    first = jobs.start_job("a", slow)
    with pytest.raises(JobConflictError, match="already training"):
        jobs.start_job("a", slow)
    other = jobs.start_job("b", lambda progress: {"version": 1})  # another project is free to train
    deadline = time.monotonic() + 5
    while jobs.get_job(first.id).to_dict()["progress"] < 0.5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs.get_job(first.id).to_dict()["message"] == "half way"
    release.set()
    while jobs.get_job(first.id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs.get_job(first.id).to_dict()["result"] == {"version": 7}
    assert jobs.get_job(other.id) is not None and jobs.start_job("a", slow) is not None
    release.set()


def test_a_failing_job_says_why_and_frees_the_project():
    from core.errors import TrainingError

    jobs = TrainingJobs()

    def fails(progress):
        raise TrainingError("nothing labelled yet")

    job = jobs.start_job("a", fails)
    deadline = time.monotonic() + 5
    while jobs.get_job(job.id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs.get_job(job.id).to_dict()["error"] == "nothing labelled yet"
    assert jobs.start_job("a", lambda progress: {}) is not None
