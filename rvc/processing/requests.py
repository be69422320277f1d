"""Request assembly: what a client sent, turned into a checked ``SynthesisRequest`` or ``ConversionRequest``.

Every route family (the seed's form routes, OpenAI's JSON route) parses its
own wire format and then comes here, so the rules are stated once: the text
limit, which voice and which reference clip win, and how request fields,
a saved voice's parameters and the stored defaults merge (request over voice
over stored defaults; naming an RVC model turns RVC on).

Text goes through three steps in this order: the length limit on the text as
sent (a client can count what it sends; words written out from ``$3.50`` or a
date run two to three times longer, and the sentence split keeps each TTS call
short whatever the length), then normalisation (``rvc.processing.normalize``,
unless the request says ``normalize=false``), then the sentence split, whose
"nothing speakable" check sees the normalised text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import get_args

import numpy as np

from rvc.audio import decode_audio, resample
from rvc.errors import InvalidInput
from rvc.grpc.wire import Speaker, VoiceDesign
from rvc.processing.contract import (
    Gender,
    RequestOptions,
    SynthesisDefaults,
    SynthesisOverrides,
    Target,
    fields_for,
)
from rvc.processing.normalize import normalize_text
from rvc.processing.pipeline import SynthesisRequest
from rvc.processing.sentences import split_sentences
from rvc.processing.services import VoiceSelection, VoiceServices

__all__ = [
    "MIN_REFERENCE_SECONDS",
    "OPENAI_INPUT_LIMIT",
    "TTS_RATE",
    "ConversionRequest",
    "ResolvedVoice",
    "SpokenText",
    "TextLimit",
    "VoiceDesign",
    "VoiceFields",
    "build_conversion",
    "build_request",
    "check_reference",
    "decode_clip",
    "voice_design",
    "decode_reference",
    "resolve_voice",
    "service_text_limit",
    "spoken_text",
]

MIN_REFERENCE_SECONDS = 0.5
SILENT_REFERENCE_RMS = 1e-4
TTS_RATE = 16000  # Spark-TTS's rate: references are decoded to it once, at entry


@dataclass(frozen=True)
class TextLimit:
    """The longest text a route accepts, the field that carries it and what to do when it is over."""

    max_chars: int
    field: str = "text"
    source: str = "MAX_TEXT_CHARS"
    advice: str = "split it into several requests or use /synthesize/stream"


OPENAI_INPUT_LIMIT = TextLimit(4096, field="input", source="OpenAI's input limit", advice="split it into several requests")


def service_text_limit(services: VoiceServices) -> TextLimit:
    return TextLimit(services.settings.max_text_chars)


@dataclass(frozen=True, kw_only=True)
class VoiceFields:
    """What a request says about its voice and parameters; ``overrides`` holds only the fields it set."""

    overrides: SynthesisOverrides
    voice: str | None = None
    rvc_model: str | None = None
    seed: int | None = None
    normalize: bool | None = None  # None: the contract's default (on)
    design: VoiceDesign | None = None  # voice attributes instead of a clip (``voice_design``)


DESIGN_FIELDS = tuple(fields_for(RequestOptions, Target.VOICE))  # gender, pitch, speed_level


def voice_design(values: dict[str, object]) -> VoiceDesign | None:
    """The designed-voice fields a request sent (already checked against the contract's values) ->
    VoiceDesign, None when it sent none; pitch or speed_level without gender is the client's to fix."""
    sent = {name: values[name] for name in DESIGN_FIELDS if values.get(name) is not None}
    if not sent:
        return None
    if "gender" not in sent:
        allowed = " or ".join(get_args(Gender))
        raise InvalidInput(f"{' and '.join(sent)} design a voice, which also needs gender ({allowed})", field="gender")
    return VoiceDesign(**{name: str(value) for name, value in sent.items()})


@dataclass(frozen=True)
class ConversionRequest:
    """An RVC-only job: the merged parameters and the model to convert with."""

    settings: SynthesisDefaults
    rvc_model: str | None
    seed: int | None


async def decode_clip(data: bytes, *, field: str, max_seconds: float, rate: int | None = None) -> tuple[np.ndarray, int]:
    """An uploaded audio file as (T,) float32 mono and its rate (``rate`` when given), decoded off the event loop."""
    return await asyncio.to_thread(decode_audio, data, max_seconds=max_seconds, target_sample_rate=rate, field=field)


async def decode_reference(data: bytes, services: VoiceServices) -> np.ndarray:
    """A reference clip upload as (T,) float32 at 16 kHz, checked for length and silence."""
    clip, _ = await decode_clip(
        data, field="reference_audio", max_seconds=services.settings.max_reference_seconds, rate=TTS_RATE
    )
    check_reference(clip)
    return clip


def check_reference(reference: np.ndarray) -> None:
    """reference: (T,) float32 at 16 kHz; too short or silent is the client's to fix."""
    seconds = reference.size / TTS_RATE
    if seconds < MIN_REFERENCE_SECONDS:
        raise InvalidInput(
            f"reference_audio is {seconds:.2f} s long; give at least {MIN_REFERENCE_SECONDS:g} s of speech",
            field="reference_audio",
        )
    if float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) < SILENT_REFERENCE_RMS:
        raise InvalidInput("reference_audio is silent: record some speech", field="reference_audio")


@dataclass(frozen=True)
class SpokenText:
    """The text's sentences, and the whole text as spoken when it was normalised."""

    sentences: tuple[str, ...]
    normalized: str | None


_NORMALIZE_DEFAULT: bool = RequestOptions.model_fields["normalize"].default


async def spoken_text(text: str, limit: TextLimit, *, normalize: bool | None = None) -> SpokenText:
    """Check ``text`` against ``limit``, normalise it (unless ``normalize`` is False) and split it into sentences.

    Normalisation runs off the event loop: a text at the length limit takes
    tens of milliseconds (README, "Text normalisation"), long enough to stall
    every other request if it ran on the loop.
    """
    text = text.strip()
    if not text:
        raise InvalidInput(f"{limit.field} is empty: give the words to speak", field=limit.field)
    if len(text) > limit.max_chars:
        raise InvalidInput(
            f"{limit.field} is {len(text)} characters; the limit is {limit.max_chars} ({limit.source}): "
            f"{limit.advice}",
            field=limit.field,
        )
    if normalize is None:
        normalize = _NORMALIZE_DEFAULT
    normalized = await asyncio.to_thread(normalize_text, text) if normalize else None
    sentences = tuple(split_sentences(normalized if normalized is not None else text))
    if not sentences:
        raise InvalidInput(f"{limit.field} has nothing speakable: it needs letters or digits", field=limit.field)
    return SpokenText(sentences, normalized)


async def build_request(
    text: str,
    fields: VoiceFields,
    services: VoiceServices,
    *,
    limit: TextLimit,
    reference: bytes | None = None,
    skip_rvc: bool = False,
) -> SynthesisRequest:
    """Check (and normalise) the text, then the voice (``resolve_voice``)."""
    spoken = await spoken_text(text, limit, normalize=fields.normalize)
    voice = await resolve_voice(fields, services, reference=reference, skip_rvc=skip_rvc)
    return SynthesisRequest(
        spoken.sentences, voice.speaker, voice.settings, rvc_model=voice.rvc_model, seed=fields.seed,
        normalized_text=spoken.normalized,
    )


@dataclass(frozen=True)
class ResolvedVoice:
    """Who speaks and how, before any text: what a WebSocket session fixes at its start."""

    speaker: Speaker  # a clip (T,) float32 at 16 kHz, stored speaker tokens, or voice attributes
    settings: SynthesisDefaults
    rvc_model: str | None


async def resolve_voice(
    fields: VoiceFields, services: VoiceServices, *, reference: bytes | None = None, skip_rvc: bool = False
) -> ResolvedVoice:
    """Check the reference; merge request fields over the saved voice's over the stored defaults.

    Who speaks is the uploaded file (``reference``), else the request's voice
    attributes (a designed voice, new on every unseeded call), else the saved
    voice's stored speaker tokens (a voice designed once, or its clip
    tokenized once), else its clip, else the stored default clip. An upload
    or attributes replace the voice's clip, so its transcript is dropped.
    """
    if reference is not None and fields.design is not None:
        raise InvalidInput("send either reference_audio (clone a clip) or gender/pitch/speed_level (design a "
                           "voice), not both", field="gender")
    selection = await services.select_voice(fields.voice, fields.rvc_model)
    voice_overrides = selection.overrides
    if reference is not None or fields.design is not None:
        voice_overrides = voice_overrides.merged(reference_text=None)
    speaker = await _speaker(fields, selection, services, reference)
    resolved = _resolve(fields, voice_overrides.apply(await services.stored_defaults()))
    if skip_rvc:
        resolved = resolved.model_copy(update={"skip_rvc": True})
    return ResolvedVoice(speaker, resolved, selection.rvc_model)


async def _speaker(
    fields: VoiceFields, selection: VoiceSelection, services: VoiceServices, reference: bytes | None
) -> Speaker:
    """Who speaks, in ``resolve_voice``'s order; a clip is checked for length and silence."""
    if fields.design is not None:
        return Speaker(design=fields.design)
    if reference is not None:
        clip, _ = await decode_clip(
            reference, field="reference_audio", max_seconds=services.settings.max_reference_seconds, rate=TTS_RATE
        )
    elif selection.global_tokens is not None:
        return Speaker(global_tokens=selection.global_tokens, semantic_tokens=selection.semantic_tokens)
    elif selection.reference_wav is not None:
        clip = selection.reference_wav
    else:
        stored = await asyncio.to_thread(services.store.reference)
        if stored is None:
            raise InvalidInput(
                "reference_audio is required: upload a clip, name a saved voice (voice=, GET /voices), design one "
                "(gender=, pitch=, speed_level=), or store a default with POST /config/reference-audio",
                field="reference_audio",
            )
        clip = await asyncio.to_thread(resample, stored.wav, stored.sample_rate, TTS_RATE)
    check_reference(clip)
    return Speaker(reference_wav=clip)


async def build_conversion(fields: VoiceFields, services: VoiceServices) -> ConversionRequest:
    """The parameters of an RVC-only request; a voice without an RVC model is the client's to fix."""
    selection = await services.select_voice(fields.voice, fields.rvc_model)
    settings = _resolve(fields, selection.overrides.apply(await services.stored_defaults()))
    if settings.skip_rvc:
        raise InvalidInput(
            f"voice {fields.voice!r} has no RVC model; name one with rvc_model to convert", field="voice"
        )
    return ConversionRequest(settings, selection.rvc_model, fields.seed)


def _resolve(fields: VoiceFields, base: SynthesisDefaults) -> SynthesisDefaults:
    """Request fields over ``base``; naming an RVC model turns RVC on unless the request says skip_rvc."""
    given = fields.overrides.given()
    resolved = base.model_copy(update=given)
    if fields.rvc_model and "skip_rvc" not in given:
        resolved = resolved.model_copy(update={"skip_rvc": False})
    return resolved
