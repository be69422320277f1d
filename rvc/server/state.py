"""The pool's shared state and the thread-safe calls other threads make on it.

``PoolState`` holds the queue, the job table, the workers and the counters
behind one lock; ``Supervisor`` (supervisor.py) adds the thread that drives
the workers. Futures are settled after the lock is released (``settle``), so
a done-callback may call back into the pool.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections import deque
from typing import Any

from rvc.errors import Busy, JobCancelled, ModelUnavailable, NotFound, VoiceError
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, settle
from rvc.server.process import WorkerProcess
from rvc.server.shm import unlink_segment
from rvc.server.status import PoolStatus, StageAverages
from rvc.server.voiceops import VoiceOp
from rvc.server.voices import VoiceFiles

__all__ = ["COUNTERS", "PoolState"]

COUNTERS = (
    "submitted",
    "done",
    "failed",
    "cancelled",
    "timed_out",
    "rejected_busy",
    "crashed",
    "recycled",
    "killed_hung",
)


class PoolState:
    """Queue, jobs, workers and counters of one pool, guarded by ``lock``."""

    def __init__(self, config: PoolConfig, voices: dict[str, VoiceFiles], shm_prefix: str) -> None:
        self.config = config
        self.shm_prefix = shm_prefix
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.accepting = False
        self.stopping = False
        self.broken: VoiceError | None = None
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.stages = StageAverages()
        self.voice_info: dict[str, dict[str, Any]] = {}
        self._resident: dict[str, VoiceFiles] = dict(voices)
        self._loading: dict[str, VoiceOp] = {}
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[WorkerProcess] = []
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._worker_ids = itertools.count()
        self._op_ids = itertools.count(1)
        self._all_ready_once = False
        self._start_failures = 0
        self._respawn_after = 0.0
        self._stop_deadline: float | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    def close_intake(self) -> None:
        """Refuse new jobs and voice operations from now on."""
        with self.lock:
            self.accepting = False

    def resident_voices(self) -> tuple[str, ...]:
        """Voices loaded or loading, sorted."""
        with self.lock:
            return tuple(sorted(self._resident))

    def wake(self) -> None:
        """Make the supervisor thread look at the state again."""
        with self.lock:  # the fd is closed (and its number may be reused) once the pool stops
            if self._wake_write < 0:
                return
            try:
                os.write(self._wake_write, b"x")
            except BlockingIOError:
                pass  # the pipe is full: the thread is awake anyway

    def close_wake_pipe(self) -> None:
        with self.lock:
            for fd in (self._wake_read, self._wake_write):
                if fd >= 0:
                    os.close(fd)
            self._wake_read = self._wake_write = -1

    def enqueue(self, job: Job) -> None:
        """Queue a job; raises Busy, NotFound or ModelUnavailable without queuing it."""
        with self.lock:
            if self.broken is not None:
                raise ModelUnavailable(f"RVC workers are down: {self.broken.message}")
            if not self.accepting:
                raise ModelUnavailable("the RVC server is not accepting jobs (stopped or stopping)")
            if job.voice not in self._resident:
                raise NotFound(
                    f"voice {job.voice!r} is not loaded (loaded: {sorted(self._resident)})", field="voice"
                )
            if len(self._queue) >= self.config.max_queue:
                self.counters["rejected_busy"] += 1
                raise Busy(
                    f"RVC queue full ({len(self._queue)} jobs waiting)", retry_after_s=self._retry_after()
                )
            self._queue.append(job)
            self._jobs[job.job_id] = job
            self.counters["submitted"] += 1
        self.wake()

    def cancel(self, job_id: str, reason: str) -> bool:
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None or job.abandoned or job.future.done():
                return False
            if job.state == "queued":
                self._queue.remove(job)
                del self._jobs[job_id]
                unlink_segment(job.input_segment)
            else:
                job.abandoned = True
            self.counters["cancelled"] += 1
        settle([(job.future, JobCancelled(f"job {job_id} cancelled: {reason}"))])
        self.wake()
        return True

    def cancel_all(self, reason: str) -> int:
        with self.lock:
            ids = [job_id for job_id, job in self._jobs.items() if not job.abandoned]
        return sum(self.cancel(job_id, reason) for job_id in ids)

    def wait_ready(self, timeout: float) -> None:
        """Block until N workers are ready; raise the startup error or ModelUnavailable on timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while (
                self.broken is None and not self.stopping and self._ready_serving() < self.config.num_workers
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModelUnavailable(f"RVC workers not ready after {timeout:.0f} s")
                self.changed.wait(remaining)
            if self.broken is not None:
                raise self.broken
            if self.stopping:
                raise ModelUnavailable("the RVC server was stopped while starting")

    def wait_idle(self, deadline: float) -> bool:
        """Block until no job is queued or running (True) or the deadline passes (False)."""
        with self.changed:
            while any(not job.abandoned for job in self._jobs.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def snapshot(self, default_voice: str) -> PoolStatus:
        with self.lock:
            now = time.monotonic()
            workers = tuple(w.status(now) for w in self._workers if not w.dead)
            c = self.counters
            return PoolStatus(
                accepting=self.accepting,
                num_workers=self.config.num_workers,
                workers=workers,
                queue_depth=len(self._queue),
                max_queue=self.config.max_queue,
                running=sum(1 for j in self._jobs.values() if j.state == "running" and not j.abandoned),
                jobs_submitted=c["submitted"],
                jobs_done=c["done"],
                jobs_failed=c["failed"],
                jobs_cancelled=c["cancelled"],
                jobs_timed_out=c["timed_out"],
                jobs_rejected_busy=c["rejected_busy"],
                workers_crashed=c["crashed"],
                workers_recycled=c["recycled"],
                workers_killed_hung=c["killed_hung"],
                voices=tuple(sorted(self._resident)),
                default_voice=default_voice,
                stage_avg_s=self.stages.means(),
                error=None if self.broken is None else self.broken.message,
            )

    def _ready_serving(self) -> int:
        return sum(1 for w in self._workers if w.serving and w.ready)

    def _retry_after(self) -> float:
        per_job = self.stages.mean("total") or 1.0  # a worker's time per job, without queueing
        backlog = len(self._queue) + sum(1 for j in self._jobs.values() if j.state == "running")
        return float(max(1.0, round(per_job * backlog / self.config.num_workers, 1)))
