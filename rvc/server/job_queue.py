"""The pool's jobs: those waiting for a worker (in order) and every job not yet answered.

Not locked itself: the pool's state (state.py) owns it and calls it under
the pool's lock. Removing a job here also removes its input segment from
shared memory, so no path that drops a job can leak one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from rvc.server.jobs import Job, JobState
from rvc.server.shm import unlink_segment

__all__ = ["JobQueue"]


class JobQueue:
    """Queued jobs in submission order plus the table of every live job by id."""

    def __init__(self) -> None:
        self._queued: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}

    # -- questions ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        return len(self._queued)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def queued(self) -> Iterator[Job]:
        return iter(self._queued)

    def running(self) -> int:
        """Jobs on a worker whose caller still waits for them."""
        return sum(1 for job in self._jobs.values() if job.state is JobState.RUNNING and not job.abandoned)

    def backlog(self) -> int:
        """Jobs queued or on a worker (abandoned ones too: they still hold a worker)."""
        return self.depth + sum(1 for job in self._jobs.values() if job.state is JobState.RUNNING)

    def live(self) -> list[Job]:
        """Jobs whose caller still waits for an answer."""
        return [job for job in self._jobs.values() if not job.abandoned]

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def has_queued_for(self, voice: str) -> bool:
        return any(job.voice == voice for job in self._queued)

    def next_for(self, voices: set[str]) -> Job | None:
        """The oldest queued job a worker holding ``voices`` can run."""
        return next((job for job in self._queued if job.voice in voices), None)

    # -- changes ------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        self._queued.append(job)
        self._jobs[job.job_id] = job

    def start(self, job: Job, worker_id: int) -> None:
        """A worker takes ``job`` off the queue."""
        self._queued.remove(job)
        job.state, job.dispatched_at, job.worker_id = JobState.RUNNING, time.monotonic(), worker_id

    def put_back(self, job: Job) -> None:
        """A job whose command never reached its worker goes back to the front (safe to run elsewhere)."""
        job.state, job.dispatched_at, job.worker_id = JobState.QUEUED, None, None
        self._queued.appendleft(job)

    def drop_queued(self, job: Job) -> None:
        """Remove a job that never reached a worker."""
        self._queued.remove(job)
        self._jobs.pop(job.job_id, None)
        unlink_segment(job.input_segment)

    def drop_running(self, job: Job) -> None:
        """Forget a job whose worker answered or died (its output segment is the caller's to unlink)."""
        self._jobs.pop(job.job_id, None)
        unlink_segment(job.input_segment)

    def drop_all_queued(self) -> list[Job]:
        """Remove every queued job and return them (to be failed by the caller)."""
        jobs = list(self._queued)
        for job in jobs:
            self.drop_queued(job)
        return jobs

    def drop_queued_for(self, voice: str) -> list[Job]:
        jobs = [job for job in self._queued if job.voice == voice]
        for job in jobs:
            self.drop_queued(job)
        return jobs

    def drop_expired(self, now: float) -> list[Job]:
        """Remove the queued jobs past their deadline and return them."""
        jobs = [job for job in self._queued if now >= job.deadline]
        for job in jobs:
            self.drop_queued(job)
        return jobs

    def clear(self) -> list[Job]:
        """Forget every job (the pool is broken) and return them."""
        jobs = list(self._jobs.values())
        self._jobs.clear()
        self._queued.clear()
        return jobs
