"""The pool's shared state and the thread-safe calls other threads make on it.

``PoolState`` composes the pool's parts, each a plain object with one job:
``JobQueue`` (job_queue.py), ``StreamTable`` (stream_jobs.py), ``WorkerSet``
(workers.py), ``VoiceOps`` (voiceops.py), the counters and stage averages
(status.py). One lock guards
them all; the parts do not lock themselves. Callers' threads use the methods
here; the supervisor thread (supervisor.py) drives the workers with the same
parts under the same lock. Futures are settled after the lock is released
(``settle``), so a done-callback may call back into the pool.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rvc.errors import Busy, InvalidInput, JobCancelled, ModelUnavailable, NotFound, VoiceError
from rvc.server.config import PoolConfig
from rvc.server.job_queue import JobQueue
from rvc.server.jobs import Job, JobState, Settled, settle
from rvc.server.status import PoolCounters, PoolStatus, StageAverages
from rvc.server.stream_jobs import Block, Feed, Stream, StreamTable
from rvc.server.voiceops import VoiceOps
from rvc.server.voices import VoiceFiles
from rvc.server.wire import ErrorReport
from rvc.server.workers import WorkerSet

__all__ = ["PoolState"]


class PoolState:
    """Queue, jobs, workers, voices and counters of one pool, guarded by ``lock``."""

    def __init__(self, config: PoolConfig, voices: dict[str, VoiceFiles], shm_prefix: str) -> None:
        self.config = config
        self.shm_prefix = shm_prefix
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.accepting = False
        self.stopping = False
        self.broken: VoiceError | None = None
        self.stop_deadline: float | None = None
        self.counters = PoolCounters()
        self.stages = StageAverages()
        self.jobs = JobQueue()
        self.streams = StreamTable(config.job_timeout_s)
        self.workers = WorkerSet(config)
        self.voices = VoiceOps(voices, self.workers, self.jobs, self.counters)
        self.wake_read, self._wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self._wake_write, False)

    # -- the supervisor's wake-up pipe ------------------------------------------------------------

    def wake(self) -> None:
        """Make the supervisor thread look at the state again."""
        with self.lock:  # the fd is closed (and its number may be reused) once the pool stops
            if self._wake_write < 0:
                return
            try:
                os.write(self._wake_write, b"x")
            except BlockingIOError:
                pass  # the pipe is full: the thread is awake anyway

    def drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close_wake_pipe(self) -> None:
        with self.lock:
            for fd in (self.wake_read, self._wake_write):
                if fd >= 0:
                    os.close(fd)
            self.wake_read = self._wake_write = -1

    # -- intake -----------------------------------------------------------------------------------

    def close_intake(self) -> None:
        """Refuse new jobs and voice operations from now on."""
        with self.lock:
            self.accepting = False

    def resident_voices(self) -> tuple[str, ...]:
        """Voices loaded or loading, sorted."""
        with self.lock:
            return tuple(sorted(self.voices.resident))

    def enqueue(self, job: Job) -> None:
        """Queue a job; raises Busy, NotFound or ModelUnavailable without queuing it."""
        with self.lock:
            self._check_admits(job.voice, "jobs")
            if self.jobs.depth >= self.config.max_queue:
                self.counters.rejected_busy += 1
                raise Busy(
                    f"RVC queue full ({self.jobs.depth} jobs waiting)", retry_after_s=self._retry_after()
                )
            self.jobs.add(job)
            self.counters.submitted += 1
        self.wake()

    def cancel(self, job_id: str, reason: str) -> bool:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.abandoned or job.future.done():
                return False
            if job.state is JobState.QUEUED:
                self.jobs.drop_queued(job)
            else:
                job.abandoned = True  # its worker cannot be interrupted: the result is dropped
            self.counters.cancelled += 1
        settle([(job.future, JobCancelled(f"job {job_id} cancelled: {reason}"))])
        self.wake()
        return True

    def cancel_all(self, reason: str) -> int:
        """Cancel every job and end every stream; returns the number of jobs cancelled."""
        with self.lock:
            ids = [job.job_id for job in self.jobs.live()]
            streams = [stream.stream_id for stream in self.streams if stream.ended is None]
        for stream_id in streams:
            self.close_stream(stream_id, reason)
        return sum(self.cancel(job_id, reason) for job_id in ids)

    # -- streams ----------------------------------------------------------------------------------

    def open_stream(self, stream: Stream) -> None:
        """Admit a stream; raises Busy (streams or queue full), NotFound or ModelUnavailable."""
        with self.lock:
            self._check_admits(stream.voice, "streams")
            full = len(self.streams) >= self.config.max_streams or self.jobs.depth >= self.config.max_queue
            if full:
                self.counters.rejected_busy += 1
                raise Busy(
                    f"RVC pool full ({len(self.streams)} streams open, {self.jobs.depth} jobs waiting)",
                    retry_after_s=self._retry_after(),
                )
            self.streams.add(stream)
            self.counters.streams_opened += 1

    def voice_rate(self, voice: str) -> int | None:
        """The output rate of a resident voice, None while no worker has reported it."""
        with self.lock:
            info = self.voices.info.get(voice)
            return None if info is None else info.sample_rate

    def feed_stream(self, stream: Stream, blocks: list[Block], feed: Feed, *, final: bool) -> None:
        """Queue a feed (``final``: the flush); raises the stream's end reason when it takes no more."""
        with self._settling() as settled:
            if stream.ended is not None:  # a fresh exception: the original is on the failed futures
                raise ErrorReport.from_exception(stream.ended).to_exception()
            if stream.flushed:
                raise InvalidInput(
                    f"stream {stream.stream_id} was flushed; open a new stream to convert more audio",
                    field="audio",
                )
            stream.flushed = final
            self.streams.feed(stream, blocks, feed, settled)

    def close_stream(self, stream_id: str, reason: str) -> bool:
        """End a stream: waiting feeds get JobCancelled, its worker state is freed; False if already ended."""
        settled: Settled = []
        with self.lock:
            stream = self.streams.get(stream_id)
            if stream is None or stream.ended is not None:
                return False
            self.streams.fail(stream, JobCancelled(f"stream {stream_id} closed: {reason}"), settled)
        settle(settled)
        self.wake()
        return True

    def load_voice(self, files: VoiceFiles) -> concurrent.futures.Future[Any]:
        """Start loading a voice on every worker; the future ends (with its VoiceInfo) when all have."""
        with self._settling() as settled:
            self._check_accepting()
            return self.voices.load(files, settled)

    def unload_voice(self, name: str) -> concurrent.futures.Future[Any]:
        """Start unloading a voice on every worker; the future ends when all have."""
        with self._settling() as settled:
            self._check_accepting()
            return self.voices.unload(name, settled)

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise ModelUnavailable("the RVC server is not accepting work (stopped or stopping)")

    def _check_admits(self, voice: str, what: str) -> None:
        """Under the lock: ModelUnavailable while the workers are down or the pool stops, NotFound for a
        voice that is not resident; ``what`` ("jobs", "streams") names what is refused."""
        if self.broken is not None:
            raise ModelUnavailable(f"RVC workers are down: {self.broken.message}")
        if not self.accepting:
            raise ModelUnavailable(f"the RVC server is not accepting {what} (stopped or stopping)")
        if voice not in self.voices.resident:
            raise NotFound(f"voice {voice!r} is not loaded (loaded: {sorted(self.voices.resident)})", field="voice")

    @contextmanager
    def _settling(self) -> Iterator[Settled]:
        """The lock for the body, which collects futures to settle; they are settled after the lock is
        released (a done-callback may call back into the pool), then the supervisor is woken. A body
        that raises settles nothing."""
        settled: Settled = []
        with self.lock:
            yield settled
        settle(settled)
        self.wake()

    # -- waiting and looking ----------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> None:
        """Block until N workers are ready; raise the startup error or ModelUnavailable on timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while (
                self.broken is None
                and not self.stopping
                and self.workers.ready_serving() < self.config.num_workers
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
        """Block until no job or stream block is queued or running (True) or the deadline passes (False)."""
        with self.changed:
            while self.jobs.live() or self.streams.busy():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def snapshot(self, default_voice: str) -> PoolStatus:
        with self.lock:
            now = time.monotonic()
            c = self.counters
            return PoolStatus(
                accepting=self.accepting,
                num_workers=self.config.num_workers,
                workers=tuple(w.status(now) for w in self.workers.live()),
                queue_depth=self.jobs.depth,
                max_queue=self.config.max_queue,
                running=self.jobs.running(),
                jobs_submitted=c.submitted,
                jobs_done=c.done,
                jobs_failed=c.failed,
                jobs_cancelled=c.cancelled,
                jobs_timed_out=c.timed_out,
                jobs_rejected_busy=c.rejected_busy,
                workers_crashed=c.crashed,
                workers_recycled=c.recycled,
                workers_killed_hung=c.killed_hung,
                voices=tuple(sorted(self.voices.resident)),
                default_voice=default_voice,
                stage_avg_s=self.stages.means(),
                error=None if self.broken is None else self.broken.message,
                open_streams=len(self.streams),
                max_streams=self.config.max_streams,
                streams_opened=c.streams_opened,
                streams_failed=c.streams_failed,
                stream_blocks_done=c.stream_blocks_done,
            )

    def _retry_after(self) -> float:
        """Seconds until a queue slot is likely free: the backlog at the mean time per job."""
        per_job = self.stages.mean("total") or 1.0  # a worker's time per job, without queueing
        return float(max(1.0, round(per_job * self.jobs.backlog() / self.config.num_workers, 1)))
