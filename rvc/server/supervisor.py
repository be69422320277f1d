"""The pool's one supervisor thread: it alone talks to the workers.

Every pipe and process sentinel goes into one ``multiprocessing.connection.wait``
together with a self-pipe that other threads write to after they queue a job,
cancel one or ask for a voice. Each round it reads replies, reaps dead
workers, expires deadlines, keeps N workers alive and hands queued work to
idle workers. Shared state is guarded by ``lock``; futures are settled after
the lock is released, so callbacks may call back into the pool.

A worker that dies while converting fails its job with WorkerCrashed and the
job is **not retried**: the input itself may be what killed the worker (a
poisoned file, an out-of-memory size), and a retry would then take down a
second worker; the caller, who knows whether the request is worth repeating,
decides. A job that was sent to a dead pipe was never started and is queued
again instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from rvc.errors import JobTimeout, ModelUnavailable, VoiceError, WorkerCrashed
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, Settled, settle
from rvc.server.process import WorkerProcess
from rvc.server.shm import read_audio, unlink_segment
from rvc.server.state import PoolState
from rvc.server.voiceops import VoiceOp, VoiceOpsMixin
from rvc.server.voices import VoiceFiles
from rvc.server.wire import error_from_dict
from rvc.server.worker import WorkerSpec

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

MAX_START_FAILURES = 3


class Supervisor(VoiceOpsMixin, PoolState):
    """Workers, queue and voices of one pool (``RVCServer`` is its public face)."""

    def __init__(self, config: PoolConfig, voices: dict[str, VoiceFiles], shm_prefix: str) -> None:
        super().__init__(config, voices, shm_prefix)
        self._thread = threading.Thread(target=self._run, name="rvc-pool-supervisor", daemon=True)

    def start(self) -> None:
        with self.lock:
            if self.stopping:
                raise ModelUnavailable("the RVC pool was stopped before it started")
            self.accepting = True
        self._thread.start()

    def stop(self, deadline: float) -> None:
        """Stop every worker (killing what is left at ``deadline``) and end the thread."""
        with self.lock:
            self.accepting = False
            self.stopping = True
            self._stop_deadline = deadline
            ops = list(self._loading.values())
        settle([(op.future, ModelUnavailable("the RVC server stopped")) for op in ops])
        self.wake()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()) + 10.0)
        if not self._thread.is_alive():
            self.close_wake_pipe()

    @property
    def thread_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug here must not leave callers waiting forever
            logger.exception("RVC pool supervisor failed")
            with self.lock:
                self.broken = ModelUnavailable(f"RVC pool supervisor failed: {type(exc).__name__}: {exc}")
                self.accepting = False
                jobs = list(self._jobs.values())
                self._jobs.clear()
                self._queue.clear()
                for worker in self._workers:
                    worker.kill()
                    worker.reap()
                self.changed.notify_all()
            settle([(job.future, self.broken) for job in jobs])

    def _loop(self) -> None:
        while True:
            settled: Settled = []
            with self.lock:
                now = time.monotonic()
                self._expire(now, settled)
                self._maintain(now)
                self._dispatch(settled)
                finished = self.stopping and all(w.dead for w in self._workers)
                waitables = self._waitables()
                timeout = self._next_timeout(now)
                self.changed.notify_all()
            settle(settled)
            if finished:
                logger.info("RVC pool stopped")
                return
            ready = wait(list(waitables), timeout)
            settled = []
            with self.lock:
                for handle in ready:
                    self._on_ready(handle, waitables[handle], settled)
            settle(settled)

    def _waitables(self) -> dict[Any, tuple[str, WorkerProcess | None]]:
        waitables: dict[Any, tuple[str, WorkerProcess | None]] = {self._wake_read: ("wake", None)}
        for worker in self._workers:
            if worker.dead:
                continue
            waitables[worker.sentinel] = ("sentinel", worker)
            if worker.conn is not None:
                waitables[worker.conn] = ("conn", worker)
        return waitables

    def _next_timeout(self, now: float) -> float | None:
        times = [job.deadline for job in self._jobs.values() if not job.abandoned]
        for worker in self._workers:
            if worker.kill_at is not None:
                times.append(worker.kill_at)
            if not worker.ready and not worker.dead:
                times.append(worker.spawned_at + self.config.start_timeout_s)
        if self._respawn_after > now:
            times.append(self._respawn_after)
        if self._stop_deadline is not None:
            times.append(self._stop_deadline)
        # never 0: an overdue moment whose action is already under way (a kill) must not spin the loop
        return max(0.005, min(times) - now) if times else None

    def _on_ready(self, handle: Any, what: tuple[str, WorkerProcess | None], settled: Settled) -> None:
        kind, worker = what
        if kind == "wake":
            try:
                while os.read(self._wake_read, 4096):
                    pass
            except (BlockingIOError, OSError):
                pass
            return
        assert worker is not None
        if kind == "conn" and worker.conn is handle:
            for message in worker.receive_all():
                self._on_message(worker, message, settled)
        elif kind == "sentinel" and not worker.dead:
            for message in worker.receive_all():  # its last words come before its death
                self._on_message(worker, message, settled)
            self._on_death(worker, settled)

    def _on_message(self, worker: WorkerProcess, message: tuple[Any, ...], settled: Settled) -> None:
        kind = message[0]
        if kind == "ready":
            _, pid, voices, startup_s, rss = message
            worker.ready, worker.pid, worker.voices, worker.rss_mb = True, pid, set(voices), rss
            self._start_failures = 0
            for name, info in voices.items():
                self.voice_info.setdefault(name, info)
            for name in worker.voices - set(self._resident):  # unloaded while it was starting
                self._new_op("unload", name, None, targets=[worker], internal=True)
            logger.info("worker %d (pid %s) ready in %.1f s", worker.worker_id, pid, startup_s)
            if self._ready_serving() >= self.config.num_workers:
                self._all_ready_once = True
        elif kind == "init_failed":
            worker.init_error = message[1]
        elif kind in ("converted", "failed"):
            self._on_job_reply(worker, message, settled)
        elif kind == "voice_done":
            self._on_voice_done(worker, message, settled)
        else:
            logger.error("worker %d sent an unknown message %r", worker.worker_id, kind)

    def _on_job_reply(self, worker: WorkerProcess, message: tuple[Any, ...], settled: Settled) -> None:
        kind, job_id = message[0], message[1]
        job = worker.task if isinstance(worker.task, Job) and worker.task.job_id == job_id else None
        worker.task, worker.kill_at, worker.rss_mb = None, None, message[-1]
        worker.jobs_done += 1
        if job is None:
            logger.error("worker %d answered job %s, which it was not running", worker.worker_id, job_id)
            return
        self._jobs.pop(job_id, None)
        unlink_segment(job.input_segment)
        try:
            if job.abandoned:
                return
            if kind == "failed":
                self.counters["failed"] += 1
                settled.append((job.future, error_from_dict(message[2])))
                return
            try:
                result = self._result(job, message)
            except (OSError, ValueError) as exc:  # the segment vanished or is short: a worker bug
                self.counters["failed"] += 1
                settled.append((job.future, VoiceError(f"job {job_id}: could not read the result: {exc}")))
                return
            settled.append((job.future, result))
            self.counters["done"] += 1
        finally:
            unlink_segment(job.output_segment)
            self._check_recycle(worker)

    def _result(self, job: Job, message: tuple[Any, ...]) -> Any:
        from rvc.infer.converter import ConversionResult

        _, _, num_samples, sample_rate, timings, _ = message
        replied = time.monotonic()
        audio = read_audio(job.output_segment, num_samples)
        read_s = time.monotonic() - replied
        convert_s = timings.pop("worker_convert", 0.0)
        timings.pop("worker_shm", None)
        dispatched = job.dispatched_at if job.dispatched_at is not None else replied
        timings["queue_wait"] = dispatched - (job.submitted_at + job.write_s)
        timings["ipc"] = job.write_s + read_s + max(0.0, replied - dispatched - convert_s)
        timings["pool_total"] = time.monotonic() - job.submitted_at
        self.stages.add(timings)
        return ConversionResult(audio=audio, sample_rate=sample_rate, timings=timings)

    def _check_recycle(self, worker: WorkerProcess) -> None:
        cfg = self.config
        reason = None
        if cfg.max_jobs_per_worker and worker.jobs_done >= cfg.max_jobs_per_worker:
            reason = f"{worker.jobs_done} jobs done"
        elif cfg.max_rss_mb and worker.rss_mb is not None and worker.rss_mb > cfg.max_rss_mb:
            reason = f"resident memory {worker.rss_mb:.0f} MiB > {cfg.max_rss_mb:.0f} MiB"
        if reason and not worker.retire_requested and not self.stopping:
            worker.retire_requested = True
            self.counters["recycled"] += 1
            logger.info("recycling worker %d (pid %s): %s", worker.worker_id, worker.pid, reason)

    def _on_death(self, worker: WorkerProcess, settled: Settled) -> None:
        worker.reap()
        how = worker.describe_exit()
        task, worker.task = worker.task, None
        expected = worker.stop_sent or self.stopping
        if isinstance(task, Job):
            self._jobs.pop(task.job_id, None)
            unlink_segment(task.input_segment)
            unlink_segment(task.output_segment)
            if not task.abandoned:
                self.counters["failed"] += 1
                settled.append(
                    (
                        task.future,
                        WorkerCrashed(
                            f"worker {worker.worker_id} (pid {worker.pid}) died ({how}) while converting job "
                            f"{task.job_id}; not retried, as its input may be what killed the worker"
                        ),
                    )
                )
        for op in ([task] if isinstance(task, VoiceOp) else []) + list(worker.ops):
            error = {
                "type": "WorkerCrashed",
                "message": f"worker {worker.worker_id} died ({how}) loading {op.name}",
            }
            op.answered(worker.worker_id, error=error if op is task else None)
            self._finish_op(op, settled)
        worker.ops.clear()
        self._workers.remove(worker)
        if not worker.ready and not expected:
            self._start_failed(worker, how, settled)
        elif expected:
            logger.info("worker %d (pid %s) exited (%s)", worker.worker_id, worker.pid, how)
        else:
            self.counters["crashed"] += 1
            logger.error(
                "worker %d (pid %s) died (%s); starting a replacement", worker.worker_id, worker.pid, how
            )

    def _start_failed(self, worker: WorkerProcess, how: str, settled: Settled) -> None:
        self._start_failures += 1
        if worker.init_error is not None:
            error = error_from_dict(worker.init_error)
        else:
            error = ModelUnavailable(f"RVC worker died while starting ({how})")
        logger.error(
            "worker %d failed to start (%d in a row): %s",
            worker.worker_id,
            self._start_failures,
            error.message,
        )
        self._respawn_after = time.monotonic() + min(5.0, 0.5 * 2**self._start_failures)
        if not self._all_ready_once or self._start_failures >= MAX_START_FAILURES:
            self.broken = error
            self.accepting = False
            failure = ModelUnavailable(f"RVC workers cannot start: {error.message}")
            for job in list(self._queue):
                settled.append((job.future, failure))
                self._jobs.pop(job.job_id, None)
                unlink_segment(job.input_segment)
            self._queue.clear()

    def _maintain(self, now: float) -> None:
        # While draining for shutdown, replace workers only if queued jobs still need them.
        wanted = self.accepting or bool(self._queue)
        if wanted and not self.stopping and self.broken is None and now >= self._respawn_after:
            while sum(1 for w in self._workers if w.serving) < self.config.num_workers:
                try:
                    self._spawn()
                except OSError as exc:  # fork/exec refused (process or memory limits)
                    logger.error("could not spawn an RVC worker: %s", exc)
                    self._respawn_after = now + 1.0
                    break
        enough = self._ready_serving() >= self.config.num_workers
        for worker in self._workers:
            if worker.dead:
                continue
            if worker.retire_requested and (enough or self.stopping):
                worker.retiring = True
            job = worker.task if isinstance(worker.task, Job) else None
            if self.stopping and job is not None and job.abandoned and not worker.stop_sent:
                worker.stop_sent = True  # nobody wants its result: do not wait for it
                worker.terminate()
            elif self.stopping and not worker.ready and not worker.stop_sent:
                worker.stop_sent = True  # still importing torch: no need to wait for it to listen
                worker.terminate()
            elif (worker.retiring or self.stopping) and worker.task is None and not worker.stop_sent:
                worker.request_stop()
            if self._stop_deadline is not None and now >= self._stop_deadline:
                worker.kill()

    def _spawn(self) -> None:
        cfg = self.config
        spec = WorkerSpec(
            worker_id=next(self._worker_ids),
            hubert_path=cfg.hubert_path,
            rmvpe_path=cfg.rmvpe_path,
            voices=tuple(self._resident.values()),
            device=cfg.device,
            precision=cfg.precision,
            warmup=cfg.warmup,
            torch_threads=cfg.torch_threads,
            log_level=cfg.log_level,
        )
        self._workers.append(WorkerProcess(self._context, spec))
        logger.info("spawned worker %d (pid %s)", spec.worker_id, self._workers[-1].pid)

    def _expire(self, now: float, settled: Settled) -> None:
        for job in [job for job in self._queue if now >= job.deadline]:
            self._queue.remove(job)
            self._jobs.pop(job.job_id, None)
            unlink_segment(job.input_segment)
            self.counters["timed_out"] += 1
            settled.append(
                (
                    job.future,
                    JobTimeout(
                        f"job {job.job_id} waited {now - job.submitted_at:.1f} s in the queue: past its deadline"
                    ),
                )
            )
        for worker in self._workers:
            job = worker.task if isinstance(worker.task, Job) else None
            if job is not None and now >= job.deadline:
                if not job.abandoned:
                    job.abandoned = True
                    self.counters["timed_out"] += 1
                    settled.append(
                        (
                            job.future,
                            JobTimeout(
                                f"job {job.job_id} did not finish within its deadline "
                                f"({job.deadline - job.submitted_at:.1f} s)"
                            ),
                        )
                    )
                if worker.kill_at is None:
                    worker.kill_at = job.deadline + self.config.hung_grace_s
            if worker.kill_at is not None and now >= worker.kill_at:
                logger.warning(
                    "killing worker %d (pid %s): still on a job past its deadline",
                    worker.worker_id,
                    worker.pid,
                )
                self.counters["killed_hung"] += 1
                worker.kill_at = None
                worker.stop_sent = True  # a deliberate kill, not a crash; replaced at once
                worker.kill()
            overdue = now >= worker.spawned_at + self.config.start_timeout_s
            if not worker.ready and worker.init_error is None and overdue:
                logger.error(
                    "worker %d not ready after %.0f s; killing it",
                    worker.worker_id,
                    self.config.start_timeout_s,
                )
                worker.init_error = worker.init_error or {
                    "type": "ModelUnavailable",
                    "message": f"worker not ready after {self.config.start_timeout_s} s",
                }
                worker.kill()

    def _dispatch(self, settled: Settled) -> None:
        for worker in self._workers:
            if not worker.idle:
                continue
            op = self._next_op(worker, settled)
            if op is not None:
                worker.task = op
                worker.send(op.message())
                continue
            job = next((job for job in self._queue if job.voice in worker.voices), None)
            if job is None:
                continue
            self._queue.remove(job)
            job.state, job.dispatched_at, job.worker_id = "running", time.monotonic(), worker.worker_id
            worker.task = job
            if not worker.send(
                (
                    "convert",
                    job.job_id,
                    job.voice,
                    job.input_segment,
                    job.num_samples,
                    job.sample_rate,
                    job.params,
                    job.output_segment,
                )
            ):
                job.state, job.dispatched_at, worker.task = "queued", None, None
                self._queue.appendleft(job)  # never reached the worker: safe to run elsewhere
                worker.stop_sent = True
