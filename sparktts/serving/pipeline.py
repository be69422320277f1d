"""The ``spark_tts`` flow (tokenize -> prompt -> LLM -> vocode) with injected parts, and the
speaker-token cache in front of the tokenizer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from sparktts import prompts
from sparktts.llm import GenerationParams
from sparktts.serving.codec import Tokens
from sparktts.serving.inputs import SynthesisRequest
from sparktts.streaming import ChunkSchedule

logger = logging.getLogger(__name__)


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
    ) -> None:
        self._tokenize, self._generate, self._stream = tokenize, generate, stream
        self._semantic_ids, self._semantic_index, self._vocode = semantic_ids, semantic_index, vocode
        self.cache = cache if cache is not None else SpeakerCache(0)
        self.schedule = schedule if schedule is not None else ChunkSchedule()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="spark-pipeline")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -------------------------------------------------------------- steps
    def speaker_tokens(self, request: SynthesisRequest) -> Tokens:
        """The reference's tokens, from the cache when this clip was seen before."""
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
    def prompt(request: SynthesisRequest, tokens: Tokens) -> str:
        global_tokens, semantic_tokens = tokens
        return prompts.build_clone_prompt(
            request.target_text, global_tokens, semantic_tokens if request.reference_text is not None else None,
            request.reference_text,
        )

    def vocode(self, global_tokens: np.ndarray, semantic: Sequence[int]) -> np.ndarray:
        if not semantic:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._vocode(global_tokens, np.asarray(semantic, dtype=np.int32)), np.float32).reshape(-1)

    # -------------------------------------------------------------- offline
    def synthesize_batch(self, requests: Sequence[SynthesisRequest]) -> list[np.ndarray | Exception]:
        """Whole waveforms ((T,) float32, 16 kHz) or the exception of each failed request, in order.

        Tokenizer and vocoder calls of the batch run concurrently (so Triton can batch them); the LLM
        decodes every prompt of the batch together.
        """
        results: list[np.ndarray | Exception | None] = [None] * len(requests)
        tokens: dict[int, Tokens] = {}
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
                generated = self._generate([prompts_[i] for i in order], [requests[i].generation for i in order])
            except Exception as exc:  # noqa: BLE001 - the LLM failure belongs to every request of the batch
                generated = [exc] * len(order)  # type: ignore[list-item]
            jobs = []
            for index, ids in zip(order, generated, strict=True):
                if isinstance(ids, Exception):
                    results[index] = ids
                    continue
                semantic = self._semantic_ids(ids)
                if not semantic:
                    # A legitimate (if useless) model output: an empty waveform, which the caller can
                    # retry or report; an error here would fail a whole multi-sentence request.
                    results[index] = np.zeros(0, dtype=np.float32)
                    continue
                jobs.append((index, tokens[index][0], semantic))
            vocoded = self._pool.map(_capture(lambda job: self.vocode(job[1], job[2])), jobs)
            for (index, _, _semantic), audio in zip(jobs, vocoded, strict=True):
                results[index] = audio
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

        def semantic_codes() -> Iterator[int]:
            nonlocal generation_done
            count = 0
            for token in self._stream(prompt, request.generation):
                code = self._semantic_index(token)
                if code is not None:
                    yield code
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
            yield self.vocode(tokens[0], chunk), generation_done
        if not emitted and not is_cancelled():
            yield np.zeros(0, dtype=np.float32), True  # no semantic tokens: an empty, final chunk


def _capture(function: Callable) -> Callable:
    """Wrap ``function`` so that an exception is returned instead of raised (for pool.map)."""

    def call(argument: object) -> object:
        try:
            return function(argument)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, per request
            return exc

    return call
