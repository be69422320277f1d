"""JobRunner: runs long-form jobs in the background of a gateway, a bounded number at a time.

Interactive requests come first: each job speaks one sentence at a time (a
pipeline with lookahead 1, so a job holds at most one TTS call and one RVC
worker), and a gateway runs at most JOB_CONCURRENCY jobs. Jobs live in the
database (``rvc.storage.jobs``): the runner claims the oldest queued one,
renews its lease while it runs, stores each finished sentence with the job's
progress in one transaction, and on shutdown hands its jobs back to the queue,
so the next gateway to claim one resumes after its last stored sentence. A
gateway that dies without handing back loses its jobs when their leases run
out. An idle runner costs one small read query per poll, off the event loop.

A backend that is down (a 503: Triton, the workers, the database) requeues
the job with a growing delay; after ``MAX_ATTEMPTS`` it fails. Any other
error fails the job with its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from rvc.errors import JobCancelled, StorageUnavailable, VoiceError
from rvc.processing.formats import OutputSpec
from rvc.processing.jobs import JobRequest, encode_sentence, new_job
from rvc.processing.pipeline import SynthesisRequest, TTSRVCPipeline
from rvc.storage.clips import clip_from_bytes
from rvc.storage.jobs import FinishedSentence, JobRecord, JobStore, JobWork

__all__ = ["MAX_ATTEMPTS", "JobRunner"]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # with the backoff below: about 10 minutes of a backend being down
POLL_S = 1.0  # how soon a job submitted to another gateway (or requeued) is noticed


def retry_delay_s(attempts: int) -> float:
    return min(120.0, 5.0 * 2**attempts)


class _NoLongerOurs(Exception):
    """The store refused a sentence: the job was cancelled or another gateway took it over."""


class JobRunner:
    def __init__(
        self, store: JobStore, pipeline: TTSRVCPipeline, *, concurrency: int, retention_s: float,
        ensure_voice: Callable[[str], Awaitable[None]], ready: Callable[[], Awaitable[bool]],
        hold: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        """``ensure_voice``: the RVC backend's (a job's model loaded on the workers first); ``ready``: whether
        TTS and RVC serve, asked before a claim, so a gateway still starting leaves jobs to the others;
        ``hold``: held while a job runs (idle unload's: it wakes unloaded models and keeps them loaded)."""
        self.store = store
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.retention_s = retention_s
        self._ensure_voice = ensure_voice
        self._ready = ready
        self._hold = hold
        self.owner = f"gateway-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._next_purge = 0.0

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._claim_loop()), asyncio.ensure_future(self._renew_loop())]

    async def submit(self, request: SynthesisRequest, output: OutputSpec) -> JobRecord:
        """Store a checked request as a queued job and look for work now rather than at the next poll."""
        record = await asyncio.to_thread(self.store.create, new_job(request, output))
        self._wake.set()
        return record

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel in the database, and stop the job's work at once if it runs here (elsewhere its
        gateway sees the cancellation at its next sentence or lease renewal)."""
        record = await asyncio.to_thread(self.store.cancel, job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        return record

    async def close(self) -> None:
        """Stop every loop and job; jobs still running here go back to the queue for the next gateway."""
        for loop in self._loops:
            loop.cancel()
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*self._loops, *tasks.values(), return_exceptions=True)
        for job_id in tasks:
            try:
                if await asyncio.to_thread(self.store.release, job_id, self.owner):
                    logger.info("job %s handed back to the queue", job_id)
            except StorageUnavailable as exc:
                logger.warning("job %s not handed back (%s); its lease runs out instead", job_id, exc.message)

    async def _claim_loop(self) -> None:
        while True:
            try:
                await self._purge_if_due()
                while len(self._tasks) < self.concurrency and await asyncio.to_thread(self.store.claimable):
                    if not await self._ready():
                        break
                    work = await asyncio.to_thread(self.store.claim, self.owner)
                    if work is None:
                        break
                    self._start(work)
            except StorageUnavailable as exc:
                logger.warning("jobs: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()

    async def _purge_if_due(self) -> None:
        now = time.time()
        if now < self._next_purge:
            return
        self._next_purge = now + min(60.0, self.retention_s / 2)
        cutoff = now - self.retention_s
        if await asyncio.to_thread(self.store.has_expired, cutoff):
            purged = await asyncio.to_thread(self.store.purge, cutoff)
            logger.info("jobs: removed %d past their retention", purged)

    def _start(self, work: JobWork) -> None:
        job_id = work.record.id
        task = asyncio.ensure_future(self._run(work))
        self._tasks[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job_id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.store.lease_s / 3)
            for job_id, task in list(self._tasks.items()):
                try:
                    held = await asyncio.to_thread(self.store.renew, job_id, self.owner)
                except StorageUnavailable as exc:
                    logger.warning("job %s: lease not renewed: %s", job_id, exc.message)
                    continue
                if not held:
                    logger.info("job %s was cancelled or taken over: stopping it here", job_id)
                    task.cancel()

    async def _run(self, work: JobWork) -> None:
        record = work.record
        job_id = record.id
        request = JobRequest.model_validate_json(record.request)
        first = record.sentences_done
        logger.info("job %s: %s at sentence %d of %d", job_id, "resuming" if first else "starting", first,
                    record.sentences_total)
        try:
            if first >= record.sentences_total:
                await asyncio.to_thread(self.store.finish, job_id, self.owner)
                return
            hold = self._hold() if self._hold is not None else contextlib.nullcontext()
            async with hold:
                await self._speak(work, request, first)
            if await asyncio.to_thread(self.store.finish, job_id, self.owner):
                logger.info("job %s done", job_id)
        except asyncio.CancelledError:
            raise
        except JobCancelled:
            await self._quietly(self.store.release, job_id, self.owner)
        except VoiceError as exc:
            await self._failed(work, exc)
        except _NoLongerOurs:
            logger.info("job %s is no longer ours (cancelled or taken over): stopping", job_id)
        except Exception:
            logger.exception("job %s failed on a bug", job_id)
            await self._quietly(self.store.fail, job_id, self.owner, "internal error; see the server log")

    async def _speak(self, work: JobWork, request: JobRequest, first: int) -> None:
        """Speak and store the job's sentences from ``first`` on; _NoLongerOurs when the store refuses one."""
        job_id = work.record.id
        if request.rvc_model is not None and not request.settings.skip_rvc:
            await self._ensure_voice(request.rvc_model)
        synthesis = request.synthesis(clip_from_bytes(work.reference))
        started = time.perf_counter()
        async with contextlib.aclosing(self.pipeline.stream(synthesis, first=first)) as sentences:
            async for sentence in sentences:
                now = time.perf_counter()
                audio = await asyncio.to_thread(encode_sentence, sentence.audio, sentence.sample_rate)
                finished = FinishedSentence(
                    position=sentence.index, sample_rate=sentence.sample_rate, samples=sentence.audio.size,
                    audio=audio, chars=len(sentence.text), work_s=now - started, warnings=sentence.warnings,
                )
                started = now
                if not await asyncio.to_thread(self.store.add_sentence, job_id, self.owner, finished):
                    raise _NoLongerOurs(job_id)

    async def _failed(self, work: JobWork, exc: VoiceError) -> None:
        job_id, attempts = work.record.id, work.record.attempts
        if exc.status_code == 503 and attempts + 1 < MAX_ATTEMPTS:
            delay = retry_delay_s(attempts)
            logger.warning("job %s: %s; retrying in %g s", job_id, exc.message, delay)
            await self._quietly(
                self.store.requeue, job_id, self.owner, delay_s=delay,
                warning=f"attempt {attempts + 1}: {exc.message}; retried after {delay:g} s",
            )
            return
        logger.warning("job %s failed: %s", job_id, exc.message)
        await self._quietly(self.store.fail, job_id, self.owner, exc.message)

    @staticmethod
    async def _quietly(action: Callable[..., object], *args: object, **kwargs: object) -> None:
        """A state change after a failure; the database may be what failed, so its error is only logged."""
        try:
            await asyncio.to_thread(action, *args, **kwargs)
        except StorageUnavailable as exc:
            logger.warning("job state not recorded (%s); the lease runs out and the job is retried", exc.message)
