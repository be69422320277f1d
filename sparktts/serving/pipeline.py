"""The ``spark_tts`` flow (tokenize -> prompt -> LLM -> vocode) with injected parts, and the
speaker-token cache in front of the tokenizer.

Three ways to say who speaks (``SynthesisRequest``): a reference clip (tokenized, through the
cache), stored speaker tokens (no tokenizer at all), or voice attributes (controllable TTS: the LLM
writes 32 global tokens before the speech, and they come back in ``Speech.global_tokens``, so a
client can keep the voice it got and speak with it again through stored tokens).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from sparktts import prompts
from sparktts.generation import GenerationParams
from sparktts.serving.codec import Tokens
from sparktts.serving.inputs import SynthesisRequest
from sparktts.streaming import ChunkSchedule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speech:
    """One request's result: waveform (T,) float32 at 16 kHz and the (32,) int32 global tokens it was
    spoken with (the reference's, the stored ones, or those the LLM designed)."""

    waveform: np.ndarray
    global_tokens: np.ndarray


@dataclass(frozen=True)
class CacheStats:
    """One moment of a ``SpeakerCache``: what it holds and how lookups went since it was created."""

    entries: int
    bytes: int  # the token arrays held (keys and bookkeeping not counted)
    hits: int
    misses: int
    evictions: int


class SpeakerCache:
    """Bounded LRU of reference clip -> (global, semantic) tokens, keyed by a hash of the audio.

    Voice services send the same reference clip again and again; a hit skips the audio tokenizer
    (wav2vec2 + BiCodec encoder, the second-largest cost after the LLM). Thread-safe. capacity 0
    disables it (every lookup misses and nothing is stored). ``on_change`` is called after every
    lookup and store, outside the lock (the Triton adapter wakes its metrics publisher with it), so
    it must be cheap and must not call back into the cache's lock holders.
    """

    def __init__(self, capacity: int, on_change: Callable[[], None] | None = None) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._bytes = 0
        self._entries: OrderedDict[str, Tokens] = OrderedDict()
        self._lock = threading.Lock()
        self._on_change = on_change

    @staticmethod
    def key(wav: np.ndarray, sample_rate: int) -> str:
        """Content hash of the clip as sent (float32 samples + sample rate)."""
        digest = hashlib.sha256(np.ascontiguousarray(wav, dtype=np.float32).tobytes())
        digest.update(int(sample_rate).to_bytes(4, "little"))
        return digest.hexdigest()

    def get(self, key: str) -> Tokens | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self._entries.move_to_end(key)
                self.hits += 1
        self._changed()
        return found

    def put(self, key: str, tokens: Tokens) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._bytes -= _nbytes(replaced)
            self._entries[key] = tokens
            self._bytes += _nbytes(tokens)
            while len(self._entries) > self.capacity:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= _nbytes(evicted)
                self.evictions += 1
        self._changed()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self.hits, self.misses, self.evictions)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def __len__(self) -> int:
        return len(self._entries)


def _nbytes(tokens: Tokens) -> int:
    return int(tokens[0].nbytes + tokens[1].nbytes)


class SpeechPipeline:
    """The ``spark_tts`` flow with its parts injected: tokenize -> prompt -> LLM -> vocode.

    In Triton, ``tokenize`` and ``vocode`` are BLS calls to the ``audio_tokenizer`` and ``vocoder``
    models and the LLM runs in-process (or as BLS calls to ``tensorrt_llm``); in tests they are the
    in-process BiCodec and SparkLM. Callables:

    tokenize(wav (T,) float32, sample_rate) -> (global (32,), semantic (T_sem,)) int arrays
    generate(prompts, params) -> generated ids per prompt (stop id included)
    stream(prompt, params) -> iterator of generated ids
    semantic_ids(generated ids) -> semantic codes (decode + regex, the official parse)
    semantic_index(one id) -> its semantic code or None
    vocode(global (32,), semantic (T,)) -> (320 * T,) float32 at 16 kHz
    global_ids / global_index: as the semantic ones, for global codes (controllable TTS; without them
    a request with voice attributes is refused)
    """

    def __init__(
        self,
        *,
        tokenize: Callable[[np.ndarray, int], Tokens],
        generate: Callable[[list[str], list[GenerationParams]], list[list[int]]],
        stream: Callable[[str, GenerationParams], Iterator[int]],
        semantic_ids: Callable[[Sequence[int]], list[int]],
        semantic_index: Callable[[int], int | None],
        vocode: Callable[[np.ndarray, np.ndarray], np.ndarray],
        cache: SpeakerCache | None = None,
        schedule: ChunkSchedule | None = None,
        workers: int = 4,
        global_ids: Callable[[Sequence[int]], list[int]] | None = None,
        global_index: Callable[[int], int | None] | None = None,
    ) -> None:
        self._global_ids, self._global_index = global_ids, global_index
        self._tokenize, self._generate, self._stream = tokenize, generate, stream
        self._semantic_ids, self._semantic_index, self._vocode = semantic_ids, semantic_index, vocode
        self.cache = cache if cache is not None else SpeakerCache(0)
        self.schedule = schedule if schedule is not None else ChunkSchedule()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="spark-pipeline")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -------------------------------------------------------------- steps
    def speaker_tokens(self, request: SynthesisRequest) -> Tokens | None:
        """The speaker's tokens: the stored ones, else the reference's (from the cache when this clip
        was seen before); None for controllable TTS, whose LLM writes them."""
        if request.style is not None:
            if self._global_ids is None or self._global_index is None:
                raise ValueError("this model's LLM backend cannot design voices: send a reference clip")
            return None
        if request.global_tokens is not None:
            semantic = request.semantic_tokens if request.semantic_tokens is not None else np.zeros(0, np.int32)
            return request.global_tokens, semantic
        if request.reference_wav is None:
            raise ValueError("reference_wav and reference_wav_len are required")
        key = SpeakerCache.key(request.reference_wav, request.reference_sample_rate)
        found = self.cache.get(key)
        if found is not None:
            logger.info("[%s] speaker cache hit (%d hits, %d misses)", request.request_id, self.cache.hits, self.cache.misses)
            return found
        global_tokens, semantic_tokens = self._tokenize(request.reference_wav, request.reference_sample_rate)
        tokens = (np.asarray(global_tokens, np.int32).reshape(-1), np.asarray(semantic_tokens, np.int32).reshape(-1))
        self.cache.put(key, tokens)
        return tokens

    @staticmethod
    def prompt(request: SynthesisRequest, tokens: Tokens | None) -> str:
        if request.style is not None:
            style = request.style
            return prompts.build_control_prompt(request.target_text, style.gender, style.pitch, style.speed_level)
        if tokens is None:
            raise ValueError("a clone prompt needs the speaker's tokens")
        global_tokens, semantic_tokens = tokens
        return prompts.build_clone_prompt(
            request.target_text, global_tokens, semantic_tokens if request.reference_text is not None else None,
            request.reference_text,
        )

    @staticmethod
    def generation(request: SynthesisRequest) -> GenerationParams:
        """The request's sampling, in controllable TTS's grammar when it designs a voice."""
        return replace(request.generation, control_grammar=True) if request.control else request.generation

    def designed_globals(self, generated: Sequence[int]) -> np.ndarray:
        """The 32 global codes a control-mode generation wrote, (32,) int32; RuntimeError otherwise
        (an LLM without the grammar, such as TensorRT-LLM, may write another count)."""
        if self._global_ids is None:
            raise ValueError("this model's LLM backend cannot design voices: send a reference clip")
        return _designed(self._global_ids(generated))

    def vocode(self, global_tokens: np.ndarray, semantic: Sequence[int]) -> np.ndarray:
        if not semantic:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._vocode(global_tokens, np.asarray(semantic, dtype=np.int32)), np.float32).reshape(-1)

    # -------------------------------------------------------------- offline
    def synthesize_batch(self, requests: Sequence[SynthesisRequest]) -> list[Speech | Exception]:
        """Each request's Speech or the exception it failed with, in order.

        Tokenizer and vocoder calls of the batch run concurrently (so Triton can batch them); the LLM
        decodes every prompt of the batch together.
        """
        results: list[Speech | Exception | None] = [None] * len(requests)
        tokens: dict[int, Tokens | None] = {}
        prompts_: dict[int, str] = {}
        for index, outcome in enumerate(self._pool.map(_capture(self.speaker_tokens), requests)):
            if isinstance(outcome, Exception):
                results[index] = outcome
                continue
            try:
                prompts_[index] = self.prompt(requests[index], outcome)
                tokens[index] = outcome
            except ValueError as exc:
                results[index] = exc
        order = sorted(prompts_)
        if order:
            try:
                generated = self._generate([prompts_[i] for i in order], [self.generation(requests[i]) for i in order])
            except Exception as exc:  # noqa: BLE001 - the LLM failure belongs to every request of the batch
                generated = [exc] * len(order)  # type: ignore[list-item]
            jobs = []
            for index, ids in zip(order, generated, strict=True):
                if isinstance(ids, Exception):
                    results[index] = ids
                    continue
                speaker = tokens[index]
                try:
                    global_tokens = self.designed_globals(ids) if speaker is None else speaker[0]
                except (RuntimeError, ValueError) as exc:
                    results[index] = exc
                    continue
                semantic = self._semantic_ids(ids)
                if not semantic:
                    # A legitimate (if useless) model output: an empty waveform, which the caller can
                    # retry or report; an error here would fail a whole multi-sentence request.
                    results[index] = Speech(np.zeros(0, dtype=np.float32), global_tokens)
                    continue
                jobs.append((index, global_tokens, semantic))
            vocoded = self._pool.map(_capture(lambda job: self.vocode(job[1], job[2])), jobs)
            for (index, global_tokens, _semantic), audio in zip(jobs, vocoded, strict=True):
                results[index] = audio if isinstance(audio, Exception) else Speech(audio, global_tokens)
        return results  # type: ignore[return-value]

    # -------------------------------------------------------------- streaming
    def stream_chunks(
        self, request: SynthesisRequest, is_cancelled: Callable[[], bool] = lambda: False, check_every: int = 10
    ) -> Iterator[tuple[np.ndarray, bool]]:
        """(audio chunk (T,) float32 16 kHz, is_last) while tokens are generated.

        Chunks follow the request's schedule, else the pipeline's (the official 50 -> 400 -> 1500
        tokens unless configured), and consecutive chunks overlap by its ``overlap_samples``. ``is_last`` is True on a chunk vocoded after
        generation ended; when generation ends exactly on a full chunk no chunk carries it, so
        callers must close the stream after the loop either way. ``is_cancelled`` is polled every
        ``check_every`` tokens (in Triton it is an IPC round trip) and before each chunk; once it is
        True the generator stops without error.
        """
        tokens = self.speaker_tokens(request)
        if is_cancelled():
            return
        prompt = self.prompt(request, tokens)
        generation_done = False
        designed: list[int] = []  # controllable TTS: the global codes as the LLM writes them

        def semantic_codes() -> Iterator[int]:
            nonlocal generation_done
            count = 0
            for token in self._stream(prompt, self.generation(request)):
                code = self._semantic_index(token)
                if code is not None:
                    yield code
                elif tokens is None and self._global_index is not None:
                    if (global_code := self._global_index(token)) is not None:
                        designed.append(global_code)
                count += 1
                if count % check_every == 0 and is_cancelled():
                    return
            generation_done = True

        emitted = False
        schedule = request.schedule or self.schedule
        for chunk in schedule.split(semantic_codes()):
            if is_cancelled():
                return
            emitted = True
            global_tokens = tokens[0] if tokens is not None else _designed(designed)
            yield self.vocode(global_tokens, chunk), generation_done
        if not emitted and not is_cancelled():
            yield np.zeros(0, dtype=np.float32), True  # no semantic tokens: an empty, final chunk


def _designed(codes: list[int]) -> np.ndarray:
    if len(codes) != prompts.NUM_GLOBAL_TOKENS:
        raise RuntimeError(f"the LLM wrote {len(codes)} global tokens before the speech; a designed voice needs "
                           f"exactly {prompts.NUM_GLOBAL_TOKENS} (try another seed)")
    return np.asarray(codes, np.int32)


def _capture(function: Callable) -> Callable:
    """Wrap ``function`` so that an exception is returned instead of raised (for pool.map)."""

    def call(argument: object) -> object:
        try:
            return function(argument)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, per request
            return exc

    return call
