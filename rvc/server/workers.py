"""The pool's worker processes as a set: spawning, counting, and what the supervisor waits on.

One part of the pool's state (state.py), called under the pool's lock. It
keeps the numbers that pace respawning after failed starts; the decisions
about when to spawn, retire or stop a worker are the supervisor's.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from collections.abc import Iterator
from typing import Any

from rvc.server.config import PoolConfig
from rvc.server.process import WorkerProcess
from rvc.server.voices import VoiceFiles
from rvc.server.worker import WorkerSpec

__all__ = ["WorkerSet"]

logger = logging.getLogger(__name__)


class WorkerSet:
    """Every worker not yet reaped, plus the pool's start-failure record."""

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[WorkerProcess] = []
        self._ids = itertools.count()
        self.start_failures = 0  # in a row; reset by a worker that becomes ready
        self.respawn_after = 0.0  # monotonic time before which no worker is spawned
        self.all_ready_once = False  # N workers were ready at some point (a later failure is not fatal)

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(list(self._workers))

    def live(self) -> list[WorkerProcess]:
        return [worker for worker in self._workers if not worker.dead]

    def all_dead(self) -> bool:
        return all(worker.dead for worker in self._workers)

    def counting(self) -> int:
        """Workers that count toward the pool's N (starting or serving)."""
        return sum(1 for worker in self._workers if worker.counts_toward_pool)

    def ready_serving(self) -> int:
        """Workers that count toward N and are ready."""
        return sum(1 for worker in self._workers if worker.counts_toward_pool and worker.ready)

    def spawn(self, voices: tuple[VoiceFiles, ...]) -> WorkerProcess:
        """Start one worker holding ``voices``; OSError when the system refuses a process."""
        cfg = self._config
        spec = WorkerSpec(
            worker_id=next(self._ids),
            hubert_path=cfg.hubert_path,
            rmvpe_path=cfg.rmvpe_path,
            voices=voices,
            fcpe_path=cfg.fcpe_path,
            device=cfg.device,
            precision=cfg.precision,
            profile=cfg.profile,
            warmup=cfg.warmup,
            torch_threads=cfg.torch_threads,
            log_level=cfg.log_level,
        )
        worker = WorkerProcess(self._context, spec)
        self._workers.append(worker)
        logger.info("spawned worker %d (pid %s)", spec.worker_id, worker.pid)
        return worker

    def remove(self, worker: WorkerProcess) -> None:
        self._workers.remove(worker)

    def waitables(self) -> dict[Any, WorkerProcess]:
        """Each live worker's process sentinel and pipe, mapped to the worker."""
        handles: dict[Any, WorkerProcess] = {}
        for worker in self.live():
            handles[worker.sentinel] = worker
            if worker.conn is not None:
                handles[worker.conn] = worker
        return handles

    def wake_times(self) -> list[float]:
        """Moments the supervisor must look again: hung-job kills and start timeouts."""
        times: list[float] = []
        for worker in self._workers:
            if worker.kill_at is not None:
                times.append(worker.kill_at)
            if not worker.ready and not worker.dead:
                times.append(worker.spawned_at + self._config.start_timeout_s)
        return times
