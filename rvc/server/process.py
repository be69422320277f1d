"""The parent's handle on one worker process: spawn, talk, watch, stop.

Only the pool's supervisor thread calls these methods; the handle itself is
not locked.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from rvc.server.status import WorkerStatus, process_rss_mb
from rvc.server.worker import WorkerSpec, worker_main

__all__ = ["WorkerProcess"]

logger = logging.getLogger(__name__)


class WorkerProcess:
    """One spawned worker and what the pool knows about it.

    Life: starting -> ready (idle/busy) -> [retire_requested -> retiring] ->
    stop_sent -> dead. ``task`` is the one job or voice operation it is
    running (a worker does one thing at a time); ``ops`` are voice operations
    waiting for it.
    """

    def __init__(self, context: multiprocessing.context.SpawnContext, spec: WorkerSpec) -> None:
        self.worker_id = spec.worker_id
        parent_end, child_end = context.Pipe(duplex=True)
        self.conn: Connection | None = parent_end
        self.process = context.Process(
            target=worker_main, args=(spec, child_end), name=f"rvc-worker-{spec.worker_id}", daemon=True
        )
        self.process.start()
        # Our copy of the child's end must go, or a dead child would never read as EOF.
        child_end.close()
        self.pid: int | None = self.process.pid
        self.spawned_at = time.monotonic()
        self.ready = False
        self.init_error: dict[str, Any] | None = None
        self.voices: set[str] = set()
        self.task: Any = None  # Job or VoiceOp in progress
        self.ops: deque[Any] = deque()
        self.jobs_done = 0
        self.rss_mb: float | None = None
        self.retire_requested = False
        self.retiring = False
        self.stop_sent = False
        self.kill_at: float | None = None
        self.dead = False
        self.exitcode: int | None = None

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    @property
    def serving(self) -> bool:
        """Counts toward the pool's N: alive and not on its way out."""
        return not self.dead and not self.retire_requested and not self.stop_sent

    @property
    def accepts_work(self) -> bool:
        return self.ready and not self.dead and not self.retiring and not self.stop_sent

    @property
    def idle(self) -> bool:
        return self.accepts_work and self.task is None

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send a message; False if the pipe is already broken (death is noticed via the sentinel)."""
        if self.conn is None:
            return False
        try:
            self.conn.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            logger.warning("worker %d (pid %s): send failed: %s", self.worker_id, self.pid, exc)
            return False
        return True

    def receive_all(self) -> list[tuple[Any, ...]]:
        """Every message waiting in the pipe; closes it on EOF."""
        messages: list[tuple[Any, ...]] = []
        while self.conn is not None:
            try:
                if not self.conn.poll():
                    break
                messages.append(self.conn.recv())
            except (EOFError, OSError):
                self.close_pipe()
        return messages

    def close_pipe(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request_stop(self) -> None:
        if not self.stop_sent:
            logger.debug("worker %d (pid %s): asking it to stop", self.worker_id, self.pid)
            self.stop_sent = True
            if not self.send(("stop",)):
                self.terminate()

    def terminate(self) -> None:
        if not self.dead and self.process.is_alive():
            self.process.terminate()

    def kill(self) -> None:
        if not self.dead and self.process.is_alive():
            self.process.kill()

    def reap(self) -> int | None:
        """Collect the exit status of a process whose sentinel fired."""
        self.process.join(timeout=5.0)
        self.exitcode = self.process.exitcode
        self.dead = True
        self.close_pipe()
        self.process.close()
        return self.exitcode

    def describe_exit(self) -> str:
        code = self.exitcode
        if code is None:
            return "an unknown status"
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def status(self, now: float) -> WorkerStatus:
        if self.dead:
            state = "dead"
        elif not self.ready:
            state = "starting"
        elif self.stop_sent:
            state = "stopping"
        elif self.retiring:
            state = "retiring"
        else:
            state = "idle" if self.task is None else "busy"
        rss = process_rss_mb(self.pid) if self.pid is not None and not self.dead else None
        job_id = getattr(self.task, "job_id", None)
        return WorkerStatus(
            worker_id=self.worker_id,
            pid=self.pid,
            state=state,
            jobs_done=self.jobs_done,
            rss_mb=rss if rss is not None else self.rss_mb,
            voices=tuple(sorted(self.voices)),
            job_id=job_id,
            uptime_s=now - self.spawned_at,
        )
