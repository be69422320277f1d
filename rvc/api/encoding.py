"""Response bodies of the synthesis routes: timing headers, multipart/mixed parts and SSE events.

The audio inside them is encoded by ``rvc.api.formats.encode_body`` in a
worker thread, because a long file takes milliseconds to encode and the event
loop serves other clients.

``X-Normalized-Text`` carries the text as spoken after normalisation. HTTP
header values are ASCII in practice, so it is percent-encoded UTF-8 in which
printable ASCII other than ``%`` stays as it is: English stays readable, and
``urllib.parse.unquote`` or JavaScript's ``decodeURIComponent`` gives the text
back. Proxies cap the whole header block (nginx: 4 or 8 KiB by default), so
the value stops at ``NORMALIZED_HEADER_MAX`` bytes: a cut value ends in an
encoded "…" and ``X-Normalized-Text-Truncated: true`` says so; the full text
is in the SSE ``start`` event.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any
from urllib.parse import quote

from rvc.errors import VoiceError
from rvc.processing.chunk_output import RenderedChunk
from rvc.processing.pipeline import SentenceAudio, SynthesisResult

__all__ = [
    "DEMO_NOTICE",
    "chunk_event",
    "demo_headers",
    "multipart_chunk_part",
    "multipart_closing",
    "multipart_error_part",
    "multipart_part",
    "normalized_text_headers",
    "result_headers",
    "sentence_event",
    "sse_error_event",
]


def _seconds(value: float) -> str:
    return f"{value:.3f}"


NORMALIZED_HEADER_MAX = 2048  # bytes of the encoded value
_HEADER_SAFE = "".join(char for char in string.printable if char not in "%\t\n\r\x0b\x0c")
_CUT_MARKER = quote("…")


def normalized_text_headers(text: str | None) -> dict[str, str]:
    """``X-Normalized-Text`` (and ``X-Normalized-Text-Truncated`` when cut); none when the text was sent as is."""
    if text is None:
        return {}
    encoded = quote(text, safe=_HEADER_SAFE)
    if len(encoded) <= NORMALIZED_HEADER_MAX:
        return {"X-Normalized-Text": encoded}
    room, pieces = NORMALIZED_HEADER_MAX - len(_CUT_MARKER), []
    for char in text:  # cut between characters, never inside one's %XX sequence
        piece = quote(char, safe=_HEADER_SAFE)
        if len(piece) > room:
            break
        pieces.append(piece)
        room -= len(piece)
    return {"X-Normalized-Text": "".join(pieces) + _CUT_MARKER, "X-Normalized-Text-Truncated": "true"}


DEMO_NOTICE = "random weights: output is noise until real assets are installed"


def demo_headers(demo: bool) -> dict[str, str]:
    """``X-Demo-Assets`` while the service runs on generated assets, so a client knows why it hears noise."""
    return {"X-Demo-Assets": DEMO_NOTICE} if demo else {}


def result_headers(result: SynthesisResult, *, demo: bool) -> dict[str, str]:
    headers = {
        "X-TTS-Time": _seconds(result.tts_time),
        "X-RVC-Time": _seconds(result.rvc_time),
        "X-Total-Time": _seconds(result.total_time),
        "X-Audio-Duration": _seconds(result.audio.size / result.sample_rate),
        "X-Sentences": str(len(result.sentences)),
        "X-Sample-Rate": str(result.sample_rate),
    }
    if result.warnings:
        headers["X-Warnings"] = " | ".join(result.warnings)
    return headers | demo_headers(demo)


def multipart_part(
    boundary: str, sentence: SentenceAudio, body: bytes, *, media_type: str = "audio/wav",
    sample_rate: int | None = None, duration_s: float | None = None,
) -> bytes:
    """One audio part of the multipart/mixed stream, headers as the seed's clients read them.

    ``body`` is a complete file; sample_rate / duration_s describe it when the
    output was resampled or time-stretched (default: the sentence's own).
    """
    headers = [
        f"Content-Type: {media_type}",
        f"Content-Length: {len(body)}",
        f"X-Sentence-Index: {sentence.index}",
        f"X-TTS-Time: {_seconds(sentence.tts_time)}",
        f"X-RVC-Time: {_seconds(sentence.rvc_time)}",
        f"X-Audio-Duration: {_seconds(sentence.duration_s if duration_s is None else duration_s)}",
        f"X-Sample-Rate: {sentence.sample_rate if sample_rate is None else sample_rate}",
    ]
    if sentence.warnings:
        headers.append("X-Warnings: " + " | ".join(sentence.warnings))
    head = f"--{boundary}\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode() + body + b"\r\n"


def multipart_error_part(boundary: str, error: dict[str, Any]) -> bytes:
    body = json.dumps({"error": error}).encode()
    head = f"--{boundary}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Error: true\r\n\r\n"
    return head.encode() + body + b"\r\n"


def multipart_closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


def sse_error_event(error: VoiceError) -> dict[str, str]:
    """The SSE ``error`` event that ends a stream a failure cut short: the error envelope's object."""
    return {"event": "error", "data": json.dumps({"error": error.to_dict()})}


def sentence_event(
    sentence: SentenceAudio, body: bytes, *, audio_format: str = "wav", sample_rate: int | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """The ``chunk`` event's data: one sentence as a base64 file (default WAV) and its timings."""
    return {
        "index": sentence.index,
        "text": sentence.text,
        "audio": base64.b64encode(body).decode("ascii"),
        "format": audio_format,
        "sample_rate": sentence.sample_rate if sample_rate is None else sample_rate,
        "duration": round(sentence.duration_s if duration_s is None else duration_s, 3),
        "tts_time": round(sentence.tts_time, 3),
        "rvc_time": round(sentence.rvc_time, 3),
        "warnings": list(sentence.warnings),
    }


def multipart_chunk_part(boundary: str, chunk: RenderedChunk, media_type: str) -> bytes:
    """One part per chunk (granularity=chunk): where its samples sit in the output and when it left."""
    headers = [
        f"Content-Type: {media_type}",
        f"Content-Length: {len(chunk.body)}",
        f"X-Chunk-Index: {chunk.index}",
        f"X-Sentence-Index: {chunk.sentence}",
        f"X-Sample-Offset: {chunk.sample_offset}",
        f"X-Samples: {chunk.samples}",
        f"X-Sample-Rate: {chunk.sample_rate}",
        f"X-Elapsed: {_seconds(chunk.elapsed_s)}",
    ]
    head = f"--{boundary}\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode() + chunk.body + b"\r\n"


def chunk_event(chunk: RenderedChunk, audio_format: str) -> dict[str, Any]:
    """The ``chunk`` event's data in chunk mode (the streaming protocol's fields)."""
    return {
        "index": chunk.index,
        "sentence": chunk.sentence,
        "sample_offset": chunk.sample_offset,
        "samples": chunk.samples,
        "sample_rate": chunk.sample_rate,
        "format": audio_format,
        "audio": base64.b64encode(chunk.body).decode("ascii"),
        "elapsed_s": round(chunk.elapsed_s, 4),
        "timings": {"tts_s": round(chunk.tts_s, 4), "rvc_s": round(chunk.rvc_s, 4)},
    }
