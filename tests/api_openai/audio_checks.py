"""Decoding helpers shared by the format tests: every format back to (samples, rate) with PyAV or soundfile."""

from __future__ import annotations

import io

import av
import numpy as np
import soundfile as sf


def decode_any(data: bytes, fmt: str, *, pcm_rate: int | None = None, streamed: bool = False) -> tuple[np.ndarray, int]:
    """(T,) float32 samples and the rate of an encoded body; ``pcm`` needs its rate from the header.

    A streamed FLAC leaves its total length 0 ("unknown", valid FLAC) because it cannot seek back;
    soundfile cannot size its read for that, so streamed FLAC goes through PyAV.
    """
    if fmt == "pcm":
        if pcm_rate is None:
            raise ValueError("raw PCM carries no rate: pass pcm_rate from the X-Sample-Rate header")
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, pcm_rate
    if fmt in ("wav", "wav_float") or (fmt == "flac" and not streamed):
        samples, rate = sf.read(io.BytesIO(data), dtype="float32")
        return np.asarray(samples, dtype=np.float32).reshape(-1), int(rate)
    return decode_pyav(data)


def decode_pyav(data: bytes, container_format: str | None = None) -> tuple[np.ndarray, int]:
    pieces, rate = [], 0
    with av.open(io.BytesIO(data), format=container_format) as container:
        for frame in container.decode(audio=0):
            pieces.append(frame.to_ndarray().astype(np.float32).reshape(frame.layout.nb_channels, -1)[0])
            rate = frame.sample_rate
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), rate


# Encoders prime and pad: MP3 and AAC without a seekable header add up to ~3 frames; Ogg/Opus trims exactly.
DURATION_SLACK_S = {"mp3": 0.08, "aac": 0.08, "opus": 0.03}


def sine(seconds: float, rate: int, frequency: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)
