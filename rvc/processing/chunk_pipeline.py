"""ChunkPipeline: text -> sentences -> streamed Spark-TTS chunks -> one RVC stream -> audio chunks.

The sentence pipeline (``pipeline.py``) hands out a sentence once it is spoken and converted
whole, so the first sound waits for a whole sentence of TTS and RVC. Here every TTS chunk
(``spark_tts_decoupled``: a small first chunk, steady ones after it) is fed to the request's
RVC stream the moment it arrives and whatever the stream converts goes out at once, so the
first sound waits for one TTS chunk and one RVC block.

One RVC stream per request, never one per sentence: the stream keeps its context, pitch cache
and SOLA state across sentence joins, so the audio is continuous where sentences meet (a fresh
stream would drop its start-up lag and click at every join).

Prefetch: sentence i+1's TTS stream starts when sentence i's TTS is done, while i's tail still
converts, never earlier, so the first sentence's chunks do not share Triton with the next one's.
Sentences come from an async iterable, so a WebSocket's text can keep arriving while the first
sentences speak. Closing the event generator (a client that went away) cancels the TTS request
in Triton and closes the RVC stream, in ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from rvc.errors import InvalidInput
from rvc.grpc.wire import Speaker
from rvc.infer.stream_config import StreamConfig
from rvc.processing.contract import SynthesisDefaults, Target
from rvc.processing.pipeline import EMPTY_STAND_IN_S, TTS_SAMPLE_RATE, SynthesisRequest, token_budget
from rvc.server import ConversionParams

__all__ = [
    "ChunkAudio",
    "ChunkJob",
    "ChunkPipeline",
    "ChunkStream",
    "PassThroughStream",
    "PassThroughVoice",
    "SentenceStart",
    "StreamingSpeechBackend",
    "VoiceStream",
    "VoiceStreamBackend",
    "sentences_of",
]

logger = logging.getLogger(__name__)


class VoiceStream(Protocol):
    """One streamed RVC conversion: 16 kHz input in, converted audio at ``sample_rate`` out."""

    sample_rate: int

    async def feed(self, audio16k: np.ndarray) -> np.ndarray:
        """audio16k: (T,) float32 at 16 kHz -> the converted audio ready now ((T',) float32, maybe empty)."""
        ...

    async def flush(self) -> np.ndarray:
        """The rest of the conversion at the end of the input."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


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


class PassThroughStream:
    """The "no conversion" stream (skip_rvc, rvc_model=none): TTS audio leaves unchanged, at 16 kHz."""

    sample_rate = TTS_SAMPLE_RATE

    async def feed(self, audio16k: np.ndarray) -> np.ndarray:
        return np.asarray(audio16k, dtype=np.float32).reshape(-1)

    async def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


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
    can be chunked (the others are told to use sentence granularity).
    """

    def __init__(
        self, speech: StreamingSpeechBackend, voice: VoiceStreamBackend | None, *, config: StreamConfig | None = None
    ) -> None:
        self.speech = speech
        self.voice = voice
        self.config = config
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
        """The request's RVC stream opened (its rate is known from here on); close it or read ``events``."""
        self.check(job.settings)
        backend: VoiceStreamBackend = self.passthrough if job.settings.skip_rvc or self.voice is None else self.voice
        params = ConversionParams(**job.settings.values_for(Target.RVC), seed=job.seed)
        stream = await backend.open_stream(job.rvc_model, params, self.config)
        return ChunkStream(self.speech, job, stream)

    async def stream(self, job: ChunkJob, sentences: AsyncIterable[str]) -> AsyncGenerator[ChunkAudio, None]:
        """The audio chunks of ``sentences`` in order (see ``ChunkStream.events``)."""
        chunk_stream = await self.open(job)
        async with chunk_stream, aclosing(chunk_stream.events(sentences)) as events:
            async for event in events:
                if isinstance(event, ChunkAudio):
                    yield event


class ChunkStream:
    """One request's opened RVC stream and the loop that feeds it; an async context manager that closes."""

    def __init__(self, speech: StreamingSpeechBackend, job: ChunkJob, voice_stream: VoiceStream) -> None:
        self.speech = speech
        self.job = job
        self.voice_stream = voice_stream
        self.sample_rate = int(voice_stream.sample_rate)
        self._closed = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.voice_stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _speak_all(self, sentences: AsyncIterable[str], spoken: asyncio.Queue[_Spoken | SentenceStart | None]) -> None:
        """Speak the sentences one after another into ``spoken``; the next starts when this one's TTS ends."""
        index = 0
        async for text in sentences:
            await spoken.put(SentenceStart(index, text))
            seed = None if self.job.seed is None else self.job.seed + index
            chunks = self.speech.stream_speech(
                text, self.job.speaker, self.job.settings, seed=seed, max_new_tokens=token_budget(text)
            )
            waited = time.perf_counter()
            samples = 0
            try:
                async for audio in chunks:
                    now = time.perf_counter()
                    if audio.size:
                        samples += audio.size
                        await spoken.put(_Spoken(index, audio, now - waited))
                    waited = now
            finally:
                await chunks.aclose()  # cancels the request in Triton when we stop early
            if samples == 0:  # as in sentence mode: a short pause keeps every sentence present in the output
                logger.info("sentence %d: the TTS produced no speech; %g s of silence stands in", index, EMPTY_STAND_IN_S)
                silence = np.zeros(int(EMPTY_STAND_IN_S * TTS_SAMPLE_RATE), dtype=np.float32)
                await spoken.put(_Spoken(index, silence, time.perf_counter() - waited))
            await spoken.put(_Spoken(index, None, 0.0))
            index += 1
        await spoken.put(None)

    async def events(self, sentences: AsyncIterable[str]) -> AsyncGenerator[ChunkAudio | SentenceStart, None]:
        """``SentenceStart`` as each sentence begins, ``ChunkAudio`` as each piece leaves RVC, in order.

        Closing this generator early cancels the TTS still running and closes the RVC stream.
        """
        spoken: asyncio.Queue[_Spoken | SentenceStart | None] = asyncio.Queue()
        speaker = asyncio.ensure_future(self._speak_all(sentences, spoken))
        index = offset = 0
        sentence = 0
        try:
            while True:
                item = await _next(spoken, speaker)
                if item is None:
                    break
                if isinstance(item, SentenceStart):
                    sentence = item.index
                    yield item
                    continue
                if item.audio is None:
                    continue
                started = time.perf_counter()
                converted = await self.voice_stream.feed(item.audio)
                if converted.size:
                    yield self._chunk(index, sentence, offset, converted, item.tts_s, time.perf_counter() - started)
                    index, offset = index + 1, offset + converted.size
            started = time.perf_counter()
            rest = await self.voice_stream.flush()
            if rest.size:
                yield self._chunk(index, sentence, offset, rest, 0.0, time.perf_counter() - started)
        finally:
            if not speaker.done():
                speaker.cancel()
            await asyncio.gather(speaker, return_exceptions=True)
            await self.aclose()

    def _chunk(self, index: int, sentence: int, offset: int, audio: np.ndarray, tts_s: float, rvc_s: float) -> ChunkAudio:
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        elapsed = time.perf_counter() - self.job.started
        return ChunkAudio(index, sentence, offset, samples, self.sample_rate, tts_s, rvc_s, elapsed)


async def _next(spoken: asyncio.Queue[_Spoken | SentenceStart | None], speaker: asyncio.Future[None]) -> _Spoken | SentenceStart | None:
    """The next spoken item; the speaker's failure (a TTS error, a bad source) is raised here."""
    if not spoken.empty():
        return spoken.get_nowait()
    getter = asyncio.ensure_future(spoken.get())
    try:
        waiters: set[asyncio.Future[Any]] = {getter, speaker}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    speaker.result()  # raises the speaker's error
    return spoken.get_nowait() if not spoken.empty() else None


async def sentences_of(request: SynthesisRequest) -> AsyncIterator[str]:
    """A finished text's sentences as the async source ``ChunkStream.events`` reads."""
    for sentence in request.sentences:
        yield sentence
