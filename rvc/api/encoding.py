"""Response bodies of the synthesis routes: WAV headers, multipart/mixed parts and SSE events.

Encoding runs in a worker thread (``asyncio.to_thread``) because a long WAV
takes milliseconds to encode and the event loop serves other clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np

from rvc.audio import encode_wav
from rvc.processing.pipeline import SentenceAudio, SynthesisResult

__all__ = [
    "multipart_closing",
    "multipart_error_part",
    "multipart_part",
    "result_headers",
    "sentence_event",
    "wav_bytes",
]


async def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    return await asyncio.to_thread(encode_wav, audio, sample_rate)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


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
    if demo:
        headers["X-Demo-Assets"] = "random weights: output is noise until real assets are installed"
    return headers


def multipart_part(boundary: str, sentence: SentenceAudio, body: bytes) -> bytes:
    """One ``audio/wav`` part of the multipart/mixed stream, headers as the seed's clients read them."""
    headers = [
        "Content-Type: audio/wav",
        f"Content-Length: {len(body)}",
        f"X-Sentence-Index: {sentence.index}",
        f"X-TTS-Time: {_seconds(sentence.tts_time)}",
        f"X-RVC-Time: {_seconds(sentence.rvc_time)}",
        f"X-Audio-Duration: {_seconds(sentence.duration_s)}",
        f"X-Sample-Rate: {sentence.sample_rate}",
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


def sentence_event(sentence: SentenceAudio, body: bytes) -> dict[str, Any]:
    """The ``chunk`` event's data: a base64 WAV of one sentence and its timings."""
    return {
        "index": sentence.index,
        "text": sentence.text,
        "audio": base64.b64encode(body).decode("ascii"),
        "format": "wav",
        "sample_rate": sentence.sample_rate,
        "duration": round(sentence.duration_s, 3),
        "tts_time": round(sentence.tts_time, 3),
        "rvc_time": round(sentence.rvc_time, 3),
        "warnings": list(sentence.warnings),
    }
