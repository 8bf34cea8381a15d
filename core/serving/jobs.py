"""Training jobs of the server: one thread per job, one job per project at a time, progress kept to be asked for."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import ConceptlabError

logger = logging.getLogger(__name__)

# Finished jobs are remembered this long (and at most this many), so a client polling late still gets the result.
KEEP_FINISHED_S = 3600.0
KEEP_FINISHED = 200


class JobConflictError(ConceptlabError):
    """A project already has a training job running."""

    def __init__(self, project: str, job_id: str) -> None:
        super().__init__(f"project '{project}' is already training (job {job_id}): wait for it to finish")
        self.job_id = job_id


@dataclass
class Job:
    """One training run: its state ("running", "done", "failed"), progress from 0 to 1, and its result or error."""

    id: str
    project: str
    started_at: float
    state: str = "running"
    progress: float = 0.0
    message: str = "starting"
    finished_at: float | None = None
    result: dict | None = None
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_dict(self) -> dict:
        with self._lock:
            data = {
                "id": self.id,
                "project": self.project,
                "state": self.state,
                "progress": round(self.progress, 4),
                "message": self.message,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
            }
            if self.result is not None:
                data["result"] = self.result
            if self.error is not None:
                data["error"] = self.error
            return data


class TrainingJobs:
    """Starts training runs in threads and answers for them by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def start_job(self, project: str, run: Callable[[Callable[[float, str], None]], dict]) -> Job:
        """Start ``run(progress)`` for ``project`` in a thread; its return value becomes the job's result.

        Raises:
            JobConflictError: the project has a job still running.
        """
        with self._lock:
            self._forget_old()
            running = next((j for j in self._jobs.values() if j.project == project and j.state == "running"), None)
            if running is not None:
                raise JobConflictError(project, running.id)
            job = Job(uuid.uuid4().hex[:16], project, time.time())
            self._jobs[job.id] = job
        # The job runs in a copy of the caller's context: it acts as whoever asked for it (core/access/).
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run, job, run), name=f"conceptlab-train-{job.id}", daemon=True).start()
        return job

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, run: Callable[[Callable[[float, str], None]], dict]) -> None:
        def progress(fraction: float, message: str) -> None:
            with job._lock:
                job.progress, job.message = max(job.progress, min(max(fraction, 0.0), 1.0)), message

        try:
            result = run(progress)
        except ConceptlabError as e:
            outcome = {"state": "failed", "error": str(e), "message": "failed"}
        except Exception as e:  # noqa: BLE001 - a bug must end the job, not the server; it is logged whole
            logger.exception("training job %s of %s failed", job.id, job.project)
            outcome = {"state": "failed", "error": f"internal error ({type(e).__name__})", "message": "failed"}
        else:
            outcome = {"state": "done", "result": result, "progress": 1.0, "message": "done"}
        with job._lock:
            for key, value in outcome.items():
                setattr(job, key, value)
            job.finished_at = time.time()

    def _forget_old(self) -> None:
        now = time.time()
        finished = sorted((j for j in self._jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at or 0)
        for job in finished[: max(len(finished) - KEEP_FINISHED, 0)] + [
            j for j in finished if now - (j.finished_at or now) > KEEP_FINISHED_S
        ]:
            self._jobs.pop(job.id, None)
