"""Loading and unloading voices on every worker while jobs keep flowing.

A voice operation is queued to each live worker and runs there between
jobs (a worker does one thing at a time), so queued jobs are never dropped.
It finishes when every worker has answered (or died); a load that failed on
any worker is rolled back everywhere, because a voice that only some workers
hold would make jobs succeed or fail by chance.

``VoiceOps`` is one part of the pool's state (state.py): it is handed the
worker set, the job queue and the counters it works with, and like them it
is called under the pool's lock.
"""

from __future__ import annotations

import concurrent.futures
import enum
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rvc.errors import ModelUnavailable, NotFound
from rvc.infer.params import VoiceInfo
from rvc.server.jobs import Settled, new_future
from rvc.server.messages import LoadVoice, UnloadVoice, VoiceDone
from rvc.server.status import PoolCounters
from rvc.server.voices import VoiceFiles
from rvc.server.wire import ErrorReport

if TYPE_CHECKING:
    from rvc.server.job_queue import JobQueue
    from rvc.server.process import WorkerProcess
    from rvc.server.workers import WorkerSet

__all__ = ["VoiceOp", "VoiceOpKind", "VoiceOps"]

logger = logging.getLogger(__name__)


class VoiceOpKind(enum.Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclass(eq=False)
class VoiceOp:
    """One load or unload, across the workers listed in ``waiting``.

    ``future`` gets the VoiceInfo (load; None when no worker reported one),
    None (unload) or the error; ``internal`` operations (rollbacks) have
    nobody waiting on them. ``files`` is set for a load.
    """

    op_id: int
    kind: VoiceOpKind
    name: str
    files: VoiceFiles | None
    future: concurrent.futures.Future[Any]
    waiting: set[int] = field(default_factory=set)
    info: VoiceInfo | None = None
    errors: list[ErrorReport] = field(default_factory=list)
    finished: bool = False

    def command(self) -> LoadVoice | UnloadVoice:
        """The command asking a worker to do this."""
        if self.kind is VoiceOpKind.LOAD and self.files is not None:
            return LoadVoice(op_id=self.op_id, files=self.files)
        return UnloadVoice(op_id=self.op_id, name=self.name)

    def needed_by(self, voices: set[str]) -> bool:
        """Whether a worker holding ``voices`` has anything to do."""
        return (self.name not in voices) if self.kind is VoiceOpKind.LOAD else (self.name in voices)

    def answered(
        self, worker_id: int, *, info: VoiceInfo | None = None, error: ErrorReport | None = None
    ) -> None:
        self.waiting.discard(worker_id)
        if error is not None:
            self.errors.append(error)
        elif info is not None:
            self.info = info

    @property
    def complete(self) -> bool:
        return not self.waiting and not self.finished


class VoiceOps:
    """The resident voices and the operations that change them."""

    def __init__(
        self, voices: dict[str, VoiceFiles], workers: WorkerSet, jobs: JobQueue, counters: PoolCounters
    ) -> None:
        self.resident: dict[str, VoiceFiles] = dict(voices)  # loaded or loading
        self.info: dict[str, VoiceInfo] = {}
        self._loading: dict[str, VoiceOp] = {}
        self._workers = workers
        self._jobs = jobs
        self._counters = counters
        self._op_ids = itertools.count(1)

    def pending_loads(self) -> list[VoiceOp]:
        return list(self._loading.values())

    # -- starting operations (from callers' threads, under the lock) -----------------------------

    def load(self, files: VoiceFiles, settled: Settled) -> concurrent.futures.Future[Any]:
        """Start loading ``files`` on every worker; an ongoing load of the same name is shared."""
        if files.name in self._loading:
            return self._loading[files.name].future
        if files.name in self.resident:
            done = new_future()
            done.set_result(self.info.get(files.name))
            return done
        self.resident[files.name] = files
        op = self._new_op(VoiceOpKind.LOAD, files.name, files)
        self._finish(op, settled)  # no live worker to wait for: done at once
        return op.future

    def unload(self, name: str, settled: Settled) -> concurrent.futures.Future[Any]:
        """Start unloading ``name`` everywhere, once the jobs queued for it have run."""
        if name not in self.resident:
            raise NotFound(f"voice {name!r} is not loaded", field="voice")
        del self.resident[name]
        self.info.pop(name, None)
        op = self._new_op(VoiceOpKind.UNLOAD, name, None)
        self._finish(op, settled)
        return op.future

    def fail_pending(self, error: ModelUnavailable) -> Settled:
        return [(op.future, error) for op in self._loading.values()]

    # -- the supervisor's side -------------------------------------------------------------------

    def on_worker_ready(self, worker: WorkerProcess, voices: dict[str, VoiceInfo]) -> None:
        """Record what a new worker holds; unload what was unloaded while it was starting."""
        for name, info in voices.items():
            self.info.setdefault(name, info)
        for name in worker.voices - set(self.resident):
            self._new_op(VoiceOpKind.UNLOAD, name, None, targets=[worker], internal=True)

    def next_for(self, worker: WorkerProcess, settled: Settled) -> VoiceOp | None:
        """The voice operation ``worker`` should run now, if any (skips those it does not need)."""
        while worker.ops:
            op = worker.ops[0]
            if not op.needed_by(worker.voices):
                worker.ops.popleft()
                op.answered(worker.worker_id, info=self.info.get(op.name))
                self._finish(op, settled)
                continue
            if op.kind is VoiceOpKind.UNLOAD and self._jobs.has_queued_for(op.name):
                return None  # let the queued jobs for this voice run first
            return worker.ops.popleft()
        return None

    def on_done(self, worker: WorkerProcess, reply: VoiceDone, settled: Settled) -> None:
        op = worker.task if isinstance(worker.task, VoiceOp) and worker.task.op_id == reply.op_id else None
        worker.task = None
        if op is None:
            return
        if reply.error is None:
            if op.kind is VoiceOpKind.LOAD:
                worker.voices.add(reply.name)
            else:
                worker.voices.discard(reply.name)
        op.answered(worker.worker_id, info=reply.info, error=reply.error)
        self._finish(op, settled)

    def on_worker_death(
        self, worker: WorkerProcess, task: VoiceOp | None, how: str, settled: Settled
    ) -> None:
        """A dead worker answers every operation it owed: the one it ran failed, the rest are moot."""
        for op in ([task] if task is not None else []) + list(worker.ops):
            error = ErrorReport("WorkerCrashed", f"worker {worker.worker_id} died ({how}) loading {op.name}")
            op.answered(worker.worker_id, error=error if op is task else None)
            self._finish(op, settled)
        worker.ops.clear()

    # -- bookkeeping ------------------------------------------------------------------------------

    def _new_op(
        self,
        kind: VoiceOpKind,
        name: str,
        files: VoiceFiles | None,
        *,
        targets: list[WorkerProcess] | None = None,
        internal: bool = False,
    ) -> VoiceOp:
        op = VoiceOp(op_id=next(self._op_ids), kind=kind, name=name, files=files, future=new_future())
        if targets is None:
            targets = [w for w in self._workers if not w.stopping]
        for worker in targets:
            worker.ops.append(op)
            op.waiting.add(worker.worker_id)
        if kind is VoiceOpKind.LOAD and not internal:
            self._loading[name] = op
        if internal:
            op.future.set_result(None)
        return op

    def _finish(self, op: VoiceOp, settled: Settled) -> None:
        if not op.complete:
            return
        op.finished = True
        if op.kind is VoiceOpKind.LOAD and self._loading.get(op.name) is op:
            del self._loading[op.name]
        if op.kind is VoiceOpKind.UNLOAD:
            settled.append((op.future, None))
        elif not op.errors:
            if op.name in self.resident and op.info is not None:
                self.info[op.name] = op.info
            settled.append((op.future, op.info))
        else:
            self._roll_back(op, settled)

    def _roll_back(self, op: VoiceOp, settled: Settled) -> None:
        error = op.errors[0].to_exception()
        logger.error("loading voice %s failed: %s; unloading it everywhere", op.name, error.message)
        if self.resident.get(op.name) is op.files:
            del self.resident[op.name]
        holders = [w for w in self._workers if not w.dead and op.name in w.voices]
        if holders:
            self._new_op(VoiceOpKind.UNLOAD, op.name, None, targets=holders, internal=True)
        for job in self._jobs.drop_queued_for(op.name):
            self._counters.failed += 1
            settled.append(
                (job.future, NotFound(f"voice {op.name!r} failed to load: {error.message}", field="voice"))
            )
        settled.append((op.future, error))
