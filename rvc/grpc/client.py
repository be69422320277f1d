"""Clients of the ``spark_tts`` Triton model: ``TritonSparkClient`` (sync) and ``AsyncTritonSparkClient``.

Both keep one gRPC channel for their lifetime and work against either repository variant: on an
offline model ``stream`` yields the whole waveform once; on a streaming (decoupled) model
``inference`` joins the streamed chunks with the same linear cross-fade the official client uses.
Every stream is closed when the caller stops reading, fails or is cancelled (an open stream would
also keep tritonserver from shutting down). Requests are built and responses read by
``rvc.grpc.wire``, shared by both clients, which also maps tritonclient errors once: server-side
validation errors (``INVALID_ARGUMENT``, or a message with the ``invalid input:`` prefix on
streams, which carry no status code) become ``InvalidInput``, everything else ``TTSBackendError``.

``AsyncTritonSparkClient.stream_audio`` reads the decoupled ``spark_tts_decoupled`` model (served
beside the offline ``spark_tts``) as an async iterator of ``AudioChunk``s: cross-faded audio with
its index, sample offset and arrival time, ready to concatenate; closing it cancels the request.

Audio on the wire is float32; ``reference_audio`` may have any sample rate (the server resamples),
the synthesised waveform is 16 kHz mono float32.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from rvc.errors import TTSBackendError
from rvc.grpc import contract
from rvc.grpc.chunks import AudioChunk, ChunkJoiner, join_chunks
from rvc.grpc.wire import (
    ChunkPlan,
    ModelInfo,
    Response,
    Speaker,
    SynthesisCall,
    TTSParams,
    VoiceDesign,
    build_inputs,
    map_error,
    model_info,
    read_response,
    read_tokens,
    synthesis_call,
    tokenizer_call,
)

__all__ = [
    "AsyncTritonSparkClient",
    "AudioChunk",
    "ChunkPlan",
    "ModelInfo",
    "Speaker",
    "TTSParams",
    "TritonSparkClient",
    "VoiceDesign",
    "build_inputs",
    "join_chunks",
    "map_error",
]

logger = logging.getLogger(__name__)

# tritonclient's channel options, plus a short reconnect backoff: gRPC's default grows to 120 s, so a
# gateway whose Triton was down for a minute would keep failing fast for tens of seconds after it is
# back. Tritonserver opens its gRPC port only once every model is loaded, so the channel's next connect
# attempt after that is when the gateway is serving again: one attempt every 0.5 s (+-20% jitter) while
# Triton is down bounds that gap at ~0.6 s (it was up to 2.4 s with a 2 s cap, 1.8 s measured), for one
# refused TCP connect per gateway every half second, which costs nothing.
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", grpcaio.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", grpcaio.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class _ClientBase:
    """What both clients share: addressing, deadlines, the model's info and the shape of a request."""

    def __init__(self, url: str, model_name: str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url, self.model_name, self.timeout_s = url, model_name, timeout_s
        self._infos: dict[str, ModelInfo] = {}  # model name -> its info, read once

    @staticmethod
    def _overlap(info: ModelInfo, params: TTSParams | None) -> int:
        """Samples consecutive chunks of a request share: its own plan's, else the model's default."""
        plan = params.chunks if params is not None else None
        if plan is not None and plan.overlap_tokens is not None:
            return plan.overlap_tokens * 320
        return info.overlap_samples

    def _read(self, result: Any, error: InferenceServerException | None = None) -> Response:
        return read_response(result, error, self.url)

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """The clients' one boundary where tritonclient's errors become the project's (``map_error``)."""
        try:
            yield
        except InferenceServerException as exc:
            raise map_error(exc, self.url) from exc


class TritonSparkClient(_ClientBase):
    """Blocking client; thread-safe, but its streams run one at a time (tritonclient's sync client
    holds one stream per channel): use ``AsyncTritonSparkClient`` for concurrent streams.
    """

    def __init__(self, url: str, *, model_name: str = contract.SPARK_TTS, timeout_s: float = 120.0) -> None:
        super().__init__(url, model_name, timeout_s)
        self._client = grpcclient.InferenceServerClient(url)
        self._stream_lock = threading.Lock()

    def __enter__(self) -> TritonSparkClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def is_server_ready(self) -> bool:
        """True when the server and the model answer ready; never raises."""
        try:
            timeout = min(self.timeout_s, 5.0)
            return bool(
                self._client.is_server_ready(client_timeout=timeout)
                and self._client.is_model_ready(self.model_name, client_timeout=timeout)
            )
        except InferenceServerException:
            return False

    def model_info(self) -> ModelInfo:
        if self.model_name not in self._infos:
            with self._mapped_errors():
                config = self._client.get_model_config(self.model_name, as_json=True, client_timeout=self.timeout_s)
            self._infos[self.model_name] = model_info(config)
        return self._infos[self.model_name]

    def inference(
        self,
        text: str,
        reference_audio: np.ndarray | Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Synthesise ``text`` in the reference's voice -> ((T,) float32, 16000)."""
        call = synthesis_call(text, reference_audio, reference_text, params, reference_sample_rate, request_id)
        info = self.model_info()
        if info.decoupled:
            return join_chunks(list(self._stream(call)), self._overlap(info, params)), contract.SAMPLE_RATE
        return self._read(self._infer(call)).audio, contract.SAMPLE_RATE

    def stream(
        self,
        text: str,
        reference_audio: np.ndarray | Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> Iterator[np.ndarray]:
        """Audio chunks ((T,) float32, 16 kHz) as the server sends them; consecutive chunks overlap
        by ``model_info().overlap_samples`` (see ``join_chunks``). One chunk on an offline model.
        """
        decoupled = self.model_info().decoupled
        call = synthesis_call(text, reference_audio, reference_text, params, reference_sample_rate, request_id)
        if decoupled:
            yield from self._stream(call)
        else:
            yield self._read(self._infer(call)).audio

    def _infer(self, call: SynthesisCall) -> Any:
        with self._mapped_errors():
            return self._client.infer(client_timeout=self.timeout_s, **call.arguments(self.model_name))

    def _stream(self, call: SynthesisCall) -> Iterator[np.ndarray]:
        with self._stream_lock:
            results: queue.Queue = queue.Queue()
            finished = False
            try:
                with self._mapped_errors():
                    self._client.start_stream(
                        callback=lambda result, error: results.put((result, error)), stream_timeout=self.timeout_s
                    )
                    self._client.async_stream_infer(enable_empty_final_response=True, **call.arguments(self.model_name))
                    while not finished:
                        try:
                            result, error = results.get(timeout=self.timeout_s)
                        except queue.Empty:
                            raise TTSBackendError(f"no audio from Triton at {self.url} within {self.timeout_s:g} s") from None
                        response = self._read(result, error)
                        finished = response.final
                        if response.audio.size:
                            yield response.audio
            finally:
                self._client.stop_stream(cancel_requests=not finished)


class AsyncTritonSparkClient(_ClientBase):
    """asyncio client (``tritonclient.grpc.aio``); any number of concurrent requests and streams.
    ``model_name`` serves ``inference`` / ``stream``, ``streaming_model_name`` serves ``stream_audio``.
    """

    def __init__(
        self,
        url: str,
        *,
        model_name: str = contract.SPARK_TTS,
        streaming_model_name: str = contract.SPARK_TTS_DECOUPLED,
        timeout_s: float = 120.0,
    ) -> None:
        super().__init__(url, model_name, timeout_s)
        self.streaming_model_name = streaming_model_name
        self._client = grpcaio.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)

    async def __aenter__(self) -> AsyncTritonSparkClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    async def is_server_ready(self) -> bool:
        try:
            timeout = min(self.timeout_s, 5.0)
            return bool(
                await self._client.is_server_ready(client_timeout=timeout)
                and await self._client.is_model_ready(self.model_name, client_timeout=timeout)
            )
        except InferenceServerException:
            return False

    async def model_info(self) -> ModelInfo:
        return await self._model_info(self.model_name)

    async def _model_info(self, model_name: str) -> ModelInfo:
        if model_name not in self._infos:
            with self._mapped_errors():
                config = await self._client.get_model_config(model_name, as_json=True, client_timeout=self.timeout_s)
            self._infos[model_name] = model_info(config)
        return self._infos[model_name]

    async def inference(
        self,
        text: str,
        reference_audio: np.ndarray | Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Synthesise ``text`` in the reference's voice -> ((T,) float32, 16000)."""
        call = synthesis_call(text, reference_audio, reference_text, params, reference_sample_rate, request_id)
        info = await self.model_info()
        if info.decoupled:
            async with aclosing(self._responses(call, self.model_name)) as responses:
                chunks = [response.audio async for response in responses]
            return join_chunks(chunks, self._overlap(info, params)), contract.SAMPLE_RATE
        return self._read(await self._infer(call, self.model_name)).audio, contract.SAMPLE_RATE

    async def tokenize(self, reference_audio: np.ndarray, *, request_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A 16 kHz clip ((T,) float32) -> its speaker tokens through the ``audio_tokenizer`` model:
        ((32,) int32 global, (T_sem,) int32 semantic), what ``spark_tts`` would compute from the clip."""
        result = await self._infer(tokenizer_call(reference_audio, request_id), contract.AUDIO_TOKENIZER)
        return read_tokens(result, contract.AUDIO_TOKENIZER)

    async def speak_in_voice(
        self,
        text: str,
        speaker: Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        request_id: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``inference`` on the offline model that also returns the voice it spoke in:
        ((T,) float32 at 16 kHz, (32,) int32 global tokens); how a designed voice is kept."""
        call = synthesis_call(text, speaker, reference_text, params, contract.SAMPLE_RATE, request_id,
                              outputs=(contract.WAVEFORM, contract.GLOBAL_TOKENS))
        response = self._read(await self._infer(call, self.model_name))
        if response.global_tokens is None:
            raise TTSBackendError(f"Triton model {self.model_name!r} returned no global_tokens: is it this repository's?")
        return response.audio, response.global_tokens

    async def stream(
        self,
        text: str,
        reference_audio: np.ndarray | Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> AsyncGenerator[np.ndarray, None]:
        """Audio chunks as the server sends them (see ``TritonSparkClient.stream``)."""
        decoupled = (await self.model_info()).decoupled
        call = synthesis_call(text, reference_audio, reference_text, params, reference_sample_rate, request_id)
        if not decoupled:
            yield self._read(await self._infer(call, self.model_name)).audio
            return
        async with aclosing(self._responses(call, self.model_name)) as responses:
            async for response in responses:
                if response.audio.size:
                    yield response.audio

    async def stream_audio(
        self,
        text: str,
        reference_audio: np.ndarray | Speaker,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> AsyncGenerator[AudioChunk, None]:
        """Audio from the streaming model (``streaming_model_name``) as it is generated: chunks
        already cross-faded on the request's overlap (``params.chunks``, else the model's), which
        concatenate to the whole waveform; the last one has ``final`` set.

        Closing the iterator early (``aclose``, leaving an ``async for``, task cancellation)
        cancels the request in Triton, which stops generating within a few tokens. Errors are the
        project's: ``InvalidInput`` for a bad request, ``TTSBackendError`` for everything else.
        """
        info = await self._model_info(self.streaming_model_name)
        if not info.decoupled:
            raise TTSBackendError(f"Triton model {self.streaming_model_name!r} is not a streaming (decoupled) model")
        call = synthesis_call(text, reference_audio, reference_text, params, reference_sample_rate, request_id)
        joiner = ChunkJoiner(self._overlap(info, params))
        index = offset = 0
        started = time.perf_counter()
        async with aclosing(self._responses(call, self.streaming_model_name)) as responses:
            async for response in responses:
                audio = joiner.push(response.audio)
                if response.final:
                    audio = np.concatenate([audio, joiner.finish()])
                if audio.size or response.final:
                    yield AudioChunk(index, audio, offset, time.perf_counter() - started, response.final)
                    index, offset = index + 1, offset + audio.size

    async def _infer(self, call: SynthesisCall, model_name: str) -> Any:
        with self._mapped_errors():
            return await self._client.infer(client_timeout=self.timeout_s, **call.arguments(model_name))

    async def _responses(self, call: SynthesisCall, model_name: str) -> AsyncGenerator[Response, None]:
        """The stream's responses up to the FINAL one; cancels the request in Triton when the
        consumer stops early (``aclose``, an exception or task cancellation)."""

        async def one_request() -> AsyncIterator[dict]:
            # Returning after one request half-closes the stream: it then ends once the server is done.
            yield call.arguments(model_name)

        responses = self._client.stream_infer(inputs_iterator=one_request(), stream_timeout=self.timeout_s)
        finished = False
        try:
            with self._mapped_errors():
                async for result, error in responses:
                    response = self._read(result, error)
                    finished = response.final
                    yield response
                    if finished:
                        break
                if not finished:
                    raise TTSBackendError(f"the stream from Triton at {self.url} ended before its final response")
        finally:
            if not finished:
                responses.cancel()
