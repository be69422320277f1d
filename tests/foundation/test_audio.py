"""Audio I/O: every upload shape becomes mono float32; bad audio is refused with a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from rvc.audio import decode_audio, encode_wav, resample
from rvc.errors import InvalidInput


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels", "tolerance"),
    [("WAV", "PCM_16", 16000, 1, 1e-4), ("WAV", "PCM_24", 44100, 2, 1e-6), ("WAV", "FLOAT", 48000, 1, 0.0),
     ("WAV", "PCM_U8", 8000, 1, 1e-2), ("FLAC", "PCM_16", 22050, 2, 1e-4), ("OGG", "VORBIS", 32000, 1, 0.1),
     ("MP3", "MPEG_LAYER_III", 44100, 2, 0.2)],
)
def test_decodes_formats_rates_depths_and_channels(
    fmt: str, subtype: str, rate: int, channels: int, tolerance: float
) -> None:
    source = tone(1.0, rate, channels)
    wav, sample_rate = decode_audio(encode(source, rate, fmt, subtype))
    assert sample_rate == rate
    assert wav.dtype == np.float32 and wav.ndim == 1
    expected = source if channels == 1 else source.mean(axis=1)
    if fmt in ("OGG", "MP3"):  # lossy codecs add delay/padding: compare energy, not samples
        assert abs(wav.size - expected.size) < 0.1 * rate
        assert abs(np.sqrt(np.mean(wav**2)) - np.sqrt(np.mean(expected**2))) < tolerance
    else:
        np.testing.assert_allclose(wav, expected, atol=tolerance)


def test_resamples_to_the_target_rate() -> None:
    wav, rate = decode_audio(encode(tone(2.0, 44100), 44100, "WAV", "PCM_16"), target_sample_rate=16000)
    assert rate == 16000 and wav.size == 32000


def test_resample_identity_and_length() -> None:
    wav = tone(1.0, 16000)
    assert resample(wav, 16000, 16000) is wav
    assert resample(wav, 16000, 40000).size == 40000


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"RIFF\x00\x00\x00\x00WAVEjunkjunk", "could not be decoded"),
     (b"hello, this is not audio at all" * 10, "could not be decoded")],
)
def test_refuses_empty_and_corrupt_uploads(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_audio(data)


def test_refuses_zero_length_audio() -> None:
    with pytest.raises(InvalidInput, match="no samples"):
        decode_audio(encode(np.zeros(0, np.float32), 16000, "WAV", "PCM_16"))


def test_refuses_non_finite_samples() -> None:
    samples = tone(0.5, 16000)
    samples[100] = np.nan
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        decode_audio(encode(samples, 16000, "WAV", "FLOAT"))


def test_refuses_over_long_audio_before_decoding_it() -> None:
    with pytest.raises(InvalidInput, match="limit is 1 s"):
        decode_audio(encode(tone(2.0, 16000), 16000, "WAV", "PCM_16"), max_seconds=1.0)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_encode_wav_round_trip(subtype: str) -> None:
    source = tone(0.5, 24000)
    data = encode_wav(source, 24000, subtype=subtype)  # type: ignore[arg-type]
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == 24000 and info.subtype == subtype
    wav, _ = decode_audio(data)
    np.testing.assert_allclose(wav, source, atol=1e-4 if subtype == "PCM_16" else 0)


def test_encode_pcm16_clips_instead_of_wrapping() -> None:
    wav, _ = decode_audio(encode_wav(np.array([2.0, -2.0, 0.5], np.float32), 16000))
    assert wav[0] > 0.99 and wav[1] < -0.99
