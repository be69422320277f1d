"""Which output a request wants (``format`` field or ``Accept`` header, ``sample_rate``, ``speed``),
and the response headers that describe what it got.

The ``format`` field wins over ``Accept``; an ``Accept`` that names no
audio type we make (``*/*``, ``application/json``...) leaves the seed's
default, WAV PCM16 at the voice's own rate. Encoding itself lives in
``rvc.processing.formats`` and runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
from fastapi import Form, Header

from rvc.errors import InvalidInput
from rvc.processing.formats import FORMATS, MAX_OUTPUT_RATE, MAX_SPEED, MIN_OUTPUT_RATE, MIN_SPEED, OutputSpec

__all__ = ["FORMAT_ALIASES", "content_type", "encode_body", "negotiate_format", "output_form", "output_headers"]

FORMAT_ALIASES = {"ogg": "opus", "wav_pcm16": "wav", "wav_f32": "wav_float", "raw": "pcm", "pcm16": "pcm"}

_ACCEPT_TYPES = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/flac": "flac", "audio/x-flac": "flac", "audio/ogg": "opus", "audio/opus": "opus",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/aac": "aac", "audio/x-aac": "aac",
    "audio/pcm": "pcm", "audio/l16": "pcm",
}


def _format_name(value: str) -> str:
    name = value.strip().lower()
    name = FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise InvalidInput(f"unknown format {value!r}; use one of {', '.join(FORMATS)}", field="format")
    return name


FORMAT_DESCRIPTION = (
    "wav (PCM16, default), wav_float, flac, opus (Ogg), mp3, aac or pcm (raw s16le); or an Accept header such as audio/mpeg"
)


def negotiate_format(explicit: str | None, accept: str | None, *, default: str = "wav") -> str:
    """The format named by the field, else the best-q audio type in ``Accept``, else ``default``."""
    if explicit:
        return _format_name(explicit)
    best, best_q = default, 0.0
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        name = _ACCEPT_TYPES.get(media.lower())
        if name is None:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = name, q
    return best


def output_form(
    format: Annotated[
        str | None,
        Form(description=FORMAT_DESCRIPTION),
    ] = None,
    sample_rate: Annotated[
        int | None,
        Form(ge=MIN_OUTPUT_RATE, le=MAX_OUTPUT_RATE, description="output rate in Hz (soxr); default: the voice's"),
    ] = None,
    speed: Annotated[
        float | None,
        Form(ge=MIN_SPEED, le=MAX_SPEED, description="tempo, pitch kept (WSOLA time stretch); 1.0 = untouched"),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> OutputSpec:
    return OutputSpec(
        format=negotiate_format(format, accept),  # type: ignore[arg-type]
        sample_rate=sample_rate,
        speed=1.0 if speed is None else speed,
    )


def content_type(spec: OutputSpec, rate: int) -> str:
    if spec.format == "pcm":
        return f"audio/pcm;rate={rate};channels=1;encoding=s16le"
    return spec.info.media_type


def output_headers(spec: OutputSpec, rate: int, seconds: float | None = None) -> dict[str, str]:
    headers = {"X-Sample-Rate": str(rate), "X-Audio-Format": spec.format}
    if seconds is not None:
        headers["X-Audio-Duration"] = f"{seconds:.3f}"
    return headers


async def encode_body(spec: OutputSpec, audio: np.ndarray, source_rate: int) -> tuple[bytes, int, float]:
    """(file bytes, their sample rate, seconds of audio after the time stretch), off the event loop."""
    body, rate = await asyncio.to_thread(spec.encode, audio, source_rate)
    return body, rate, round(audio.size / spec.speed) / source_rate
