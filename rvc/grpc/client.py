"""Clients of the ``spark_tts`` Triton model: ``TritonSparkClient`` (sync) and ``AsyncTritonSparkClient``.

Both keep one gRPC channel for their lifetime and work against either repository variant: on an
offline model ``stream`` yields the whole waveform once; on a streaming (decoupled) model
``inference`` joins the streamed chunks with the same linear cross-fade the official client uses.
Every stream is closed when the caller stops reading, fails or is cancelled (an open stream would
also keep tritonserver from shutting down). tritonclient errors are mapped here, once:
server-side validation errors (``INVALID_ARGUMENT``, or a message with the ``invalid input:``
prefix on streams, which carry no status code) become ``InvalidInput``, everything else
``TTSBackendError``.

Audio on the wire is float32; ``reference_audio`` may have any sample rate (the server resamples),
the synthesised waveform is 16 kHz mono float32.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from rvc.errors import InvalidInput, TTSBackendError, VoiceError
from rvc.grpc import contract

__all__ = ["AsyncTritonSparkClient", "ModelInfo", "TTSParams", "TritonSparkClient", "build_inputs", "join_chunks"]

logger = logging.getLogger(__name__)

# Triton's own request validation (missing input, wrong dtype or shape) arrives on a stream as a bare message.
_TRITON_VALIDATION_MARKERS = ("inputs but got", "missing required input", "unexpected shape for input",
                              "unexpected datatype", "unexpected inference input")


@dataclass(frozen=True)
class TTSParams:
    """Per-request generation overrides; None leaves the server's default (config.pbtxt) in place."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "temperature": self.temperature is None or self.temperature > 0,
            "top_k": self.top_k is None or self.top_k >= 0,
            "top_p": self.top_p is None or 0 < self.top_p <= 1,
            "max_new_tokens": self.max_new_tokens is None or self.max_new_tokens >= 1,
            "seed": self.seed is None or 0 <= self.seed < 2**63,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInput(f"{name}={getattr(self, name)!r} is out of range", field=name)


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs to know about the served model (read once from its config)."""

    decoupled: bool
    overlap_samples: int  # samples two consecutive streamed chunks share


def build_inputs(
    text: str,
    reference_audio: np.ndarray,
    reference_text: str | None = None,
    params: TTSParams | None = None,
    *,
    reference_sample_rate: int = contract.SAMPLE_RATE,
) -> list[grpcclient.InferInput]:
    """The request tensors, shaped as the official client shapes them (batch dimension 1)."""
    wav = np.ascontiguousarray(np.asarray(reference_audio, dtype=np.float32).reshape(1, -1))

    def tensor(name: str, datatype: str, value: np.ndarray) -> grpcclient.InferInput:
        infer_input = grpcclient.InferInput(name, list(value.shape), datatype)
        infer_input.set_data_from_numpy(value)
        return infer_input

    inputs = [
        tensor(contract.REFERENCE_WAV, "FP32", wav),
        tensor(contract.REFERENCE_WAV_LEN, "INT32", np.array([[wav.shape[1]]], dtype=np.int32)),
        tensor(contract.TARGET_TEXT, "BYTES", np.array([[text.encode("utf-8")]], dtype=np.object_)),
        tensor(contract.REFERENCE_SAMPLE_RATE, "INT32", np.array([[reference_sample_rate]], dtype=np.int32)),
    ]
    if reference_text is not None:
        inputs.append(tensor(contract.REFERENCE_TEXT, "BYTES", np.array([[reference_text.encode("utf-8")]], np.object_)))
    params = params or TTSParams()
    for name, datatype, dtype in (
        (contract.SEED, "INT64", np.int64),
        (contract.TEMPERATURE, "FP32", np.float32),
        (contract.TOP_K, "INT32", np.int32),
        (contract.TOP_P, "FP32", np.float32),
        (contract.MAX_NEW_TOKENS, "INT32", np.int32),
    ):
        value = getattr(params, name)
        if value is not None:
            inputs.append(tensor(name, datatype, np.array([[value]], dtype=dtype)))
    return inputs


def join_chunks(chunks: Sequence[np.ndarray], overlap_samples: int) -> np.ndarray:
    """Streamed chunks -> one waveform: each pair's ``overlap_samples`` are cross-faded linearly
    (fade-out of the earlier chunk, fade-in of the later), so the result has
    ``sum(len) - overlap * (n - 1)`` samples, the length of the offline waveform.
    """
    pieces = [np.asarray(c, dtype=np.float32).reshape(-1) for c in chunks if np.size(c)]
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    out = pieces[0]
    for piece in pieces[1:]:
        n = min(overlap_samples, len(out), len(piece))
        if n == 0:
            out = np.concatenate([out, piece])
            continue
        mixed = piece[:n] * np.linspace(0, 1, n) + out[-n:] * np.linspace(1, 0, n)
        out = np.concatenate([out[:-n], mixed.astype(np.float32), piece[n:]])
    return out


def map_error(exc: InferenceServerException, url: str) -> VoiceError:
    """One tritonclient error -> the project's tree (called at this module's boundary only)."""
    message = exc.message() or str(exc)
    status = str(exc.status() or "")
    if message.startswith(contract.INVALID_INPUT_PREFIX):
        return InvalidInput(message[len(contract.INVALID_INPUT_PREFIX) :])
    if "INVALID_ARGUMENT" in status or (not status and any(m in message for m in _TRITON_VALIDATION_MARKERS)):
        return InvalidInput(f"Triton rejected the request: {message}")
    if "UNAVAILABLE" in status:
        return TTSBackendError(f"Triton at {url} is unreachable: {message}")
    if "DEADLINE_EXCEEDED" in status:
        return TTSBackendError(f"Triton at {url} did not answer in time: {message}")
    return TTSBackendError(f"Triton request failed: {message}")


def _response(result: Any, error: InferenceServerException | None, url: str) -> tuple[np.ndarray | None, bool]:
    """One stream response -> (its audio or None when empty, whether it carries the FINAL flag)."""
    if error is not None:
        raise map_error(error, url)
    parameters = result.get_response().parameters
    final = "triton_final_response" in parameters and parameters["triton_final_response"].bool_param
    return _audio(result), final


def _audio(result: Any) -> np.ndarray | None:
    """The waveform of one response, or None for an empty (final-only) response."""
    wav = result.as_numpy(contract.WAVEFORM)
    return None if wav is None or wav.size == 0 else wav.reshape(-1).astype(np.float32, copy=False)


def _model_info(config: dict) -> ModelInfo:
    config = config.get("config", config)
    decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    overlap = float(parameters.get("audio_chunk_overlap_duration", "0.1") or 0.1)
    # The server rounds the overlap up to whole tokens (320 samples each).
    tokens = int(np.ceil(round(overlap * 50, 6)))
    return ModelInfo(decoupled=decoupled, overlap_samples=tokens * 320)


class _ClientBase:
    """What both clients share: addressing, deadlines and the shape of a request."""

    def __init__(self, url: str, model_name: str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url, self.model_name, self.timeout_s = url, model_name, timeout_s
        self._info: ModelInfo | None = None

    def _request(self, request_id: str | None, outputs: type) -> dict[str, Any]:
        return {"request_id": request_id or uuid.uuid4().hex, "outputs": [outputs(contract.WAVEFORM)]}

    def _offline_result(self, result: Any) -> tuple[np.ndarray, int]:
        wav = _audio(result)
        return (np.zeros(0, np.float32) if wav is None else wav), contract.SAMPLE_RATE


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
        if self._info is None:
            try:
                config = self._client.get_model_config(self.model_name, as_json=True, client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                raise map_error(exc, self.url) from exc
            self._info = _model_info(config)
        return self._info

    def inference(
        self,
        text: str,
        reference_audio: np.ndarray,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Synthesise ``text`` in the reference's voice -> ((T,) float32, 16000)."""
        inputs = build_inputs(text, reference_audio, reference_text, params, reference_sample_rate=reference_sample_rate)
        info = self.model_info()
        if info.decoupled:
            chunks = list(self._stream(inputs, request_id))
            return join_chunks(chunks, info.overlap_samples), contract.SAMPLE_RATE
        try:
            result = self._client.infer(
                self.model_name, inputs, client_timeout=self.timeout_s,
                **self._request(request_id, grpcclient.InferRequestedOutput),
            )
        except InferenceServerException as exc:
            raise map_error(exc, self.url) from exc
        return self._offline_result(result)

    def stream(
        self,
        text: str,
        reference_audio: np.ndarray,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> Iterator[np.ndarray]:
        """Audio chunks ((T,) float32, 16 kHz) as the server sends them; consecutive chunks overlap
        by ``model_info().overlap_samples`` (see ``join_chunks``). One chunk on an offline model.
        """
        if not self.model_info().decoupled:
            yield self.inference(
                text, reference_audio, reference_text, params,
                reference_sample_rate=reference_sample_rate, request_id=request_id,
            )[0]
            return
        inputs = build_inputs(text, reference_audio, reference_text, params, reference_sample_rate=reference_sample_rate)
        yield from self._stream(inputs, request_id)

    def _stream(self, inputs: list[grpcclient.InferInput], request_id: str | None) -> Iterator[np.ndarray]:
        with self._stream_lock:
            results: queue.Queue = queue.Queue()
            finished = False
            try:
                self._client.start_stream(
                    callback=lambda result, error: results.put((result, error)), stream_timeout=self.timeout_s
                )
                self._client.async_stream_infer(
                    self.model_name, inputs, enable_empty_final_response=True,
                    **self._request(request_id, grpcclient.InferRequestedOutput),
                )
                while not finished:
                    try:
                        result, error = results.get(timeout=self.timeout_s)
                    except queue.Empty:
                        raise TTSBackendError(f"no audio from Triton at {self.url} within {self.timeout_s:g} s") from None
                    chunk, finished = _response(result, error, self.url)
                    if chunk is not None:
                        yield chunk
            except InferenceServerException as exc:
                raise map_error(exc, self.url) from exc
            finally:
                self._client.stop_stream(cancel_requests=not finished)


class AsyncTritonSparkClient(_ClientBase):
    """asyncio client (``tritonclient.grpc.aio``); any number of concurrent requests and streams."""

    def __init__(self, url: str, *, model_name: str = contract.SPARK_TTS, timeout_s: float = 120.0) -> None:
        super().__init__(url, model_name, timeout_s)
        self._client = grpcaio.InferenceServerClient(url)

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
        if self._info is None:
            try:
                config = await self._client.get_model_config(self.model_name, as_json=True, client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                raise map_error(exc, self.url) from exc
            self._info = _model_info(config)
        return self._info

    async def inference(
        self,
        text: str,
        reference_audio: np.ndarray,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Synthesise ``text`` in the reference's voice -> ((T,) float32, 16000)."""
        inputs = build_inputs(text, reference_audio, reference_text, params, reference_sample_rate=reference_sample_rate)
        info = await self.model_info()
        if info.decoupled:
            chunks = [chunk async for chunk in self._stream(inputs, request_id)]
            return join_chunks(chunks, info.overlap_samples), contract.SAMPLE_RATE
        try:
            result = await self._client.infer(
                self.model_name, inputs, client_timeout=self.timeout_s,
                **self._request(request_id, grpcaio.InferRequestedOutput),
            )
        except InferenceServerException as exc:
            raise map_error(exc, self.url) from exc
        return self._offline_result(result)

    async def stream(
        self,
        text: str,
        reference_audio: np.ndarray,
        reference_text: str | None = None,
        params: TTSParams | None = None,
        *,
        reference_sample_rate: int = contract.SAMPLE_RATE,
        request_id: str | None = None,
    ) -> AsyncIterator[np.ndarray]:
        """Audio chunks as the server sends them (see ``TritonSparkClient.stream``)."""
        if not (await self.model_info()).decoupled:
            wav, _ = await self.inference(
                text, reference_audio, reference_text, params,
                reference_sample_rate=reference_sample_rate, request_id=request_id,
            )
            yield wav
            return
        inputs = build_inputs(text, reference_audio, reference_text, params, reference_sample_rate=reference_sample_rate)
        async for chunk in self._stream(inputs, request_id):
            yield chunk

    async def _stream(self, inputs: list[grpcclient.InferInput], request_id: str | None) -> AsyncIterator[np.ndarray]:
        async def one_request() -> AsyncIterator[dict]:
            # Returning after one request half-closes the stream: it then ends once the server is done.
            request = self._request(request_id, grpcaio.InferRequestedOutput)
            yield {"model_name": self.model_name, "inputs": inputs, **request}

        responses = self._client.stream_infer(inputs_iterator=one_request(), stream_timeout=self.timeout_s)
        finished = False
        try:
            async for result, error in responses:
                chunk, finished = _response(result, error, self.url)
                if chunk is not None:
                    yield chunk
                if finished:
                    break
        except InferenceServerException as exc:
            raise map_error(exc, self.url) from exc
        finally:
            if not finished:
                responses.cancel()
