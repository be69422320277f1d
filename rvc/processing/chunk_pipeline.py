"""ChunkPipeline: text -> sentences -> streamed Spark-TTS chunks -> RVC streams -> audio chunks.

The sentence pipeline (``pipeline.py``) hands out a sentence once it is spoken and converted
whole, so the first sound waits for a whole sentence of TTS and RVC. Here every TTS chunk
(``spark_tts_decoupled``: a small first chunk, steady ones after it) is fed to the sentence's
RVC stream the moment it arrives and whatever the stream converts goes out at once, so the
first sound waits for one TTS chunk and one RVC block.

One RVC stream per sentence: inside a sentence the stream keeps its context, pitch cache and
SOLA state, so steps join without a click; sentences convert side by side on different workers
(up to ``lookahead`` in flight), as the sentence pipeline's do, and meet with the same short
fade as there (``SENTENCE_FADE_MS`` out of one, into the next), where the speech is silent.

Prefetch: sentence i+1's TTS stream starts once sentence i's TTS has spoken ``prefetch_lead_s``
more audio than the time since its first chunk (or ended), and the two then decode side by side in
Triton, where the streaming model batches the decode steps of the streams that run at once
(``sparktts.serving.stream_batcher.StreamBatcher``). Waiting for TTS to end (the earlier rule) left the LLM
decoding one sentence at a time while sentence mode decodes them batched: chunk mode took 1.26-1.31x
sentence mode's total at concurrency 1. Starting at the first chunk instead slowed the sentence that
was playing enough for 24-48 ms stalls (c=1) and up to 0.4 s (c=2); a 1.5 s lead had none at c=1
(README: streaming figures).
Sentences come from an async iterable, so a WebSocket's text can keep arriving while the first
sentences speak. Closing the event generator (a client that went away) cancels the TTS request
in Triton and closes every RVC stream, in ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np

from rvc.errors import Busy, InvalidInput
from rvc.grpc.wire import Speaker
from rvc.infer.stream_config import StreamConfig
from rvc.processing.contract import SynthesisDefaults, Target
from rvc.processing.pipeline import (
    EMPTY_STAND_IN_S,
    TTS_SAMPLE_RATE,
    SynthesisRequest,
    checked_lookahead,
    token_budget,
)
from rvc.server import ConversionParams

__all__ = [
    "ChunkAudio",
    "ChunkJob",
    "ChunkPipeline",
    "ChunkStream",
    "ClosesOnExit",
    "PassThroughStream",
    "PassThroughVoice",
    "SentenceStart",
    "StreamingSpeechBackend",
    "VoiceStream",
    "VoiceStreamBackend",
    "sentences_of",
]

logger = logging.getLogger(__name__)

PREFETCH_LEAD_S = 1.5  # default of settings.stream_prefetch_lead_s (measured: see the module docstring)

# the sentence pipeline's crossfade at sentence joins (audio_join.crossfade_concat); here a fade out
# of one sentence and into the next, as the first is already sent when the second starts
SENTENCE_FADE_MS = 10.0


class ClosesOnExit(Protocol):
    """``async with`` that ends in ``aclose()``: the streams here and in ``backends`` subclass it.

    A stream left by an exception or a cancelled task must still free its worker, so every one
    closes the same way on exit; a subclass gives ``aclose`` (idempotent: it may run twice).
    """

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class VoiceStream(ClosesOnExit, Protocol):
    """One streamed RVC conversion: 16 kHz input in, converted audio at ``sample_rate`` out."""

    sample_rate: int

    async def feed(self, audio16k: np.ndarray) -> np.ndarray:
        """audio16k: (T,) float32 at 16 kHz -> the converted audio ready now ((T',) float32, maybe empty)."""
        ...

    async def flush(self) -> np.ndarray:
        """The rest of the conversion at the end of the input."""
        ...


@runtime_checkable
class VoiceStreamBackend(Protocol):
    """RVC that converts as audio arrives (the worker pool's stream jobs)."""

    async def open_stream(
        self, voice: str | None, params: ConversionParams, config: StreamConfig | None = None
    ) -> VoiceStream: ...


class StreamingSpeechBackend(Protocol):
    """Spark-TTS as a stream of 16 kHz chunks that concatenate to the sentence (no further cross-fade)."""

    def stream_speech(
        self, text: str, speaker: Speaker, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> AsyncGenerator[np.ndarray, None]: ...


class PassThroughStream(ClosesOnExit):
    """The "no conversion" stream (skip_rvc, rvc_model=none): TTS audio leaves unchanged, at 16 kHz."""

    sample_rate = TTS_SAMPLE_RATE

    async def feed(self, audio16k: np.ndarray) -> np.ndarray:
        return np.asarray(audio16k, dtype=np.float32).reshape(-1)

    async def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    async def aclose(self) -> None:
        return None


class PassThroughVoice:
    """A ``VoiceStreamBackend`` whose streams convert nothing: the product path of skip_rvc in chunk mode."""

    async def open_stream(
        self, voice: str | None, params: ConversionParams, config: StreamConfig | None = None
    ) -> VoiceStream:
        return PassThroughStream()


@dataclass(frozen=True)
class ChunkJob:
    """Everything a chunked request needs except its sentences (those may still be arriving)."""

    speaker: Speaker  # a (T,) float32 clip at 16 kHz, stored speaker tokens or voice attributes
    settings: SynthesisDefaults
    rvc_model: str | None = None
    seed: int | None = None
    started: float = 0.0  # time.perf_counter() when the request arrived; elapsed times count from it

    @classmethod
    def from_request(cls, request: SynthesisRequest, started: float) -> ChunkJob:
        return cls(request.speaker, request.settings, request.rvc_model, request.seed, started)


@dataclass(frozen=True)
class SentenceStart:
    """Sentence ``index`` was cut and its TTS has started."""

    index: int
    text: str


@dataclass(frozen=True)
class ChunkAudio:
    """One converted piece, in order; pieces concatenate to the whole output.

    audio: (T,) float32 at ``sample_rate`` (the voice's rate); sample_offset: where audio[0] sits in
    the output at that rate. sentence: the sentence whose TTS chunk was fed last (the RVC stream lags
    by its block, so a piece may start with the previous sentence's tail). tts_s: the wait for that
    TTS chunk; rvc_s: the conversion of this piece; elapsed_s: since the request arrived.
    """

    index: int
    sentence: int
    sample_offset: int
    audio: np.ndarray
    sample_rate: int
    tts_s: float
    rvc_s: float
    elapsed_s: float

    @property
    def samples(self) -> int:
        return int(self.audio.size)

    @property
    def duration_s(self) -> float:
        return self.audio.size / self.sample_rate


@dataclass(frozen=True)
class _Spoken:
    """A TTS chunk of sentence ``index``; ``audio`` None marks the sentence's end."""

    index: int
    audio: np.ndarray | None
    tts_s: float


class ChunkPipeline:
    """Runs chunked requests against one streaming TTS and one streaming RVC; stateless between requests.

    ``voice`` None: RVC streaming is not available in this build, so only requests that skip RVC
    can be chunked (the others are told to use sentence granularity). ``lookahead``: sentences a
    request may have in flight at once (spoken or converting, not yet sent), each on its own RVC
    stream; the service passes its worker count, as the sentence pipeline does.
    """

    def __init__(
        self, speech: StreamingSpeechBackend, voice: VoiceStreamBackend | None, *, config: StreamConfig | None = None,
        lookahead: int = 2, prefetch_lead_s: float = PREFETCH_LEAD_S,
    ) -> None:
        self.speech = speech
        self.voice = voice
        self.config = config
        self.lookahead = checked_lookahead(lookahead)
        if prefetch_lead_s < 0:
            raise ValueError(f"prefetch_lead_s must be >= 0, got {prefetch_lead_s}")
        self.prefetch_lead_s = prefetch_lead_s
        self.passthrough = PassThroughVoice()

    def check(self, settings: SynthesisDefaults) -> None:
        """InvalidInput (before any work) when this request cannot be chunked here."""
        if not settings.skip_rvc and self.voice is None:
            raise InvalidInput(
                "granularity=chunk through RVC needs the worker pool's RVC streams, which this service does not "
                "have: use granularity=sentence, or skip_rvc=true for the TTS voice unconverted",
                field="granularity",
            )

    async def open(self, job: ChunkJob) -> ChunkStream:
        """The request's first RVC stream opened (its rate is known from here on, and a full pool answers
        503 before any audio is promised); close it or read ``events``."""
        self.check(job.settings)
        backend: VoiceStreamBackend = self.passthrough if job.settings.skip_rvc or self.voice is None else self.voice
        params = ConversionParams(**job.settings.values_for(Target.RVC), seed=job.seed)

        async def open_stream() -> VoiceStream:
            return await backend.open_stream(job.rvc_model, params, self.config)

        return ChunkStream(
            self.speech, job, await open_stream(), open_stream, lookahead=self.lookahead,
            prefetch_lead_s=self.prefetch_lead_s,
        )

    async def stream(self, job: ChunkJob, sentences: AsyncIterable[str]) -> AsyncGenerator[ChunkAudio, None]:
        """The audio chunks of ``sentences`` in order (see ``ChunkStream.events``)."""
        chunk_stream = await self.open(job)
        async with chunk_stream, aclosing(chunk_stream.events(sentences)) as events:
            async for event in events:
                if isinstance(event, ChunkAudio):
                    yield event


@dataclass(frozen=True)
class _Piece:
    """Converted audio of one sentence, before it gets its place in the whole output."""

    audio: np.ndarray
    tts_s: float
    rvc_s: float


@dataclass
class _Sentence:
    """One sentence in flight: its TTS chunks in (None: its TTS ended), its converted pieces out (None: done)."""

    index: int
    text: str
    spoken: asyncio.Queue[_Spoken | None]
    converted: asyncio.Queue[_Piece | None]
    task: asyncio.Future[None] | None = None
    previous: asyncio.Future[None] | None = None  # the sentence before's conversion
    speech: asyncio.Future[None] | None = None  # its TTS
    sounding: asyncio.Event = field(default_factory=asyncio.Event)  # its TTS is prefetch_lead_s ahead, or ended


class ChunkStream(ClosesOnExit):
    """One request's RVC streams and the loops that feed them; an async context manager that closes.

    Each sentence converts on an RVC stream of its own, so while sentence i's tail converts on one
    worker, sentence i+1's first chunks convert on another, as the sentence pipeline converts
    sentences side by side: one stream for the whole text kept every request on one worker, and at
    concurrency 1 the other worker idled (total time 1.6x sentence mode, measured). A sentence starts
    and ends in silence, where a new stream's fade-in from silence joins as cleanly as sentence mode's
    whole-sentence conversions do; inside a sentence SOLA joins the steps.
    """

    def __init__(
        self, speech: StreamingSpeechBackend, job: ChunkJob, voice_stream: VoiceStream,
        open_stream: Callable[[], Awaitable[VoiceStream]] | None = None, *, lookahead: int = 1,
        prefetch_lead_s: float = PREFETCH_LEAD_S,
    ) -> None:
        self.speech = speech
        self.job = job
        self.prefetch_lead_s = prefetch_lead_s
        self.voice_stream = voice_stream  # opened by ChunkPipeline.open: the first sentence's
        self._open_stream = open_stream
        self.lookahead = lookahead if open_stream is not None else 1
        self.sample_rate = int(voice_stream.sample_rate)
        self._first_taken = False
        self._closed = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.voice_stream.aclose()

    async def _next_stream(self, previous: asyncio.Future[None] | None) -> VoiceStream:
        """The first sentence takes the stream ``open`` made; the others open their own. When the pool has
        no stream to spare (RVC_STREAM_MAX) for a later sentence, it waits for the sentence before to
        free its stream and asks once more, so a request that started is not failed by its own lookahead."""
        if not self._first_taken:
            self._first_taken = True
            return self.voice_stream
        if self._open_stream is None:
            raise RuntimeError("this ChunkStream was given one stream and no way to open more")
        try:
            stream = await self._open_stream()
        except Busy:
            if previous is None:
                raise
            await asyncio.wait([previous])
            stream = await self._open_stream()
        if int(stream.sample_rate) != self.sample_rate:
            await stream.aclose()
            raise RuntimeError(f"an RVC stream of this request answered {stream.sample_rate} Hz, not {self.sample_rate}")
        return stream

    async def _speak_all(
        self, sentences: AsyncIterable[str], order: asyncio.Queue[_Sentence | None], slots: asyncio.Semaphore
    ) -> None:
        """Start each sentence's TTS into its own conversion: the next starts once this one's TTS is
        ``prefetch_lead_s`` ahead of real time (or ended) and a slot is free (at most ``lookahead``
        sentences in flight)."""
        index = 0
        previous: asyncio.Future[None] | None = None
        async for text in sentences:
            await slots.acquire()
            sentence = _Sentence(index, text, asyncio.Queue(), asyncio.Queue(), previous=previous)
            sentence.task = previous = asyncio.ensure_future(self._convert(sentence))
            sentence.speech = asyncio.ensure_future(self._speak(sentence))
            await order.put(sentence)
            await sentence.sounding.wait()  # its TTS is prefetch_lead_s ahead of playback, or ended in any way
            if sentence.speech.done() and not sentence.speech.cancelled() and sentence.speech.exception():
                break  # the reader raises it from this sentence's watch, after its audio so far
            index += 1
        await order.put(None)

    async def _speak(self, sentence: _Sentence) -> None:
        try:
            await self._speak_chunks(sentence)
        finally:
            sentence.sounding.set()
            sentence.spoken.put_nowait(None)  # the conversion flushes what it has, even when the TTS failed

    async def _speak_chunks(self, sentence: _Sentence) -> None:
        seed = None if self.job.seed is None else self.job.seed + sentence.index
        chunks = self.speech.stream_speech(
            sentence.text, self.job.speaker, self.job.settings, seed=seed, max_new_tokens=token_budget(sentence.text)
        )
        waited = time.perf_counter()
        samples = 0
        first_at: float | None = None
        try:
            async for audio in chunks:
                now = time.perf_counter()
                if audio.size:
                    samples += audio.size
                    sentence.spoken.put_nowait(_Spoken(sentence.index, audio, now - waited))
                    first_at = now if first_at is None else first_at
                    if samples / TTS_SAMPLE_RATE - (now - first_at) >= self.prefetch_lead_s:
                        sentence.sounding.set()
                waited = now
        finally:
            await chunks.aclose()  # cancels the request in Triton when we stop early
        if samples == 0:  # as in sentence mode: a short pause keeps every sentence present in the output
            logger.info("sentence %d: the TTS produced no speech; %g s of silence stands in", sentence.index, EMPTY_STAND_IN_S)
            silence = np.zeros(int(EMPTY_STAND_IN_S * TTS_SAMPLE_RATE), dtype=np.float32)
            sentence.spoken.put_nowait(_Spoken(sentence.index, silence, time.perf_counter() - waited))

    async def _convert(self, sentence: _Sentence) -> None:
        """Feed the sentence's TTS chunks to its RVC stream as they come (all that queued up at once), then flush."""
        stream = await self._next_stream(sentence.previous)
        fade = int(self.sample_rate * SENTENCE_FADE_MS / 1000)
        first = True
        try:
            ended = False
            while not ended:
                items = [await sentence.spoken.get()]
                while not sentence.spoken.empty():  # the TTS ran ahead: one feed, one round trip, for all of it
                    items.append(sentence.spoken.get_nowait())
                ended = items[-1] is None
                chunks = [item for item in items if item is not None and item.audio is not None]
                if not chunks:
                    continue
                audio = np.concatenate([chunk.audio for chunk in chunks if chunk.audio is not None])
                started = time.perf_counter()
                converted = await stream.feed(audio)
                if converted.size:
                    if first:
                        converted, first = _faded(converted, fade, fade_in=True), False
                    sentence.converted.put_nowait(_Piece(converted, chunks[-1].tts_s, time.perf_counter() - started))
            started = time.perf_counter()
            rest = await stream.flush()
            if first:
                rest = _faded(rest, fade, fade_in=True)
            rest = _faded(rest, fade, fade_in=False)
            if rest.size:
                sentence.converted.put_nowait(_Piece(rest, 0.0, time.perf_counter() - started))
            sentence.converted.put_nowait(None)
        finally:
            await stream.aclose()

    async def events(self, sentences: AsyncIterable[str]) -> AsyncGenerator[ChunkAudio | SentenceStart, None]:
        """Per sentence in order: ``SentenceStart``, then ``ChunkAudio`` as each of its pieces leaves RVC.

        Closing this generator early cancels the TTS still running and closes every RVC stream.
        """
        order: asyncio.Queue[_Sentence | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self.lookahead)
        speaker = asyncio.ensure_future(self._speak_all(sentences, order, slots))
        in_flight: list[_Sentence] = []
        index = offset = 0
        try:
            while (sentence := await _next(order, [speaker])) is not None:
                in_flight.append(sentence)
                assert sentence.task is not None and sentence.speech is not None
                yield SentenceStart(sentence.index, sentence.text)
                while (piece := await _next(sentence.converted, [sentence.task, sentence.speech, speaker])) is not None:
                    yield self._chunk(index, sentence.index, offset, piece)
                    index, offset = index + 1, offset + piece.audio.size
                await sentence.speech  # its TTS's failure, if any, ends the request here, in order
                await sentence.task  # its stream is closed
                in_flight.remove(sentence)
                slots.release()
            await speaker
        finally:
            started = list(in_flight)
            while not order.empty():  # started, never read: the generator was closed
                if (queued := order.get_nowait()) is not None:
                    started.append(queued)
            pending: list[asyncio.Future[None]] = [speaker]
            for sentence in started:
                pending.extend(task for task in (sentence.speech, sentence.task) if task is not None)
            for task in pending:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.aclose()

    def _chunk(self, index: int, sentence: int, offset: int, piece: _Piece) -> ChunkAudio:
        samples = np.asarray(piece.audio, dtype=np.float32).reshape(-1)
        elapsed = time.perf_counter() - self.job.started
        return ChunkAudio(index, sentence, offset, samples, self.sample_rate, piece.tts_s, piece.rvc_s, elapsed)


def _faded(audio: np.ndarray, length: int, *, fade_in: bool) -> np.ndarray:
    """A linear fade from (fade_in) or to silence over the first or last ``length`` samples (fewer when shorter)."""
    length = min(length, audio.size)
    if length == 0:
        return audio
    ramp = np.linspace(0.0, 1.0, length, endpoint=False, dtype=np.float32)
    audio = np.array(audio, dtype=np.float32)
    if fade_in:
        audio[:length] *= ramp
    else:
        audio[-length:] *= ramp[::-1]
    return audio


_Item = TypeVar("_Item")


async def _next(queue: asyncio.Queue[_Item], watched: list[asyncio.Future[None]]) -> _Item:
    """The queue's next item; a watched task's failure (a TTS error, a stream's) is raised here instead.

    A watched task that ended well is no reason to stop waiting: its items may still be queued.
    """
    while True:
        if not queue.empty():
            return queue.get_nowait()
        for task in watched:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        getter = asyncio.ensure_future(queue.get())
        waiters: set[asyncio.Future[Any]] = {getter, *(task for task in watched if not task.done())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()


async def sentences_of(request: SynthesisRequest) -> AsyncIterator[str]:
    """A finished text's sentences as the async source ``ChunkStream.events`` reads."""
    for sentence in request.sentences:
        yield sentence
