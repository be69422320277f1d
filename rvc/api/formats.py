"""Which output a request wants (``format`` field or ``Accept`` header, ``sample_rate``, ``speed``),
and the response headers that describe what it got.

The ``format`` field wins over ``Accept``; an ``Accept`` that names no
audio type we make (``*/*``, ``application/json``...) leaves the seed's
default, WAV PCM16 at the voice's own rate. Encoding itself lives in
``rvc.processing.formats`` and runs in a worker thread.
"""

from __future__ import annotations

import asyncio

import numpy as np

from rvc.errors import InvalidInput
from rvc.processing.formats import FORMATS, OutputSpec

__all__ = ["FORMAT_ALIASES", "content_type", "encode_body", "negotiate_format", "output_headers", "output_spec"]

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


def output_spec(
    format: str | None, sample_rate: int | None, speed: float | None, *, accept: str | None = None,
    default: str = "wav",
) -> OutputSpec:
    """What the client asked for: ``format`` (or ``Accept``, else ``default``) at ``sample_rate`` and ``speed``."""
    return OutputSpec(
        format=negotiate_format(format, accept, default=default),  # type: ignore[arg-type]  # checked in FORMATS
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
