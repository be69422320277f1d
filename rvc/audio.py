"""Audio in and out of the service: uploads to mono float32, resampling, WAV bytes.

Everything the models see goes through ``decode_audio`` first, so a bad
upload is rejected here, once, with a message that tells the client what to
fix, instead of surfacing as a shape error deep inside a model.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from rvc.errors import InvalidInput

__all__ = ["decode_audio", "encode_wav", "resample", "validate_waveform"]

WavSubtype = Literal["PCM_16", "FLOAT"]

_MIN_SAMPLE_RATE = 1000
_MAX_SAMPLE_RATE = 384_000


def decode_audio(
    data: bytes,
    *,
    max_seconds: float | None = None,
    target_sample_rate: int | None = None,
    field: str = "audio",
) -> tuple[np.ndarray, int]:
    """Decode WAV / FLAC / OGG (and MP3 where libsndfile reads it) bytes.

    Returns ``(wav, sample_rate)``: wav is (T,) float32 in [-1, 1], channels
    averaged to mono, resampled to ``target_sample_rate`` when given.
    Raises InvalidInput for empty, unreadable, non-finite or over-long audio.
    """
    if not data:
        raise InvalidInput(f"{field} is empty: upload a WAV, FLAC, OGG or MP3 file", field=field)
    try:
        with sf.SoundFile(io.BytesIO(data)) as sound:
            sample_rate = int(sound.samplerate)
            frames = sound.frames
            if max_seconds is not None and sample_rate > 0 and frames / sample_rate > max_seconds:
                raise InvalidInput(
                    f"{field} is {frames / sample_rate:.1f} s long; the limit is {max_seconds:g} s",
                    field=field,
                )
            wav = sound.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise InvalidInput(
            f"{field} could not be decoded ({exc.error_string}); send WAV, FLAC, OGG or MP3", field=field
        ) from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} could not be decoded ({exc}); send WAV, FLAC, OGG or MP3", field=field) from exc
    if not _MIN_SAMPLE_RATE <= sample_rate <= _MAX_SAMPLE_RATE:
        raise InvalidInput(f"{field} has an unsupported sample rate of {sample_rate} Hz", field=field)
    mono = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    validate_waveform(mono, sample_rate, max_seconds=max_seconds, field=field)
    if target_sample_rate is not None and target_sample_rate != sample_rate:
        mono = resample(mono, sample_rate, target_sample_rate)
        sample_rate = target_sample_rate
    return np.ascontiguousarray(mono, dtype=np.float32), sample_rate


def validate_waveform(
    wav: np.ndarray, sample_rate: int, *, max_seconds: float | None = None, field: str = "audio"
) -> None:
    """Reject audio no model can use: not 1-D, empty, NaN/inf, or longer than the limit."""
    if wav.ndim != 1:
        raise InvalidInput(f"{field} must be mono 1-D audio, got shape {tuple(wav.shape)}", field=field)
    if wav.size == 0:
        raise InvalidInput(f"{field} contains no samples", field=field)
    if not np.isfinite(wav).all():
        raise InvalidInput(f"{field} contains NaN or infinite samples", field=field)
    if max_seconds is not None and wav.size / sample_rate > max_seconds:
        raise InvalidInput(
            f"{field} is {wav.size / sample_rate:.1f} s long; the limit is {max_seconds:g} s", field=field
        )


def resample(wav: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample (T,) float32 audio with soxr's high quality; a no-op at equal rates."""
    if source_rate == target_rate:
        return wav
    if source_rate <= 0 or target_rate <= 0:
        raise InvalidInput(f"sample rates must be positive, got {source_rate} -> {target_rate}")
    return soxr.resample(wav, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def encode_wav(wav: np.ndarray, sample_rate: int, *, subtype: WavSubtype = "PCM_16") -> bytes:
    """(T,) float audio -> WAV file bytes. PCM_16 clips to [-1, 1]; FLOAT keeps values as they are."""
    if subtype not in ("PCM_16", "FLOAT"):
        raise InvalidInput(f"unknown WAV subtype {subtype!r}; use PCM_16 or FLOAT")
    samples = np.asarray(wav, dtype=np.float32).reshape(-1)
    if subtype == "PCM_16":
        samples = np.clip(samples, -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()
