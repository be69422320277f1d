"""The request contract: every tunable a client may send, declared once.

Each field below is the one declaration of a tunable (name, type, default,
range, help text). Everything else derives from it: the multipart form
fields and the OpenAI body (``rvc.api``), the stored defaults
(``POST /config``), a saved voice's overrides, the Triton TTS parameters and
the RVC worker's ``ConversionParams`` (``rvc.processing.backends``). A new
parameter is one field here plus the code that uses it.

``SynthesisDefaults`` holds the tunables that can be stored (as defaults or
in a saved voice); ``RequestOptions`` the per-request ones (seed, text
normalisation, output shape). The ``Target`` marker in a field's annotation
says which backend consumes it, so the backends pick their fields by marker,
not by a list.

Values are checked once, where they enter the service: JSON bodies
validate strictly (``true`` or ``"3"`` is not an integer; NaN and infinity
are refused), form fields are parsed from their text by the same
constraints. Past that point the models are trusted.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

__all__ = [
    "DESCRIPTION_MAX_CHARS",
    "RVC_MODEL_MAX_CHARS",
    "F0Method",
    "Gender",
    "RvcProfile",
    "Granularity",
    "Level",
    "RequestOptions",
    "SynthesisDefaults",
    "SynthesisOverrides",
    "Target",
    "constraints",
    "fields_for",
    "optional_fields",
]

F0Method = Literal["rmvpe", "fcpe", "pm", "harvest", "crepe"]
Gender = Literal["female", "male"]  # Spark-TTS's controllable mode (sparktts.prompts.GENDER; a test checks)
Level = Literal["very_low", "low", "moderate", "high", "very_high"]  # sparktts.prompts.LEVEL
Granularity = Literal["sentence", "chunk"]
RvcProfile = Literal["2026", "2024"]  # rvc.infer.params.PROFILES (tests/processing/test_contract.py ties the two)
RVC_MODEL_MAX_CHARS = 128  # an ``rvc_model`` field wherever it is sent (forms, OpenAI body, saved voices)
DESCRIPTION_MAX_CHARS = 500  # a saved voice's description


class Target(enum.Enum):
    """Which part of the service consumes a tunable."""

    TTS = "tts"  # a Spark-TTS sampling parameter (``TTSParams``)
    RVC = "rvc"  # an RVC conversion parameter (``ConversionParams``)
    PIPELINE = "pipeline"  # read by the pipeline itself (transcript, skip_rvc)
    OUTPUT = "output"  # shapes the response audio (``OutputSpec``)
    REQUEST = "request"  # belongs to one request only (seed)
    TEXT = "text"  # shapes the text before it is spoken (normalize); read by request assembly
    VOICE = "voice"  # says who speaks instead of a reference clip (a designed voice); read by request assembly


_STRICT = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SynthesisDefaults(BaseModel):
    """Every storable tunable of one synthesis with its default; the ranges are the API's contract."""

    model_config = _STRICT

    reference_text: Annotated[str, Target.PIPELINE] = Field(
        "", max_length=1000, strict=True, description="transcript of the reference clip (optional)"
    )
    pitch_shift: Annotated[int, Target.RVC] = Field(
        0, ge=-24, le=24, strict=True, description="semitones applied by RVC"
    )
    f0_method: Annotated[F0Method, Target.RVC] = Field(
        "rmvpe", description="pitch extractor used by RVC"
    )
    index_rate: Annotated[float, Target.RVC] = Field(
        0.75, ge=0.0, le=1.0, strict=True, description="how much of the voice's faiss index to blend in"
    )
    filter_radius: Annotated[int, Target.RVC] = Field(
        3, ge=0, le=7, strict=True, description="median filter radius for harvest f0"
    )
    rms_mix_rate: Annotated[float, Target.RVC] = Field(
        0.25, ge=0.0, le=1.0, strict=True, description="1 keeps the output's own loudness envelope"
    )
    protect: Annotated[float, Target.RVC] = Field(
        0.33, ge=0.0, le=0.5, strict=True, description="protects voiceless consonants; 0.5 disables"
    )
    rvc_profile: Annotated[RvcProfile | None, Target.RVC] = Field(
        None, description="RVC inference profile: 2026 (the official WebUI's main: unvoiced pitch filled, so "
                          "protect has no effect) or 2024 (the 20240604 release); unset: the service's RVC_PROFILE",
    )
    skip_rvc: Annotated[bool, Target.PIPELINE] = Field(
        False, strict=True, description="return the Spark-TTS voice without conversion"
    )
    temperature: Annotated[float, Target.TTS] = Field(
        0.8, gt=0.0, le=2.0, strict=True, description="Spark-TTS sampling temperature"
    )
    top_k: Annotated[int, Target.TTS] = Field(
        50, ge=1, le=10000, strict=True, description="Spark-TTS top-k sampling"
    )
    top_p: Annotated[float, Target.TTS] = Field(
        0.95, gt=0.0, le=1.0, strict=True, description="Spark-TTS nucleus sampling"
    )

    def values_for(self, target: Target) -> dict[str, Any]:
        """The fields ``target`` consumes, by name (``ConversionParams(**...)``, ``TTSParams(**...)``)."""
        return {name: getattr(self, name) for name in fields_for(type(self), target)}


class RequestOptions(BaseModel):
    """The tunables of one request that are never stored: the sampling seed, the text's handling, the output's shape."""

    model_config = _STRICT

    seed: Annotated[int | None, Target.REQUEST] = Field(
        None, ge=0, le=2**31 - 1, strict=True, description="fixes sampling for repeatable output"
    )
    normalize: Annotated[bool, Target.TEXT] = Field(
        True, strict=True,
        description="speak numbers, money, dates, times, units, abbreviations and symbols as words (English and "
                    "Chinese, by script); false sends the text as is. The spoken text comes back in "
                    "X-Normalized-Text (percent-encoded UTF-8) or the SSE start event's normalized_text",
    )
    format: Annotated[str | None, Target.OUTPUT] = Field(
        None, max_length=32, strict=True,
        description="wav (PCM16, default), wav_float, flac, opus (Ogg), mp3, aac or pcm (raw s16le); "
                    "or an Accept header such as audio/mpeg",
    )
    sample_rate: Annotated[int | None, Target.OUTPUT] = Field(
        None, ge=8000, le=48000, strict=True, description="output rate in Hz (soxr); default: the voice's"
    )
    speed: Annotated[float | None, Target.OUTPUT] = Field(
        None, ge=0.25, le=4.0, strict=True, description="tempo, pitch kept (WSOLA time stretch); 1.0 = untouched"
    )
    gender: Annotated[Gender | None, Target.VOICE] = Field(
        None, description="design a voice instead of cloning a clip (Spark-TTS's controllable mode): female or "
                          "male; without a seed every call invents a new voice, POST /voices keeps one",
    )
    pitch: Annotated[Level | None, Target.VOICE] = Field(
        None, description="a designed voice's pitch: very_low, low, moderate (default), high or very_high; needs gender",
    )
    speed_level: Annotated[Level | None, Target.VOICE] = Field(
        None, description="a designed voice's speaking rate: very_low, low, moderate (default), high or very_high; "
                          "needs gender (``speed`` stretches the output instead)",
    )
    granularity: Annotated[Granularity | None, Target.REQUEST] = Field(
        None, description="streaming routes: sentence (default: one part per sentence) or chunk (audio as it "
                          "leaves RVC, first sound after the first TTS chunk); OpenAI's stream_format implies chunk",
    )


def fields_for(model: type[BaseModel], *targets: Target) -> dict[str, FieldInfo]:
    """The declared fields of ``model`` marked with one of ``targets`` (all of them when none is given)."""
    return {
        name: info for name, info in model.model_fields.items()
        if not targets or any(marker in targets for marker in info.metadata if isinstance(marker, Target))
    }


_CONSTRAINTS = {Ge: "ge", Gt: "gt", Le: "le", Lt: "lt", MaxLen: "max_length"}


def constraints(info: FieldInfo) -> dict[str, Any]:
    """A declared field's range and length limits as keyword arguments (``ge=-24, le=24``), for form parameters."""
    found: dict[str, Any] = {}
    for marker in info.metadata:
        key = _CONSTRAINTS.get(type(marker))
        if key is not None:
            found[key] = getattr(marker, key)
    return found


def optional_fields(fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """``create_model`` definitions of ``fields`` made optional (default None) with the same checks and help."""
    return {
        name: (
            Annotated[info.annotation, *info.metadata] | None,  # a type built at runtime
            Field(None, description=info.description),
        )
        for name, info in fields.items()
    }


class _Overrides(BaseModel):
    """Fields a request, ``POST /config`` or a saved voice sets; None means "use the default"."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def given(self) -> dict[str, Any]:
        """The fields that were set (not None), by name."""
        return {name: value for name, value in self.model_dump().items() if value is not None}

    def apply(self, defaults: SynthesisDefaults) -> SynthesisDefaults:
        return defaults.model_copy(update=self.given())

    def merged(self, **changes: Any) -> Self:
        """A copy with ``changes`` set (None clears a field); the values come from trusted code."""
        return self.model_copy(update=changes)


if TYPE_CHECKING:  # the type checker sees the base: fields are read by name (``given()``), never as attributes
    SynthesisOverrides = _Overrides
else:
    SynthesisOverrides = create_model(  # every SynthesisDefaults field, optional
        "SynthesisOverrides", __base__=_Overrides, __module__=__name__,
        **optional_fields(fields_for(SynthesisDefaults)),
    )
