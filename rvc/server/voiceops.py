"""Loading and unloading voices on every worker while jobs keep flowing.

A voice operation is queued to each live worker and runs there between
jobs (a worker does one thing at a time), so queued jobs are never dropped.
It finishes when every worker has answered (or died); a load that failed on
any worker is rolled back everywhere, because a voice that only some workers
hold would make jobs succeed or fail by chance.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rvc.errors import ModelUnavailable, NotFound
from rvc.server.jobs import Settled, new_future, settle
from rvc.server.shm import unlink_segment
from rvc.server.voices import VoiceFiles
from rvc.server.wire import error_from_dict

if TYPE_CHECKING:
    from rvc.server.process import WorkerProcess

__all__ = ["VoiceOp", "VoiceOpsMixin"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class VoiceOp:
    """One load or unload, across the workers listed in ``waiting``.

    kind: "load" or "unload". ``future`` gets the voice info dict (load),
    None (unload) or the error; ``internal`` operations (rollbacks) have
    nobody waiting on them.
    """

    op_id: int
    kind: str
    name: str
    files: VoiceFiles | None
    future: concurrent.futures.Future[Any]
    waiting: set[int] = field(default_factory=set)
    info: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def message(self) -> tuple[Any, ...]:
        """The pipe message asking a worker to do this."""
        if self.kind == "load":
            return ("load_voice", self.op_id, self.files)
        return ("unload_voice", self.op_id, self.name)

    def needed_by(self, voices: set[str]) -> bool:
        """Whether a worker holding ``voices`` has anything to do."""
        return (self.name not in voices) if self.kind == "load" else (self.name in voices)

    def answered(
        self, worker_id: int, *, info: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> None:
        self.waiting.discard(worker_id)
        if error is not None:
            self.errors.append(error)
        elif info is not None:
            self.info = info

    @property
    def complete(self) -> bool:
        return not self.waiting and not self.finished


class VoiceOpsMixin:
    """Voice operations of ``Supervisor`` (mixed into it; uses ``PoolState``'s fields under its lock)."""

    def voice_op(
        self, kind: str, name: str, files: VoiceFiles | None = None
    ) -> concurrent.futures.Future[Any]:
        """Start loading or unloading a voice on every worker; the future ends when all have."""
        with self.lock:
            if not self.accepting:
                raise ModelUnavailable("the RVC server is not accepting work (stopped or stopping)")
            if kind == "load":
                if name in self._loading:
                    return self._loading[name].future
                if name in self._resident:
                    done = new_future()
                    done.set_result(self.voice_info.get(name, {"name": name}))
                    return done
                self._resident[name] = files  # type: ignore[assignment]
            elif name not in self._resident:
                raise NotFound(f"voice {name!r} is not loaded", field="voice")
            else:
                del self._resident[name]
                self.voice_info.pop(name, None)
            op = self._new_op(kind, name, files)
            settled: Settled = []
            self._finish_op(op, settled)  # no live worker to wait for: done at once
        settle(settled)
        self.wake()
        return op.future

    def _on_voice_done(self, worker: WorkerProcess, message: tuple[Any, ...], settled: Settled) -> None:
        _, op_id, name, info, error = message
        op = worker.task if isinstance(worker.task, VoiceOp) and worker.task.op_id == op_id else None
        worker.task = None
        if op is None:
            return
        if error is None:
            (worker.voices.add if op.kind == "load" else worker.voices.discard)(name)
        op.answered(worker.worker_id, info=info, error=error)
        self._finish_op(op, settled)

    def _next_op(self, worker: WorkerProcess, settled: Settled) -> VoiceOp | None:
        while worker.ops:
            op = worker.ops[0]
            if not op.needed_by(worker.voices):
                worker.ops.popleft()
                op.answered(worker.worker_id, info=self.voice_info.get(op.name))
                self._finish_op(op, settled)
                continue
            if op.kind == "unload" and any(job.voice == op.name for job in self._queue):
                return None  # let the queued jobs for this voice run first
            return worker.ops.popleft()
        return None

    def _new_op(
        self,
        kind: str,
        name: str,
        files: VoiceFiles | None,
        *,
        targets: list[WorkerProcess] | None = None,
        internal: bool = False,
    ) -> VoiceOp:
        op = VoiceOp(op_id=next(self._op_ids), kind=kind, name=name, files=files, future=new_future())
        if targets is None:
            targets = [w for w in self._workers if not w.dead and not w.stop_sent]
        for worker in targets:
            worker.ops.append(op)
            op.waiting.add(worker.worker_id)
        if kind == "load" and not internal:
            self._loading[name] = op
        if internal:
            op.future.set_result(None)
        return op

    def _finish_op(self, op: VoiceOp, settled: Settled) -> None:
        if not op.complete:
            return
        op.finished = True
        if op.kind == "load" and self._loading.get(op.name) is op:
            del self._loading[op.name]
        if op.kind == "unload" or not op.errors:
            if op.kind == "load":
                info = op.info or {"name": op.name}
                if op.name in self._resident:
                    self.voice_info[op.name] = info
                settled.append((op.future, info))
            else:
                settled.append((op.future, None))
            return
        error = error_from_dict(op.errors[0])
        logger.error("loading voice %s failed: %s; unloading it everywhere", op.name, error.message)
        if self._resident.get(op.name) is op.files:
            del self._resident[op.name]
        holders = [w for w in self._workers if not w.dead and op.name in w.voices]
        if holders:
            self._new_op("unload", op.name, None, targets=holders, internal=True)
        for job in [job for job in self._queue if job.voice == op.name]:
            self._queue.remove(job)
            self._jobs.pop(job.job_id, None)
            unlink_segment(job.input_segment)
            self.counters["failed"] += 1
            settled.append(
                (job.future, NotFound(f"voice {op.name!r} failed to load: {error.message}", field="voice"))
            )
        settled.append((op.future, error))
