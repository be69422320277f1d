"""Request side of the Triton models: parameters, input parsing, error descriptions, log forwarding.

Wire conventions (the official Spark-TTS runtime's): every model has ``max_batch_size > 0``, so each
request tensor has a leading batch dimension of 1: ``reference_wav`` (1, N) float32 (clients may
zero-pad it), ``reference_wav_len`` (1, 1) int32, texts (1, 1) bytes, tokens (1, T) int32,
``waveform`` (1, samples) float32 at 16 kHz.

Who speaks comes from exactly one of three sources: a reference clip (the official inputs), stored
speaker tokens (``speaker_global_tokens``, plus ``speaker_semantic_tokens`` when ``reference_text``
is sent: a clip tokenized before, or a designed voice), or voice attributes (``gender``, ``pitch``,
``speed_level``: Spark-TTS's controllable mode, which invents a voice on every call).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sparktts import prompts
from sparktts.generation import GenerationParams
from sparktts.streaming import ChunkSchedule

# Mirrored by rvc.grpc.contract.INVALID_INPUT_PREFIX (sparktts may not import rvc); a test checks both.
INVALID_INPUT_PREFIX = "invalid input: "
SAMPLE_RATE = 16000
MAX_SAMPLE_RATE = 384000

TensorGetter = Callable[[str], "np.ndarray | None"]  # input name -> numpy array, None when absent


class RequestCancelled(Exception):
    """The client cancelled the request before it ran (answered with Triton's CANCELLED code)."""


# ------------------------------------------------------------------------------------- parameters
def model_parameters(model_config: str | Mapping) -> dict[str, str]:
    """The ``parameters`` block of a config.pbtxt (as Triton passes it: JSON) -> {key: string_value}."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def required_parameter(parameters: Mapping[str, str], name: str) -> str:
    value = parameters.get(name, "")
    if not value or value.startswith("${"):
        raise ValueError(f"model parameter {name!r} is not set (was the template filled?)")
    return value


class _ForwardingHandler(logging.Handler):
    def __init__(self, sinks: Mapping[int, Callable[[str], None]]) -> None:
        super().__init__(logging.INFO)
        self._sinks = sorted(sinks.items())

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._sinks[0][1]
        for level, candidate in self._sinks:
            if record.levelno >= level:
                sink = candidate
        try:
            sink(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)


def forward_logging(info: Callable[[str], None], warning: Callable[[str], None], error: Callable[[str], None]) -> None:
    """Route ``sparktts`` log records (INFO and up) to the given sinks, e.g. Triton's ``pb_utils.Logger``,
    so that model loading and per-request lines land in the server's log. Idempotent per process.
    """
    package = logging.getLogger("sparktts")
    if any(isinstance(h, _ForwardingHandler) for h in package.handlers):
        return
    package.addHandler(_ForwardingHandler({logging.INFO: info, logging.WARNING: warning, logging.ERROR: error}))
    package.setLevel(logging.INFO)


# ------------------------------------------------------------------------------------- request parsing
def _scalar(array: np.ndarray, name: str) -> Any:
    flat = np.asarray(array).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"{name} must hold one value, got {flat.size}")
    return flat[0]


def decode_text(array: np.ndarray, name: str) -> str:
    """A BYTES tensor of one element ((1, 1) or (1,)) -> str (UTF-8)."""
    value = _scalar(array, name)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name} is not valid UTF-8") from exc
    return str(value)


def parse_reference(get: TensorGetter) -> tuple[np.ndarray, int]:
    """``reference_wav`` cut to ``reference_wav_len`` -> ((T,) float32, sample rate).

    The official clients zero-pad the clip and send its true length; the padding is dropped here.
    ``reference_sample_rate`` is optional (16 kHz when absent); resampling happens in the tokenizer.
    """
    wav, length = get("reference_wav"), get("reference_wav_len")
    if wav is None or length is None:
        raise ValueError("reference_wav and reference_wav_len are required")
    sent_shape = tuple(np.shape(wav))
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.ndim != 1:
        raise ValueError(f"reference_wav must be (1, N) per request, got shape {sent_shape}")
    count = int(_scalar(length, "reference_wav_len"))
    if not 0 < count <= wav.shape[0]:
        raise ValueError(f"reference_wav_len must be in 1..{wav.shape[0]} (the samples sent), got {count}")
    wav = wav[:count]
    if not np.isfinite(wav).all():
        raise ValueError("reference_wav holds NaN or infinite samples")
    rate_tensor = get("reference_sample_rate")
    rate = SAMPLE_RATE if rate_tensor is None else int(_scalar(rate_tensor, "reference_sample_rate"))
    if not 1000 <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"reference_sample_rate must be in 1000..{MAX_SAMPLE_RATE}, got {rate}")
    return wav, rate


GENDERS = tuple(prompts.GENDER)
LEVELS = tuple(prompts.LEVEL)
DEFAULT_LEVEL = "moderate"


@dataclass(frozen=True)
class VoiceStyle:
    """Controllable TTS's voice attributes; ValueError naming the input and its allowed values."""

    gender: str
    pitch: str = DEFAULT_LEVEL
    speed_level: str = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        for name, value, allowed in (("gender", self.gender, GENDERS), ("pitch", self.pitch, LEVELS),
                                     ("speed_level", self.speed_level, LEVELS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class SynthesisRequest:
    """One request, validated; exactly one of ``reference_wav`` (clone a clip), ``global_tokens``
    (stored speaker tokens) and ``style`` (controllable TTS) says who speaks.

    reference_wav: (T,) float32 at reference_sample_rate; global_tokens: (32,) int32 in 0..4095;
    semantic_tokens: (T,) int32, the stored clip's, used with reference_text only.
    """

    target_text: str
    reference_wav: np.ndarray | None
    reference_sample_rate: int
    reference_text: str | None  # None: no transcript, the prompt omits the reference's semantics
    generation: GenerationParams
    request_id: str = ""
    schedule: ChunkSchedule | None = None  # streaming only; None: the model's default schedule
    global_tokens: np.ndarray | None = None
    semantic_tokens: np.ndarray | None = None
    style: VoiceStyle | None = None

    @property
    def control(self) -> bool:
        return self.style is not None


# chunk_* inputs -> ChunkSchedule fields
_SCHEDULE_INPUTS = (("chunk_first_tokens", "first", int), ("chunk_steady_tokens", "largest", int),
                    ("chunk_scale", "scale", float), ("chunk_overlap_tokens", "overlap", int))


def parse_schedule(get: TensorGetter, default: ChunkSchedule | None) -> ChunkSchedule | None:
    """The request's chunk schedule: ``default`` with the ``chunk_*`` inputs the request sets
    (None when it sets none); ValueError naming the inputs when they do not form a schedule."""
    overrides: dict[str, Any] = {}
    for name, field, kind in _SCHEDULE_INPUTS:
        tensor = get(name)
        if tensor is not None:
            overrides[field] = kind(_scalar(tensor, name))
    if not overrides:
        return None
    try:
        return replace(default or ChunkSchedule(), **overrides)
    except ValueError as exc:
        sent = ", ".join(f"{name}={overrides[field]}" for name, field, _ in _SCHEDULE_INPUTS if field in overrides)
        raise ValueError(f"chunk schedule ({sent}) is unusable: {exc}") from exc


def schedule_from_parameters(parameters: Mapping[str, str]) -> ChunkSchedule:
    """The ``chunk_*`` model parameters -> the model's default ChunkSchedule (ValueError if unusable)."""
    return ChunkSchedule(
        first=int(required_parameter(parameters, "chunk_first_tokens")),
        scale=float(required_parameter(parameters, "chunk_scale")),
        largest=int(required_parameter(parameters, "chunk_steady_tokens")),
        overlap=int(required_parameter(parameters, "chunk_overlap_tokens")),
    )


def parse_style(get: TensorGetter) -> VoiceStyle | None:
    """``gender`` / ``pitch`` / ``speed_level`` -> VoiceStyle (levels default to moderate), None when
    none is sent; ValueError naming the input and its allowed values."""
    sent = {name: decode_text(tensor, name) for name in ("gender", "pitch", "speed_level")
            if (tensor := get(name)) is not None}
    if not sent:
        return None
    if "gender" not in sent:
        raise ValueError(f"pitch and speed_level design a voice, which also needs gender ({', '.join(GENDERS)})")
    return VoiceStyle(**sent)


def parse_speaker_tokens(get: TensorGetter, with_transcript: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``speaker_global_tokens`` (and, with a transcript, ``speaker_semantic_tokens``) -> int32 arrays,
    None when not sent; ValueError naming the input when the ids are unusable."""
    globals_tensor = get("speaker_global_tokens")
    semantic_tensor = get("speaker_semantic_tokens")
    if globals_tensor is None:
        if semantic_tensor is not None:
            raise ValueError("speaker_semantic_tokens needs speaker_global_tokens")
        return None
    global_tokens = np.asarray(prompts.token_list(globals_tensor, "speaker_global_tokens", prompts.NUM_GLOBAL_CODES),
                               np.int32)
    if global_tokens.size != prompts.NUM_GLOBAL_TOKENS:
        raise ValueError(f"speaker_global_tokens must hold {prompts.NUM_GLOBAL_TOKENS} ids, got {global_tokens.size}")
    if not with_transcript:
        return global_tokens, None
    if semantic_tensor is None:
        raise ValueError("reference_text with speaker_global_tokens needs the clip's speaker_semantic_tokens too")
    semantic = prompts.token_list(semantic_tensor, "speaker_semantic_tokens", prompts.NUM_SEMANTIC_CODES)
    if not semantic:
        raise ValueError("speaker_semantic_tokens is empty")
    return global_tokens, np.asarray(semantic, np.int32)


def parse_synthesis_request(
    get: TensorGetter, defaults: GenerationParams, request_id: str = "", schedule: ChunkSchedule | None = None
) -> SynthesisRequest:
    """Inputs of ``spark_tts`` -> SynthesisRequest; raises ValueError naming the bad input.
    ``schedule``: the model's default chunk schedule, which ``chunk_*`` inputs override."""
    target = get("target_text")
    if target is None:
        raise ValueError("target_text is required")
    target_text = decode_text(target, "target_text")
    if not target_text.strip():
        raise ValueError("target_text is empty: give the words to speak")
    reference = get("reference_text")
    reference_text = None if reference is None else decode_text(reference, "reference_text")
    style = parse_style(get)
    stored = parse_speaker_tokens(get, reference_text is not None)
    clip = get("reference_wav") is not None or get("reference_wav_len") is not None
    sources = [name for name, given in (("reference_wav", clip), ("speaker_global_tokens", stored is not None),
                                        ("gender", style is not None)) if given]
    if len(sources) > 1:
        raise ValueError(f"send one voice source, got {' and '.join(sources)}")
    wav: np.ndarray | None = None
    rate = SAMPLE_RATE
    if not sources or clip:
        wav, rate = parse_reference(get)
    if style is not None:
        reference_text = None
    overrides: dict[str, object] = {}
    for name, kind in (("seed", int), ("temperature", float), ("top_k", int), ("top_p", float), ("max_new_tokens", int)):
        tensor = get(name)
        if tensor is not None:
            overrides[name] = kind(_scalar(tensor, name))
    try:
        generation = replace(defaults, **overrides)  # type: ignore[arg-type]
    except ValueError as exc:  # GenerationParams names the field and its range
        raise ValueError(str(exc)) from exc
    chunks = parse_schedule(get, schedule)
    return SynthesisRequest(
        target_text, wav, rate, reference_text, generation, request_id, chunks,
        global_tokens=None if stored is None else stored[0], semantic_tokens=None if stored is None else stored[1],
        style=style,
    )


def token_row(tokens: object) -> np.ndarray:
    """Any int tensor/array of token ids -> (1, T) int32, the wire form of token outputs."""
    if hasattr(tokens, "detach"):
        tokens = tokens.detach().cpu().numpy()
    return np.asarray(tokens, dtype=np.int32).reshape(1, -1)


def waveform_row(wav: np.ndarray) -> np.ndarray:
    """(T,) audio -> (1, T) float32, the wire form of ``waveform``."""
    return np.ascontiguousarray(np.asarray(wav, dtype=np.float32).reshape(1, -1))


def answer_batch(
    requests: Sequence[Any],
    parse: Callable[[Any], Any],
    run: Callable[[list[Any]], Sequence[Any]],
    respond: Callable[[Any], Any],
    fail: Callable[[BaseException], Any],
) -> list[Any]:
    """One response per request of a dynamic batch, in order.

    ``parse(request)`` extracts one item (a ValueError or RequestCancelled answers that request
    alone); ``run(items)``
    processes the parsed items together and returns one output each, where an output that is an
    exception answers its request alone; an exception raised by ``run`` answers the whole batch.
    ``respond(output)`` and ``fail(exception)`` build the responses.
    """
    responses: list[Any] = [None] * len(requests)
    items, indices = [], []
    for index, request in enumerate(requests):
        try:
            items.append(parse(request))
            indices.append(index)
        except (ValueError, RequestCancelled) as exc:
            responses[index] = fail(exc)
    if items:
        try:
            outputs = run(items)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            outputs = [exc] * len(items)
        for index, output in zip(indices, outputs, strict=True):
            responses[index] = fail(output) if isinstance(output, BaseException) else respond(output)
    return responses


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """(message, is_invalid_input) for an error response: ValueError is the client's fault and gets
    the ``invalid input:`` prefix that clients map to their invalid-input error; anything else is a
    backend failure.
    """
    if isinstance(exc, ValueError):
        return INVALID_INPUT_PREFIX + str(exc), True
    return f"{type(exc).__name__}: {exc}", False


def stream_batching_enabled(parameters: Mapping[str, str]) -> bool:
    """``stream_batching`` model parameter: "true" (the default) decodes concurrent streams of the
    python LLM together (``StreamBatcher``), "false" keeps one decode per request thread."""
    value = parameters.get("stream_batching", "true") or "true"
    if value not in ("true", "false"):
        raise ValueError(f"model parameter stream_batching must be true or false, got {value!r}")
    return value == "true"
