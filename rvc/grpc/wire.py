"""One request builder and one response parser for both Triton clients (sync and asyncio).

``build_inputs`` turns a synthesis request into the ``spark_tts`` tensors, shaped as the official
client shapes them; ``read_response`` turns one Triton response (offline answer or one stream
message) into its audio and its FINAL flag; ``tokenizer_call`` / ``read_tokens`` do the same for
the ``audio_tokenizer`` model, with the clip tensors ``build_inputs`` sends; ``map_error`` maps a
tritonclient error into the project's tree. The clients in ``rvc.grpc.client`` only move these over their channel.

The tensor classes of ``tritonclient.grpc`` and ``tritonclient.grpc.aio`` are the same classes,
so one builder serves both protocols.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from rvc.errors import InvalidInput, TTSBackendError, VoiceError
from rvc.grpc import contract

__all__ = [
    "ChunkPlan",
    "ModelInfo",
    "Response",
    "Speaker",
    "SynthesisCall",
    "TTSParams",
    "VoiceDesign",
    "build_inputs",
    "map_error",
    "model_info",
    "read_response",
    "read_tokens",
    "tokenizer_call",
]

# Triton's own request validation (missing input, wrong dtype or shape) arrives on a stream as a bare message.
_TRITON_VALIDATION_MARKERS = ("inputs but got", "missing required input", "unexpected shape for input",
                              "unexpected datatype", "unexpected inference input")


@dataclass(frozen=True)
class ChunkPlan:
    """A streaming request's chunk schedule in semantic tokens (50 per second, 320 samples each):
    a first chunk of ``first_tokens``, then chunks growing by ``scale`` up to ``steady_tokens``,
    consecutive chunks sharing ``overlap_tokens`` (cross-faded on join). None leaves the served
    model's default. The official runtime's schedule is ``ChunkPlan.official()``.
    """

    first_tokens: int | None = None
    steady_tokens: int | None = None
    scale: float | None = None
    overlap_tokens: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "chunk_first_tokens": self.first_tokens is None or self.first_tokens >= 1,
            "chunk_steady_tokens": self.steady_tokens is None or self.steady_tokens >= 1,
            "chunk_scale": self.scale is None or self.scale >= 1.0,
            "chunk_overlap_tokens": self.overlap_tokens is None or self.overlap_tokens >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInput(f"{name} is out of range in {self}", field=name)

    @classmethod
    def official(cls) -> ChunkPlan:
        """The official runtime's 50 -> 400 -> 1500 tokens, overlapping by 5."""
        return cls(first_tokens=50, steady_tokens=1500, scale=8.0, overlap_tokens=5)


@dataclass(frozen=True)
class TTSParams:
    """Per-request generation overrides; None leaves the server's default (config.pbtxt) in place."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    chunks: ChunkPlan | None = None  # streaming models only; ignored by the offline spark_tts

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
class VoiceDesign:
    """Spark-TTS's voice attributes (controllable mode); the values are checked where requests enter
    (``rvc.processing.contract``) and again by the model."""

    gender: str
    pitch: str = "moderate"
    speed_level: str = "moderate"


@dataclass(frozen=True)
class Speaker:
    """Who speaks, from exactly one source: a reference clip (``reference_wav`` (T,) float32), stored
    speaker tokens (``global_tokens``: 32 ids; ``semantic_tokens``: the clip's, sent only with a
    transcript) or voice attributes (``design``: a new voice on every unseeded call)."""

    reference_wav: np.ndarray | None = None
    global_tokens: tuple[int, ...] | None = None
    semantic_tokens: tuple[int, ...] | None = None
    design: VoiceDesign | None = None

    def __post_init__(self) -> None:
        sources = [self.reference_wav is not None, self.global_tokens is not None, self.design is not None]
        if sum(sources) != 1:
            raise ValueError(f"a Speaker has exactly one source (clip, tokens or design), got {sum(sources)}")
        if self.semantic_tokens is not None and self.global_tokens is None:
            raise ValueError("semantic_tokens come with global_tokens")


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs to know about the served model (read once from its config)."""

    decoupled: bool
    overlap_samples: int  # samples two consecutive streamed chunks share (the model's default schedule)


@dataclass(frozen=True)
class SynthesisCall:
    """One built request (a synthesis, or a clip for the ``audio_tokenizer``): its tensors, id and
    requested outputs, ready for ``infer`` or a stream."""

    inputs: list[grpcclient.InferInput]
    request_id: str
    outputs: tuple[str, ...] = (contract.WAVEFORM,)

    def arguments(self, model_name: str) -> dict[str, Any]:
        """The keyword arguments every tritonclient infer call takes (sync, async, stream)."""
        return {
            "model_name": model_name,
            "inputs": self.inputs,
            "request_id": self.request_id,
            "outputs": [grpcclient.InferRequestedOutput(name) for name in self.outputs],
        }


@dataclass(frozen=True)
class Response:
    """One response: its waveform ((T,) float32 at 16 kHz, empty for a final-only message) and
    whether it carries the FINAL flag (offline answers always do)."""

    audio: np.ndarray
    final: bool
    global_tokens: np.ndarray | None = None  # (32,) int32 when the call asked for them (offline only)


def _tensor(name: str, datatype: str, value: np.ndarray) -> grpcclient.InferInput:
    infer_input = grpcclient.InferInput(name, list(value.shape), datatype)
    infer_input.set_data_from_numpy(value)
    return infer_input


def _text(value: str) -> np.ndarray:
    return np.array([[value.encode("utf-8")]], dtype=np.object_)


def _speaker_inputs(speaker: Speaker, with_transcript: bool) -> list[grpcclient.InferInput]:
    if speaker.design is not None:
        design = speaker.design
        return [_tensor(contract.GENDER, "BYTES", _text(design.gender)), _tensor(contract.PITCH, "BYTES", _text(design.pitch)),
                _tensor(contract.SPEED_LEVEL, "BYTES", _text(design.speed_level))]
    if speaker.global_tokens is not None:
        inputs = [_tensor(contract.SPEAKER_GLOBAL_TOKENS, "INT32", np.array([speaker.global_tokens], dtype=np.int32))]
        if with_transcript and speaker.semantic_tokens is not None:
            semantic = np.array([speaker.semantic_tokens], dtype=np.int32)
            inputs.append(_tensor(contract.SPEAKER_SEMANTIC_TOKENS, "INT32", semantic))
        return inputs
    return []


def _wav_inputs(wav: np.ndarray) -> list[grpcclient.InferInput]:
    """``reference_wav`` (1, T) float32 and its length: how both ``spark_tts`` and ``audio_tokenizer`` take a clip."""
    wav = np.ascontiguousarray(np.asarray(wav, dtype=np.float32).reshape(1, -1))
    return [
        _tensor(contract.REFERENCE_WAV, "FP32", wav),
        _tensor(contract.REFERENCE_WAV_LEN, "INT32", np.array([[wav.shape[1]]], dtype=np.int32)),
    ]


def _clip_inputs(text: str, wav: np.ndarray, reference_sample_rate: int) -> list[grpcclient.InferInput]:
    """The official four, in the official client's order."""
    return [
        *_wav_inputs(wav),
        _tensor(contract.TARGET_TEXT, "BYTES", _text(text)),
        _tensor(contract.REFERENCE_SAMPLE_RATE, "INT32", np.array([[reference_sample_rate]], dtype=np.int32)),
    ]


def build_inputs(
    text: str,
    reference_audio: np.ndarray | Speaker,
    reference_text: str | None = None,
    params: TTSParams | None = None,
    *,
    reference_sample_rate: int = contract.SAMPLE_RATE,
) -> list[grpcclient.InferInput]:
    """The request tensors, shaped as the official client shapes them (batch dimension 1).
    ``reference_audio``: the clip, or a Speaker for stored tokens or a designed voice; a transcript
    goes with a clip or stored tokens that include the clip's semantic tokens, never with a design."""
    speaker = reference_audio if isinstance(reference_audio, Speaker) else Speaker(reference_wav=reference_audio)
    if speaker.design is not None or (speaker.global_tokens is not None and speaker.semantic_tokens is None):
        reference_text = None
    if speaker.reference_wav is not None:
        inputs = _clip_inputs(text, speaker.reference_wav, reference_sample_rate)
    else:
        inputs = [_tensor(contract.TARGET_TEXT, "BYTES", _text(text)),
                  *_speaker_inputs(speaker, reference_text is not None)]
    if reference_text is not None:
        inputs.append(_tensor(contract.REFERENCE_TEXT, "BYTES", _text(reference_text)))
    params = params or TTSParams()
    plan = params.chunks or ChunkPlan()
    values = {
        contract.SEED: params.seed,
        contract.TEMPERATURE: params.temperature,
        contract.TOP_K: params.top_k,
        contract.TOP_P: params.top_p,
        contract.MAX_NEW_TOKENS: params.max_new_tokens,
        contract.CHUNK_FIRST_TOKENS: plan.first_tokens,
        contract.CHUNK_STEADY_TOKENS: plan.steady_tokens,
        contract.CHUNK_SCALE: plan.scale,
        contract.CHUNK_OVERLAP_TOKENS: plan.overlap_tokens,
    }
    dtypes = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}
    for spec in contract.SPARK_TTS_INPUTS:
        value = values.get(spec.name)
        if value is not None:
            inputs.append(_tensor(spec.name, spec.datatype, np.array([[value]], dtype=dtypes[spec.datatype])))
    return inputs


def synthesis_call(
    text: str,
    reference_audio: np.ndarray | Speaker,
    reference_text: str | None,
    params: TTSParams | None,
    reference_sample_rate: int,
    request_id: str | None,
    outputs: tuple[str, ...] = (contract.WAVEFORM,),
) -> SynthesisCall:
    inputs = build_inputs(text, reference_audio, reference_text, params, reference_sample_rate=reference_sample_rate)
    return SynthesisCall(inputs, request_id or uuid.uuid4().hex, outputs)


def tokenizer_call(reference_audio: np.ndarray, request_id: str | None) -> SynthesisCall:
    """A 16 kHz clip ((T,) float32) -> the ``audio_tokenizer`` request for both token outputs."""
    return SynthesisCall(_wav_inputs(reference_audio), request_id or "", (contract.GLOBAL_TOKENS, contract.SEMANTIC_TOKENS))


def read_tokens(result: Any, model_name: str) -> tuple[np.ndarray, np.ndarray]:
    """An ``audio_tokenizer`` answer -> ((32,) int32 global, (T_sem,) int32 semantic)."""
    global_tokens, semantic = result.as_numpy(contract.GLOBAL_TOKENS), result.as_numpy(contract.SEMANTIC_TOKENS)
    if global_tokens is None or semantic is None:
        raise TTSBackendError(f"Triton model {model_name!r} returned no tokens")
    return global_tokens.reshape(-1).astype(np.int32), semantic.reshape(-1).astype(np.int32)


def read_response(result: Any, error: InferenceServerException | None = None, url: str = "") -> Response:
    """One tritonclient result (offline answer or stream message) -> Response; raises the mapped
    error when ``error`` is set."""
    if error is not None:
        raise map_error(error, url)
    parameters = result.get_response().parameters
    final = "triton_final_response" not in parameters or parameters["triton_final_response"].bool_param
    wav = result.as_numpy(contract.WAVEFORM)
    audio = np.zeros(0, np.float32) if wav is None else wav.reshape(-1).astype(np.float32, copy=False)
    tokens = result.as_numpy(contract.GLOBAL_TOKENS)
    return Response(audio, bool(final), None if tokens is None else tokens.reshape(-1).astype(np.int32))


def model_info(config: dict) -> ModelInfo:
    """A model's JSON config (as ``get_model_config(as_json=True)`` returns it) -> ModelInfo."""
    config = config.get("config", config)
    decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    if parameters.get("chunk_overlap_tokens", "").isdigit():
        tokens = int(parameters["chunk_overlap_tokens"])
    else:  # the official parameter in seconds, rounded up to whole tokens as the server does
        overlap = float(parameters.get("audio_chunk_overlap_duration", "0.1") or 0.1)
        tokens = int(np.ceil(round(overlap * 50, 6)))
    return ModelInfo(decoupled=decoupled, overlap_samples=tokens * 320)


def map_error(exc: InferenceServerException, url: str) -> VoiceError:
    """One tritonclient error -> the project's tree (called at the clients' boundary only)."""
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
    if "CANCELLED" in status:
        return TTSBackendError(f"Triton cancelled the request: {message}")
    return TTSBackendError(f"Triton request failed: {message}")
