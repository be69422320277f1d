"""The parent's handle on one worker process: spawn, talk, watch, stop.

Only the pool's supervisor thread calls these methods (under the pool's
lock); the handle itself is not locked.
"""

from __future__ import annotations

import enum
import logging
import multiprocessing
import signal
import time
from collections import deque
from multiprocessing.connection import Connection

from rvc.server.jobs import Job
from rvc.server.messages import Command, Reply, Stop
from rvc.server.status import WorkerStatus, process_rss_mb
from rvc.server.stream_jobs import Block, Stream
from rvc.server.voiceops import VoiceOp
from rvc.server.wire import ErrorReport
from rvc.server.worker import WorkerSpec, worker_main

__all__ = ["Task", "WorkerProcess", "WorkerState"]

logger = logging.getLogger(__name__)

# What a worker can be doing, one at a time: a job, a voice operation, one block of a stream,
# or closing a stream (the Stream itself stands for its CloseStream).
Task = Job | VoiceOp | Block | Stream


class WorkerState(enum.Enum):
    """Where a worker is in its life; it only ever moves down this list.

    STARTING: spawned, loading models (counts toward the pool's N).
    SERVING: takes jobs and voice operations.
    RECYCLING: due for replacement (job count or memory); still takes work but no
        longer counts toward N, so a replacement is spawned beside it.
    RETIRING: its replacement is ready: it takes nothing new and stops once idle.
    STOPPING: asked to exit, or terminated/killed on purpose: its exit is expected.
    DEAD: exited and reaped.
    """

    STARTING = 0
    SERVING = 1
    RECYCLING = 2
    RETIRING = 3
    STOPPING = 4
    DEAD = 5


class WorkerProcess:
    """One spawned worker and what the pool knows about it.

    ``state`` is its lifecycle (WorkerState); ``ready_at`` records that it
    said Ready, which can happen after it was already told to stop. ``task``
    is the one thing it is running; ``ops`` are voice operations waiting for
    it; ``streams`` the ids of the streams whose state it holds, and
    ``last_was_block`` whether its last task was a stream's block (the
    dispatcher alternates blocks and new work: stream_runner.py). ``kill_at`` is set once its job passed its
    deadline: past that moment it is killed as hung.
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
        self.state = WorkerState.STARTING
        self.ready_at: float | None = None
        self.init_error: ErrorReport | None = None
        self.voices: set[str] = set()
        self.task: Task | None = None
        self.ops: deque[VoiceOp] = deque()
        self.streams: set[str] = set()
        self.last_was_block = False
        self.jobs_done = 0
        self.rss_mb: float | None = None
        self.gpu_reserved_mb: float | None = None
        self.device: str | None = None  # from its Ready: where its models run, and in which precision
        self.precision: str | None = None
        self.precision_source: str | None = None
        self.kill_at: float | None = None
        self.exitcode: int | None = None

    # -- state --------------------------------------------------------------------------------

    def advance(self, state: WorkerState) -> None:
        """Move to ``state`` unless the worker is already past it (states never go back)."""
        if state.value > self.state.value:
            self.state = state

    def mark_ready(self, now: float) -> None:
        self.ready_at = now
        self.advance(WorkerState.SERVING)

    @property
    def ready(self) -> bool:
        return self.ready_at is not None

    @property
    def dead(self) -> bool:
        return self.state is WorkerState.DEAD

    @property
    def stopping(self) -> bool:
        """Told to exit (or made to): its death is expected."""
        return self.state.value >= WorkerState.STOPPING.value

    @property
    def counts_toward_pool(self) -> bool:
        """Counts toward the pool's N: alive and not on its way out."""
        return self.state in (WorkerState.STARTING, WorkerState.SERVING)

    @property
    def accepts_work(self) -> bool:
        return self.ready and self.state in (WorkerState.SERVING, WorkerState.RECYCLING)

    @property
    def idle(self) -> bool:
        return self.accepts_work and self.task is None

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    # -- talking ------------------------------------------------------------------------------

    def send(self, command: Command) -> bool:
        """Send a command; False if the pipe is already broken (death is noticed via the sentinel)."""
        if self.conn is None:
            return False
        try:
            self.conn.send(command)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            logger.warning("worker %d (pid %s): send failed: %s", self.worker_id, self.pid, exc)
            return False
        return True

    def receive_all(self) -> list[Reply]:
        """Every reply waiting in the pipe; closes it on EOF."""
        replies: list[Reply] = []
        while self.conn is not None:
            try:
                if not self.conn.poll():
                    break
                replies.append(self.conn.recv())
            except (EOFError, OSError):
                self.close_pipe()
        return replies

    def close_pipe(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- stopping -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask an idle worker to exit (terminate it if the pipe is broken)."""
        if not self.stopping:
            logger.debug("worker %d (pid %s): asking it to stop", self.worker_id, self.pid)
            self.advance(WorkerState.STOPPING)
            if not self.send(Stop()):
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
        self.state = WorkerState.DEAD
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

    def _task_id(self) -> str | None:
        task = self.task
        if isinstance(task, Job):
            return task.job_id
        if isinstance(task, Block):
            return task.block_id
        return None

    def status(self, now: float) -> WorkerStatus:
        if self.dead:
            state = "dead"
        elif not self.ready:
            state = "starting"
        elif self.stopping:
            state = "stopping"
        elif self.state is WorkerState.RETIRING:
            state = "retiring"
        else:
            state = "idle" if self.task is None else "busy"
        rss = process_rss_mb(self.pid) if self.pid is not None and not self.dead else None
        return WorkerStatus(
            worker_id=self.worker_id,
            pid=self.pid,
            state=state,
            jobs_done=self.jobs_done,
            rss_mb=rss if rss is not None else self.rss_mb,
            voices=tuple(sorted(self.voices)),
            job_id=self._task_id(),
            uptime_s=now - self.spawned_at,
            streams=len(self.streams),
            device=self.device,
            precision=self.precision,
            precision_source=self.precision_source,
            gpu_reserved_mb=self.gpu_reserved_mb,
        )
