"""The pool's one supervisor thread: it alone talks to the workers.

Every pipe and process sentinel goes into one ``multiprocessing.connection.wait``
together with a self-pipe that other threads write to after they queue a job,
cancel one or ask for a voice. Each round it reads replies, reaps dead
workers, expires deadlines, keeps N workers alive and hands queued work to
idle workers. It composes its parts: the data in ``PoolState`` (state.py:
job queue, streams, worker set, voice operations, counters), the lifecycle
rules in ``Lifecycle`` (lifecycle.py) and the stream rules in
``StreamRunner`` (stream_runner.py); it handles job replies, deaths and
dispatch itself, all under the state's lock. Futures are settled after the lock is
released, so callbacks may call back into the pool.

A worker that dies while converting fails its job with WorkerCrashed and the
job is **not retried**: the input itself may be what killed the worker (a
poisoned file, an out-of-memory size), and a retry would then take down a
second worker; the caller, who knows whether the request is worth repeating,
decides. A job that was sent to a dead pipe was never started and is queued
again instead.
"""

from __future__ import annotations

import logging
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from rvc.errors import ModelUnavailable, VoiceError, WorkerCrashed
from rvc.infer.params import ConversionResult
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, Settled, settle
from rvc.server.lifecycle import Lifecycle
from rvc.server.messages import (
    BlockConverted,
    ConvertJob,
    InitFailed,
    JobConverted,
    JobFailed,
    Ready,
    Reply,
    StreamClosed,
    StreamFailed,
    VoiceDone,
)
from rvc.server.process import WorkerProcess, WorkerState
from rvc.server.shm import read_audio, unlink_segment
from rvc.server.state import PoolState
from rvc.server.stream_runner import StreamRunner, takes_stream_work
from rvc.server.voiceops import VoiceOp
from rvc.server.voices import VoiceFiles

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

MAX_START_FAILURES = 3


class Supervisor:
    """Drives the workers of one pool (``RVCServer`` is its public face; ``state`` its data)."""

    def __init__(self, config: PoolConfig, voices: dict[str, VoiceFiles], shm_prefix: str) -> None:
        self.config = config
        self.state = PoolState(config, voices, shm_prefix)
        self.lifecycle = Lifecycle(self.state, config)
        self.streams = StreamRunner(self.state, config)
        self._thread = threading.Thread(target=self._run, name="rvc-pool-supervisor", daemon=True)

    # -- lifecycle (callers' threads) -------------------------------------------------------------

    def start(self) -> None:
        with self.state.lock:
            if self.state.stopping:
                raise ModelUnavailable("the RVC pool was stopped before it started")
            self.state.accepting = True
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Stop every worker (killing what is left at ``deadline``) and end the thread."""
        state = self.state
        with state.lock:
            state.accepting = False
            state.stopping = True
            state.stop_deadline = deadline
            settled = state.voices.fail_pending(ModelUnavailable("the RVC server stopped"))
        settle(settled)
        state.wake()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()) + 10.0)
        if not self._thread.is_alive():
            state.close_wake_pipe()

    @property
    def thread_alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug here must not leave callers waiting forever
            logger.exception("RVC pool supervisor failed")
            state = self.state
            with state.lock:
                state.broken = ModelUnavailable(f"RVC pool supervisor failed: {type(exc).__name__}: {exc}")
                state.accepting = False
                jobs = state.jobs.clear()
                for worker in state.workers:
                    worker.kill()
                    worker.reap()
                settled: Settled = [(job.future, state.broken) for job in jobs]
                for stream in state.streams:
                    stream.running, stream.on_worker = None, False
                self.streams.fail_all(state.broken, settled)
                state.changed.notify_all()
            settle(settled)

    def _loop(self) -> None:
        state = self.state
        while True:
            settled: Settled = []
            with state.lock:
                now = time.monotonic()
                self.lifecycle.expire(now, settled)
                self.streams.expire(now, settled)
                self.lifecycle.maintain(now)
                self._dispatch(settled)
                finished = state.stopping and state.workers.all_dead()
                waitables = state.workers.waitables()
                timeout = self._next_timeout(now)
                state.changed.notify_all()
            settle(settled)
            if finished:
                logger.info("RVC pool stopped")
                return
            ready = wait([state.wake_read, *waitables], timeout)
            settled = []
            with state.lock:
                for handle in ready:
                    if handle == state.wake_read:
                        state.drain_wake_pipe()
                    else:
                        self._on_ready(handle, waitables[handle], settled)
            settle(settled)

    def _next_timeout(self, now: float) -> float | None:
        state = self.state
        times = [job.deadline for job in state.jobs.live()] + state.workers.wake_times()
        times += state.streams.deadlines()
        if state.workers.respawn_after > now:
            times.append(state.workers.respawn_after)
        if state.stop_deadline is not None:
            times.append(state.stop_deadline)
        # never 0: an overdue moment whose action is already under way (a kill) must not spin the loop
        return max(0.005, min(times) - now) if times else None

    def _on_ready(self, handle: Any, worker: WorkerProcess, settled: Settled) -> None:
        if worker.dead:  # reaped earlier in this round (its pipe and sentinel fired together)
            return
        if handle is worker.conn:
            for reply in worker.receive_all():
                self._on_reply(worker, reply, settled)
        elif handle == worker.sentinel:
            for reply in worker.receive_all():  # its last words come before its death
                self._on_reply(worker, reply, settled)
            self._on_death(worker, settled)

    # -- replies ----------------------------------------------------------------------------------

    def _on_reply(self, worker: WorkerProcess, reply: Reply, settled: Settled) -> None:
        match reply:
            case Ready():
                self._on_worker_ready(worker, reply)
            case InitFailed():
                worker.init_error = reply.error
            case JobConverted() | JobFailed():
                self._on_job_reply(worker, reply, settled)
            case BlockConverted() | StreamFailed() | StreamClosed():
                self.streams.on_reply(worker, reply, settled)
                self.lifecycle.recycle_if_due(worker)
            case VoiceDone():
                self.state.voices.on_done(worker, reply, settled)
            case _:
                logger.error("worker %d sent an unknown message %r", worker.worker_id, type(reply).__name__)

    def _on_worker_ready(self, worker: WorkerProcess, reply: Ready) -> None:
        state = self.state
        worker.mark_ready(time.monotonic())
        worker.pid, worker.voices, worker.rss_mb = reply.pid, set(reply.voices), reply.rss_mb
        worker.device, worker.precision, worker.precision_source = reply.device, reply.precision, reply.precision_source
        state.workers.start_failures = 0
        state.voices.on_worker_ready(worker, reply.voices)
        logger.info("worker %d (pid %s) ready in %.1f s", worker.worker_id, reply.pid, reply.startup_s)
        if state.workers.ready_serving() >= self.config.num_workers:
            state.workers.all_ready_once = True

    def _on_job_reply(self, worker: WorkerProcess, reply: JobConverted | JobFailed, settled: Settled) -> None:
        state = self.state
        task = worker.task
        job = task if isinstance(task, Job) and task.job_id == reply.job_id else None
        worker.task, worker.kill_at, worker.rss_mb = None, None, reply.rss_mb
        worker.gpu_reserved_mb = reply.gpu_reserved_mb
        worker.jobs_done += 1
        if isinstance(reply, JobFailed) and reply.worker_exits:
            # A sticky CUDA error: the worker exits after this reply; send it nothing more.
            worker.advance(WorkerState.STOPPING)
            state.counters.crashed += 1
            logger.error("worker %d (pid %s) has an unusable CUDA context and exits; starting a replacement",
                         worker.worker_id, worker.pid)
        if job is None:
            logger.error(
                "worker %d answered job %s, which it was not running", worker.worker_id, reply.job_id
            )
            return
        state.jobs.drop_running(job)
        try:
            if job.abandoned:
                return
            if isinstance(reply, JobFailed):
                state.counters.failed += 1
                settled.append((job.future, reply.error.to_exception()))
                return
            try:
                result = self._result(job, reply)
            except (OSError, ValueError) as exc:  # the segment vanished or is short: a worker bug
                state.counters.failed += 1
                settled.append(
                    (job.future, VoiceError(f"job {job.job_id}: could not read the result: {exc}"))
                )
                return
            settled.append((job.future, result))
            state.counters.done += 1
        finally:
            unlink_segment(job.output_segment)
            self.lifecycle.recycle_if_due(worker)

    def _result(self, job: Job, reply: JobConverted) -> ConversionResult:
        replied = time.monotonic()
        audio = read_audio(job.output_segment, reply.num_samples)
        read_s = time.monotonic() - replied
        timings = dict(reply.timings)
        convert_s = timings.pop("worker_convert", 0.0)
        timings.pop("worker_shm", None)
        dispatched = job.dispatched_at if job.dispatched_at is not None else replied
        timings["queue_wait"] = dispatched - (job.submitted_at + job.write_s)
        timings["ipc"] = job.write_s + read_s + max(0.0, replied - dispatched - convert_s)
        timings["pool_total"] = time.monotonic() - job.submitted_at
        self.state.stages.add(timings)
        return ConversionResult(audio=audio, sample_rate=reply.sample_rate, timings=timings)

    # -- deaths -----------------------------------------------------------------------------------

    def _on_death(self, worker: WorkerProcess, settled: Settled) -> None:
        state = self.state
        expected = worker.stopping or state.stopping  # before reap(): a reaped worker reads as stopping
        worker.reap()
        how = worker.describe_exit()
        task, worker.task = worker.task, None
        if isinstance(task, Job):
            self._fail_crashed_job(worker, task, how, settled)
        self.streams.on_worker_death(worker, how, settled)
        state.voices.on_worker_death(worker, task if isinstance(task, VoiceOp) else None, how, settled)
        state.workers.remove(worker)
        if not worker.ready and not expected:
            self._start_failed(worker, how, settled)
        elif expected:
            logger.info("worker %d (pid %s) exited (%s)", worker.worker_id, worker.pid, how)
        else:
            state.counters.crashed += 1
            logger.error(
                "worker %d (pid %s) died (%s); starting a replacement", worker.worker_id, worker.pid, how
            )

    def _fail_crashed_job(self, worker: WorkerProcess, job: Job, how: str, settled: Settled) -> None:
        self.state.jobs.drop_running(job)
        unlink_segment(job.output_segment)
        if job.abandoned:
            return
        self.state.counters.failed += 1
        message = (
            f"worker {worker.worker_id} (pid {worker.pid}) died ({how}) while converting job {job.job_id}; "
            "not retried, as its input may be what killed the worker"
        )
        settled.append((job.future, WorkerCrashed(message)))

    def _start_failed(self, worker: WorkerProcess, how: str, settled: Settled) -> None:
        state, workers = self.state, self.state.workers
        workers.start_failures += 1
        if worker.init_error is not None:
            error = worker.init_error.to_exception()
        else:
            error = ModelUnavailable(f"RVC worker died while starting ({how})")
        logger.error(
            "worker %d failed to start (%d in a row): %s",
            worker.worker_id,
            workers.start_failures,
            error.message,
        )
        workers.respawn_after = time.monotonic() + min(5.0, 0.5 * 2**workers.start_failures)
        if not workers.all_ready_once or workers.start_failures >= MAX_START_FAILURES:
            state.broken = error
            state.accepting = False
            failure = ModelUnavailable(f"RVC workers cannot start: {error.message}")
            settled.extend((job.future, failure) for job in state.jobs.drop_all_queued())
            self.streams.fail_unbound(failure, settled)

    # -- handing out work -------------------------------------------------------------------------

    def _dispatch(self, settled: Settled) -> None:
        free = sorted(
            (worker for worker in self.state.workers if takes_stream_work(worker)), key=self.streams.dispatch_order
        )
        for worker in free:
            if worker.idle and self._dispatch_voice_op(worker, settled):
                continue
            if self.streams.send_close(worker):
                continue
            job = self.state.jobs.next_for(worker.voices) if worker.idle else None
            match self.streams.choose(worker, job):
                case Job() as chosen:
                    self._dispatch_job(worker, chosen)
                case (stream, block):
                    self.streams.send_block(worker, stream, block)

    def _dispatch_voice_op(self, worker: WorkerProcess, settled: Settled) -> bool:
        """Voice operations go before jobs; True when one was sent."""
        op = self.state.voices.next_for(worker, settled)
        if op is None:
            return False
        worker.task = op
        worker.send(op.command())
        return True

    def _dispatch_job(self, worker: WorkerProcess, job: Job) -> None:
        jobs = self.state.jobs
        jobs.start(job, worker.worker_id)
        worker.task, worker.last_was_block = job, False
        command = ConvertJob(
            job_id=job.job_id,
            voice=job.voice,
            input_segment=job.input_segment,
            num_samples=job.num_samples,
            sample_rate=job.sample_rate,
            params=job.params,
            output_segment=job.output_segment,
        )
        if not worker.send(command):
            worker.task = None
            jobs.put_back(job)  # never reached the worker: safe to run elsewhere
            worker.advance(WorkerState.STOPPING)
