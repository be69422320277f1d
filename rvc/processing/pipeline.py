"""TTSRVCPipeline: text -> sentences -> Spark-TTS -> RVC, overlapped and in order.

Spark-TTS (on Triton) and RVC (in worker processes) use different resources,
so they run at the same time: while sentence i converts, the next ones are
already being spoken (in one batch: ``SpeechWaves``), and two sentences may
convert at once on two workers. Results are still yielded strictly in
sentence order. Nothing here blocks the event loop: the TTS client is
asyncio-native and pool jobs are awaited as futures.

Long-text guards: every sentence gets a semantic-token budget from its length
(50 tokens per second of speech), so broken or random weights cannot generate
forever. A sentence that comes back at the budget or near-silent is suspect;
with ``retry_suspect`` it is spoken once more with another seed, and whatever
remains suspect is reported on the sentence, never silently cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rvc.errors import InvalidInput
from rvc.grpc.wire import Speaker, VoiceDesign
from rvc.processing.audio_join import crossfade_concat, rms
from rvc.processing.contract import SynthesisDefaults
from rvc.processing.speech_waves import SpeechWaves

__all__ = [
    "SentenceAudio",
    "SpeechBackend",
    "SynthesisRequest",
    "SynthesisResult",
    "TTSRVCPipeline",
    "VoiceBackend",
    "checked_lookahead",
    "token_budget",
]

logger = logging.getLogger(__name__)

TTS_SAMPLE_RATE = 16000
SAMPLES_PER_TOKEN = 320  # BiCodec: 50 semantic tokens per second at 16 kHz
NEAR_SILENT_RMS = 1e-3
EMPTY_STAND_IN_S = 0.3
MIN_CONVERT_SAMPLES = TTS_SAMPLE_RATE // 10  # RVC refuses input under 0.1 s (rvc.infer.converter)


class SpeechBackend(Protocol):
    """Spark-TTS as the pipeline sees it (rvc.grpc's asyncio client behind an adapter)."""

    async def speak(
        self, text: str, speaker: Speaker, settings: SynthesisDefaults, *, seed: int | None,
        max_new_tokens: int,
    ) -> np.ndarray:
        """(T,) float32 at 16 kHz for ``text`` spoken by ``speaker`` (a 16 kHz clip, stored tokens or a design)."""
        ...


@runtime_checkable
class DesigningSpeechBackend(Protocol):
    """A SpeechBackend that can also return the voice it invented (Triton's ``global_tokens`` output)."""

    async def design(
        self, text: str, design: VoiceDesign, settings: SynthesisDefaults, *, seed: int, max_new_tokens: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """((T,) float32 at 16 kHz, (32,) int32 global tokens) for ``text`` in a voice designed from ``design``."""
        ...


class VoiceBackend(Protocol):
    """RVC as the pipeline sees it (rvc.server's pool behind an adapter)."""

    async def convert(
        self, audio: np.ndarray, sample_rate: int, settings: SynthesisDefaults, *, voice: str | None,
        seed: int | None,
    ) -> tuple[np.ndarray, int]:
        """(audio (T,) float32, sample_rate) in the target voice."""
        ...


@dataclass(frozen=True)
class SynthesisRequest:
    sentences: tuple[str, ...]
    speaker: Speaker  # who speaks: a (T,) float32 clip at 16 kHz, stored speaker tokens or voice attributes
    settings: SynthesisDefaults
    rvc_model: str | None = None  # the .pth stem the pool converts with; None: the pool's default
    seed: int | None = None
    normalized_text: str | None = None  # the whole text as spoken, when it was normalised (returned to the client)

    def __post_init__(self) -> None:
        if not self.sentences:
            raise InvalidInput("text has nothing to speak: give at least one word", field="text")


@dataclass(frozen=True)
class SentenceAudio:
    index: int
    text: str
    audio: np.ndarray  # (T,) float32
    sample_rate: int
    tts_time: float
    rvc_time: float
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.audio.size / self.sample_rate


@dataclass(frozen=True)
class SynthesisResult:
    audio: np.ndarray
    sample_rate: int
    sentences: tuple[SentenceAudio, ...]
    total_time: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def tts_time(self) -> float:
        return sum(sentence.tts_time for sentence in self.sentences)

    @property
    def rvc_time(self) -> float:
        return sum(sentence.rvc_time for sentence in self.sentences)


def token_budget(sentence: str, *, max_tokens: int = 3000) -> int:
    """Semantic tokens a sentence may use: twice a slow speaking rate, plus 2 s of slack.

    About 15 Latin characters or 4 CJK characters are spoken per second; the
    budget allows 0.15 s per Latin and 0.5 s per CJK character.
    """
    cjk = sum(1 for char in sentence if "\u3000" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af")
    seconds = 2.0 + 0.15 * (len(sentence) - cjk) + 0.5 * cjk
    return min(max_tokens, int(seconds * TTS_SAMPLE_RATE / SAMPLES_PER_TOKEN))


def checked_lookahead(lookahead: int) -> int:
    """``lookahead`` (sentences in flight) for both pipelines: under one, no sentence would ever start."""
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    return lookahead


class TTSRVCPipeline:
    """Runs requests against one SpeechBackend and one VoiceBackend; stateless between requests.

    ``lookahead`` is how many sentences of one request may be in flight (spoken or converting)
    beyond those already yielded; 1 is the sequential pipeline, each sentence's TTS+RVC done
    before the next TTS starts.
    """

    def __init__(
        self, speech: SpeechBackend, voice: VoiceBackend, *, retry_suspect: bool = True, lookahead: int = 2
    ) -> None:
        self.speech = speech
        self.voice = voice
        self.retry_suspect = retry_suspect
        self.lookahead = checked_lookahead(lookahead)

    async def _speak(
        self, request: SynthesisRequest, index: int, kept: asyncio.Future[Speaker] | None = None
    ) -> tuple[np.ndarray, float, tuple[str, ...]]:
        """``kept``: a request that designs its voice keeps the one sentence 0 got for the others
        (else every sentence would be spoken by a different invented speaker)."""
        sentence = request.sentences[index]
        budget = token_budget(sentence)
        seed = None if request.seed is None else request.seed + index
        started = time.perf_counter()
        if kept is not None and index > 0:
            speaker = await kept
        else:
            speaker = request.speaker

        async def attempt(attempt_seed: int | None) -> np.ndarray:
            if kept is None or index > 0:
                return await self.speech.speak(sentence, speaker, request.settings, seed=attempt_seed,
                                               max_new_tokens=budget)
            assert isinstance(self.speech, DesigningSpeechBackend) and speaker.design is not None  # stream() checked
            drawn = attempt_seed if attempt_seed is not None else int(np.random.default_rng().integers(2**31))
            wav, global_tokens = await self.speech.design(sentence, speaker.design, request.settings, seed=drawn,
                                                          max_new_tokens=budget)
            kept_speaker[:] = [Speaker(global_tokens=tuple(int(token) for token in global_tokens))]
            return wav

        kept_speaker: list[Speaker] = []
        try:
            wav = await attempt(seed)
            problem = _suspect(wav, budget)
            if problem and self.retry_suspect:
                logger.info("sentence %d %s; retrying once with another seed", index, problem)
                wav = await attempt(None if seed is None else seed + 1_000_003)
                problem = _suspect(wav, budget)
        except BaseException as exc:
            if kept is not None and index == 0 and not kept.done():
                if isinstance(exc, asyncio.CancelledError):
                    kept.cancel()
                else:
                    kept.set_exception(exc)
            raise
        if kept is not None and index == 0 and not kept.done():
            kept.set_result(kept_speaker[0])
        warnings = (f"sentence {index}: {problem}",) if problem else ()
        if wav.size == 0:
            # Nothing to convert or play; a short pause keeps every sentence present in the output and streams.
            wav = np.zeros(int(EMPTY_STAND_IN_S * TTS_SAMPLE_RATE), dtype=np.float32)
            warnings = (f"sentence {index}: the TTS produced no speech; {EMPTY_STAND_IN_S:g} s of silence stands in",)
        return wav, time.perf_counter() - started, warnings

    async def _convert(self, request: SynthesisRequest, index: int, wav: np.ndarray) -> tuple[np.ndarray, int, float]:
        if request.settings.skip_rvc:
            return wav, TTS_SAMPLE_RATE, 0.0
        if wav.size < MIN_CONVERT_SAMPLES:
            # A sentence this short is a broken generation; trailing silence keeps the request alive.
            wav = np.pad(wav, (0, MIN_CONVERT_SAMPLES - wav.size))
        started = time.perf_counter()
        audio, rate = await self.voice.convert(
            wav, TTS_SAMPLE_RATE, request.settings, voice=request.rvc_model,
            seed=None if request.seed is None else request.seed + index,
        )
        return audio, rate, time.perf_counter() - started

    async def stream(self, request: SynthesisRequest, *, first: int = 0) -> AsyncGenerator[SentenceAudio, None]:
        """Yield each sentence's audio, from sentence ``first`` on, as soon as it and every earlier one are done.

        Up to ``lookahead`` sentences are in flight beyond those yielded. They are spoken in
        waves (``SpeechWaves``: the first sentence alone, then each wave together, so the TTS
        batches them) while earlier sentences convert. Until the first sentence is out it
        converts alone, so time to first audio stays one sentence's TTS+RVC. Cancelling the
        iteration (a client that went away) cancels the TTS and RVC work still running for
        this request. A resumed long-form job passes ``first``: indices, seeds and warnings stay
        those of the whole request, so the resumed sentences sound as they would have.
        """
        count = len(request.sentences)
        if not 0 <= first < count:
            raise ValueError(f"first must be within 0..{count - 1}, got {first}")
        kept: asyncio.Future[Speaker] | None = None
        # a resumed job (first > 0) has no sentence 0 to design with: each of its sentences designs anew
        if request.speaker.design is not None and count > 1 and first == 0 and isinstance(
            self.speech, DesigningSpeechBackend
        ):
            kept = asyncio.get_running_loop().create_future()
        waves: SpeechWaves[tuple[np.ndarray, float, tuple[str, ...]]] = SpeechWaves(
            lambda index: self._speak(request, index, kept)
        )
        first_out = asyncio.Event()
        pending: dict[int, asyncio.Task[SentenceAudio]] = {}

        async def one_sentence(index: int, spoken: asyncio.Future) -> SentenceAudio:
            wav, tts_time, warnings = await spoken
            if index > first:
                await first_out.wait()
            audio, rate, rvc_time = await self._convert(request, index, wav)
            return SentenceAudio(index, request.sentences[index], audio, rate, tts_time, rvc_time, warnings)

        scheduled = first

        def schedule_up_to(limit: int) -> None:
            nonlocal scheduled
            while scheduled < min(limit, count):
                pending[scheduled] = asyncio.ensure_future(one_sentence(scheduled, waves.submit(scheduled)))
                scheduled += 1

        try:
            schedule_up_to(first + self.lookahead)
            for index in range(first, count):
                result = await pending.pop(index)
                first_out.set()
                schedule_up_to(index + 1 + self.lookahead)
                yield result
        finally:
            for task in pending.values():
                task.cancel()
            await waves.close()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)

    async def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """The whole text as one waveform (sentences crossfaded)."""
        started = time.perf_counter()
        sentences = [sentence async for sentence in self.stream(request)]
        rate = sentences[0].sample_rate
        audio = crossfade_concat([sentence.audio for sentence in sentences], rate)
        warnings = tuple(warning for sentence in sentences for warning in sentence.warnings)
        return SynthesisResult(audio, rate, tuple(sentences), time.perf_counter() - started, warnings)


def _suspect(wav: np.ndarray, budget: int) -> str | None:
    if wav.size == 0:
        return "came back empty (no semantic tokens)"
    if wav.size >= budget * SAMPLES_PER_TOKEN:
        return f"hit its token budget ({budget} tokens, {budget * SAMPLES_PER_TOKEN / TTS_SAMPLE_RATE:.1f} s)"
    if rms(wav) < NEAR_SILENT_RMS:
        return "came back near-silent"
    return None
