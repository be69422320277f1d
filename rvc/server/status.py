"""Snapshots of the pool for /health, the control tool and tests.

Plain frozen dataclasses that turn into JSON (``to_dict``) and back
(``from_dict``), because the daemon sends them over its socket.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PoolCounters", "PoolStatus", "StageAverages", "WorkerStatus", "process_rss_mb"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of process ``pid`` (default: this one) in MiB; None where /proc is missing."""
    path = f"/proc/{'self' if pid is None else pid}/statm"
    try:
        with open(path, encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * _PAGE_SIZE / (1024 * 1024)


@dataclass(frozen=True)
class WorkerStatus:
    """One worker process.

    state: "starting" (loading models), "idle", "busy", "retiring" (its
    replacement is ready; it takes no more jobs) or "stopping".
    job_id: the offline job or stream block it is converting.
    streams: open streams whose converter state it holds.
    device / precision: what the worker said in its Ready (None while starting), the precision
    resolved (fp32, bf16, fp16) and ``precision_source`` how ("auto -> fp16 (main's rule: ...)");
    gpu_reserved_mb: its CUDA cache after its last job (None on the CPU).
    """

    worker_id: int
    pid: int | None
    state: str
    jobs_done: int
    rss_mb: float | None
    voices: tuple[str, ...]
    job_id: str | None
    uptime_s: float
    streams: int = 0
    device: str | None = None
    precision: str | None = None
    precision_source: str | None = None
    gpu_reserved_mb: float | None = None

    @property
    def alive(self) -> bool:
        return self.state != "dead"


@dataclass(frozen=True)
class PoolStatus:
    """The whole pool at one moment.

    stage_avg_s: mean seconds per stage over finished jobs, the converter's
    own stages plus ``queue_wait`` (submit -> a worker took it), ``ipc``
    (shared memory + pipes, both directions) and ``pool_total``.
    open_streams: streams opened and not yet gone from their worker (each
    worker's own count is in ``workers``); stream blocks are not jobs and
    count only in the ``stream*`` fields.
    """

    accepting: bool
    num_workers: int
    workers: tuple[WorkerStatus, ...]
    queue_depth: int
    max_queue: int
    running: int
    jobs_submitted: int
    jobs_done: int
    jobs_failed: int
    jobs_cancelled: int
    jobs_timed_out: int
    jobs_rejected_busy: int
    workers_crashed: int
    workers_recycled: int
    workers_killed_hung: int
    voices: tuple[str, ...]
    default_voice: str
    stage_avg_s: dict[str, float]
    error: str | None = None
    open_streams: int = 0
    max_streams: int = 0
    streams_opened: int = 0
    streams_failed: int = 0
    stream_blocks_done: int = 0

    @property
    def ready_workers(self) -> int:
        """Workers able to take jobs now (idle or busy, not retiring)."""
        return sum(1 for w in self.workers if w.state in ("idle", "busy"))

    @property
    def busy_workers(self) -> int:
        return sum(1 for w in self.workers if w.state == "busy")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ready_workers"] = self.ready_workers
        data["busy_workers"] = self.busy_workers
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolStatus:
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["workers"] = tuple(
            WorkerStatus(**{**worker, "voices": tuple(worker["voices"])}) for worker in data["workers"]
        )
        values["voices"] = tuple(data["voices"])
        values["stage_avg_s"] = dict(data["stage_avg_s"])
        return cls(**values)


@dataclass
class PoolCounters:
    """Running totals of one pool (changed under the pool's lock, copied into each PoolStatus)."""

    submitted: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    rejected_busy: int = 0
    crashed: int = 0
    recycled: int = 0
    killed_hung: int = 0
    streams_opened: int = 0
    streams_failed: int = 0
    stream_blocks_done: int = 0


class StageAverages:
    """Running means of per-stage seconds (thread-safe)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, timings: dict[str, float]) -> None:
        with self._lock:
            for stage, seconds in timings.items():
                self._sums[stage] = self._sums.get(stage, 0.0) + float(seconds)
                self._counts[stage] = self._counts.get(stage, 0) + 1

    def mean(self, stage: str) -> float | None:
        with self._lock:
            count = self._counts.get(stage, 0)
            return self._sums[stage] / count if count else None

    def means(self) -> dict[str, float]:
        with self._lock:
            return {stage: self._sums[stage] / self._counts[stage] for stage in sorted(self._sums)}
