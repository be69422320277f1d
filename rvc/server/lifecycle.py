"""Lifecycle decisions for the pool's workers: how many to keep, when to retire, stop or kill one.

One part the supervisor (supervisor.py) composes; it runs each round of the
supervisor's loop, under the pool's lock, in two calls:

- ``expire``: jobs past their deadline (queued: dropped; running: the caller
  gets JobTimeout and the worker a kill time ``hung_grace_s`` later), workers
  hung past that kill time, workers that did not start within
  ``start_timeout_s``.
- ``recycle_if_due``: after each job, mark a worker past ``max_jobs_per_worker``,
  ``max_rss_mb`` or ``max_gpu_mb`` for replacement (``recycle_reason`` is the rule).
- ``maintain``: spawn up to N workers (paced after failed starts), retire a
  recycled worker once N others are ready, stop workers that are retiring
  (once the streams they hold have ended) or that a stopping pool no longer
  needs, kill whatever is left at the stop deadline.

Each decision is one small method, so a change to one rule touches one place.
"""

from __future__ import annotations

import logging

from rvc.device import gpu_memory_exceeded
from rvc.errors import JobTimeout
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, Settled
from rvc.server.process import Task, WorkerProcess, WorkerState
from rvc.server.state import PoolState
from rvc.server.stream_jobs import Block
from rvc.server.wire import ErrorReport

__all__ = ["Lifecycle", "recycle_reason"]

logger = logging.getLogger(__name__)


def recycle_reason(
    config: PoolConfig, jobs_done: int, rss_mb: float | None, gpu_reserved_mb: float | None
) -> str | None:
    """Why a worker is due for replacement after a job, or None. GPU memory is the CUDA cache the
    worker keeps from other processes on the card (None on the CPU, so the rule is off there):
    fragmentation grows it with every new input length, like host memory on the CPU.
    """
    if config.max_jobs_per_worker and jobs_done >= config.max_jobs_per_worker:
        return f"{jobs_done} jobs done"
    if config.max_rss_mb and rss_mb is not None and rss_mb > config.max_rss_mb:
        return f"resident memory {rss_mb:.0f} MiB > {config.max_rss_mb:.0f} MiB"
    if gpu_reserved_mb is not None and gpu_memory_exceeded(gpu_reserved_mb, config.max_gpu_mb):
        return f"GPU memory reserved {gpu_reserved_mb:.0f} MiB > {config.max_gpu_mb:.0f} MiB"
    return None


class Lifecycle:
    """The rules that start, retire, stop and kill workers and expire jobs."""

    def __init__(self, state: PoolState, config: PoolConfig) -> None:
        self._state = state
        self._config = config

    def recycle_if_due(self, worker: WorkerProcess) -> None:
        """After a job: mark a worker for replacement past its job count or memory limits."""
        state = self._state
        reason = recycle_reason(self._config, worker.jobs_done, worker.rss_mb, worker.gpu_reserved_mb)
        if reason and worker.state is WorkerState.SERVING and not state.stopping:
            worker.advance(WorkerState.RECYCLING)
            state.counters.recycled += 1
            logger.info("recycling worker %d (pid %s): %s", worker.worker_id, worker.pid, reason)

    # -- keeping N workers, retiring, stopping ----------------------------------------------------

    def maintain(self, now: float) -> None:
        """One round of lifecycle decisions, in order: spawn, retire, wind down, enforce the stop deadline."""
        self._replace_missing_workers(now)
        self._retire_recycled()
        for worker in self._state.workers.live():
            self._wind_down(worker)
        self._kill_past_stop_deadline(now)

    def _replace_missing_workers(self, now: float) -> None:
        state, workers = self._state, self._state.workers
        # While draining for shutdown, replace workers only if queued jobs still need them.
        wanted = state.accepting or state.jobs.depth > 0
        if not wanted or state.stopping or state.broken is not None or now < workers.respawn_after:
            return
        while workers.counting() < self._config.num_workers:
            try:
                workers.spawn(tuple(state.voices.resident.values()))
            except OSError as exc:  # fork/exec refused (process or memory limits)
                logger.error("could not spawn an RVC worker: %s", exc)
                workers.respawn_after = now + 1.0
                return

    def _retire_recycled(self) -> None:
        """A worker due for recycling retires once N others are ready (or the pool stops)."""
        enough = self._state.workers.ready_serving() >= self._config.num_workers
        if not (enough or self._state.stopping):
            return
        for worker in self._state.workers.live():
            if worker.state is WorkerState.RECYCLING:
                worker.advance(WorkerState.RETIRING)

    def _wind_down(self, worker: WorkerProcess) -> None:
        """Stop a worker that has no more reason to live: retiring, or the pool is stopping."""
        if worker.stopping:
            return
        stopping = self._state.stopping
        task = worker.task
        if stopping and self._unwanted(task):
            worker.advance(WorkerState.STOPPING)  # nobody wants its result: do not wait for it
            worker.terminate()
        elif stopping and not worker.ready:
            worker.advance(WorkerState.STOPPING)  # still importing torch: no need to wait for it to listen
            worker.terminate()
        elif stopping and task is None:
            worker.request_stop()
        elif worker.state is WorkerState.RETIRING and task is None and not worker.streams:
            worker.request_stop()  # a retiring worker serves the streams it holds until they end

    def _unwanted(self, task: Task | None) -> bool:
        """A running job or block whose caller already has an answer."""
        if isinstance(task, Job):
            return task.abandoned
        if isinstance(task, Block):
            stream = next((s for s in self._state.streams if s.running is task), None)
            return stream is None or stream.ended is not None
        return False

    def _kill_past_stop_deadline(self, now: float) -> None:
        deadline = self._state.stop_deadline
        if deadline is not None and now >= deadline:
            for worker in self._state.workers.live():
                worker.kill()

    # -- deadlines --------------------------------------------------------------------------------

    def expire(self, now: float, settled: Settled) -> None:
        self._expire_queued(now, settled)
        for worker in self._state.workers:
            self._expire_running(worker, now, settled)
            self._kill_if_hung(worker, now)
            self._kill_if_slow_to_start(worker, now)

    def _expire_queued(self, now: float, settled: Settled) -> None:
        for job in self._state.jobs.drop_expired(now):
            self._state.counters.timed_out += 1
            waited = now - job.submitted_at
            error = JobTimeout(f"job {job.job_id} waited {waited:.1f} s in the queue: past its deadline")
            settled.append((job.future, error))

    def _expire_running(self, worker: WorkerProcess, now: float, settled: Settled) -> None:
        """A running job past its deadline: its caller gets JobTimeout, its worker a kill time."""
        job = worker.task if isinstance(worker.task, Job) else None
        if job is None or now < job.deadline:
            return
        if not job.abandoned:
            job.abandoned = True
            self._state.counters.timed_out += 1
            allowed = job.deadline - job.submitted_at
            settled.append(
                (
                    job.future,
                    JobTimeout(f"job {job.job_id} did not finish within its deadline ({allowed:.1f} s)"),
                )
            )
        if worker.kill_at is None:
            worker.kill_at = job.deadline + self._config.hung_grace_s

    def _kill_if_hung(self, worker: WorkerProcess, now: float) -> None:
        if worker.kill_at is None or now < worker.kill_at:
            return
        logger.warning(
            "killing worker %d (pid %s): still on a job past its deadline", worker.worker_id, worker.pid
        )
        self._state.counters.killed_hung += 1
        worker.kill_at = None
        worker.advance(WorkerState.STOPPING)  # a deliberate kill, not a crash; replaced at once
        worker.kill()

    def _kill_if_slow_to_start(self, worker: WorkerProcess, now: float) -> None:
        limit = self._config.start_timeout_s
        if worker.ready or worker.init_error is not None or now < worker.spawned_at + limit:
            return
        logger.error("worker %d not ready after %.0f s; killing it", worker.worker_id, limit)
        worker.init_error = ErrorReport("ModelUnavailable", f"worker not ready after {limit} s")
        worker.kill()
