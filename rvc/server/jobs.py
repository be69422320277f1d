"""One conversion job: its private record in the pool and the caller's handle.

Each job has its own id and its own ``concurrent.futures.Future``; results go
to that future only, which is what keeps concurrent callers from receiving
each other's audio (the seed read every result from one shared queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import itertools
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvc.errors import InvalidInput, JobTimeout
from rvc.infer.params import ConversionParams, ConversionResult

__all__ = ["Job", "JobHandle", "JobIds", "JobState", "Settled", "mono_float32", "new_future", "settle"]

Settled = list[tuple[concurrent.futures.Future[Any], Any]]


def settle(settled: Settled) -> None:
    """Give each future its outcome (a result or an exception), skipping those already done."""
    for future, outcome in settled:
        if future.done():
            continue
        try:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        except concurrent.futures.InvalidStateError:
            continue


def mono_float32(audio: Any, *, allow_empty: bool = False) -> np.ndarray:
    """(T,), (T, 1) or (1, T) numeric audio -> (T,) float32; InvalidInput otherwise.

    allow_empty: a stream may be fed nothing (a job may not).
    """
    if not isinstance(audio, np.ndarray):
        raise InvalidInput(f"audio must be a numpy array, got {type(audio).__name__}", field="audio")
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise InvalidInput(f"audio must be mono (T,), got shape {audio.shape}", field="audio")
    if audio.size == 0 and not allow_empty:
        raise InvalidInput("audio is empty", field="audio")
    if not (np.issubdtype(audio.dtype, np.floating) or np.issubdtype(audio.dtype, np.integer)):
        raise InvalidInput(f"audio must be numeric, got dtype {audio.dtype}", field="audio")
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InvalidInput("audio contains NaN or infinite samples", field="audio")
    return samples


class JobIds:
    """Thread-safe job ids, unique within a pool: ``<n>`` in base 36."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            number = next(self._counter)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        text = ""
        while number:
            number, rest = divmod(number, 36)
            text = digits[rest] + text
        return text


class JobState(enum.Enum):
    """QUEUED: waiting for a worker; RUNNING: sent to one (it stays RUNNING until it leaves the pool)."""

    QUEUED = "queued"
    RUNNING = "running"


@dataclass(eq=False)
class Job:
    """The pool's record of one job (only the supervisor thread changes it after submit).

    audio crosses in segment ``input_segment`` (``num_samples`` float32 at
    ``sample_rate``); the worker writes its result to ``output_segment``.
    Times are ``time.monotonic()`` seconds.
    """

    job_id: str
    voice: str
    sample_rate: int
    params: ConversionParams
    num_samples: int
    input_segment: str | None
    output_segment: str
    submitted_at: float
    deadline: float
    future: concurrent.futures.Future[ConversionResult]
    write_s: float = 0.0
    state: JobState = JobState.QUEUED
    dispatched_at: float | None = None
    worker_id: int | None = None
    abandoned: bool = False  # the caller already has an answer; the worker's result is dropped


class JobHandle:
    """What ``RVCServer.submit`` returns: the caller's view of one job.

    ``result(timeout)`` blocks a thread; ``await handle.wait()`` (or
    ``await handle``) suspends a coroutine without blocking the event loop.
    Both raise the job's error from the project tree: InvalidInput,
    JobTimeout, JobCancelled, WorkerCrashed, NotFound, ...
    """

    def __init__(
        self,
        job_id: str,
        voice: str,
        future: concurrent.futures.Future[ConversionResult],
        canceller: Callable[[str, str], bool],
    ) -> None:
        self._job_id = job_id
        self._voice = voice
        self._future = future
        self._canceller = canceller
        self._created = time.monotonic()

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def voice(self) -> str:
        return self._voice

    @property
    def future(self) -> concurrent.futures.Future[ConversionResult]:
        """The underlying future (already in RUNNING state, so ``future.cancel()`` is a no-op)."""
        return self._future

    def done(self) -> bool:
        return self._future.done()

    def cancel(self, reason: str = "cancelled by the caller") -> bool:
        """Cancel the job; True if it had not finished yet (the caller then gets JobCancelled).

        A queued job leaves the queue. A running job's worker cannot be
        interrupted mid-conversion: it finishes, and its result is dropped.
        """
        return self._canceller(self._job_id, reason)

    def result(self, timeout: float | None = None) -> ConversionResult:
        """Block until the job ends; if ``timeout`` elapses first, cancel the job and raise JobTimeout."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            self.cancel(f"the caller stopped waiting after {timeout} s")
            if self._future.done() and self._future.exception() is None:
                return self._future.result()
            raise JobTimeout(f"job {self._job_id}: no result within {timeout} s") from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return self._future.exception(timeout)
        except concurrent.futures.TimeoutError:
            raise JobTimeout(f"job {self._job_id}: still running after {timeout} s") from None

    def add_done_callback(self, fn: Callable[[JobHandle], object]) -> None:
        """Call ``fn(handle)`` when the job ends (from the pool's thread; keep it short)."""
        self._future.add_done_callback(lambda _future: fn(self))

    async def wait(self, timeout: float | None = None) -> ConversionResult:
        """Await the result without blocking the loop; cancelling the awaiting task cancels the job."""
        waiter = asyncio.wrap_future(self._future)
        try:
            if timeout is None:
                return await waiter
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self.cancel(f"the caller stopped waiting after {timeout} s")
            raise JobTimeout(f"job {self._job_id}: no result within {timeout} s") from None
        except asyncio.CancelledError:
            self.cancel("the awaiting task was cancelled")
            raise

    def __await__(self) -> Generator[Any, None, ConversionResult]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"JobHandle(job_id={self._job_id!r}, voice={self._voice!r}, {state})"


def new_future() -> concurrent.futures.Future[Any]:
    """A future that only the pool can settle: set running, so ``Future.cancel()`` refuses."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    return future
