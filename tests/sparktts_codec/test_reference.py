"""Reference handling (channel 0, soxr VHQ, volume normalisation, 6 s clip) against spark_tts_tiny goldens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sparktts.reference import audio_volume_normalize, load_reference, reference_clip


@pytest.fixture(scope="module")
def reference_wav(spark_tiny: Path) -> tuple[np.ndarray, int]:
    wav, sample_rate = sf.read(spark_tiny / "inputs" / "reference.wav")
    assert wav.shape == (84000, 2) and sample_rate == 24000
    return wav, sample_rate


def test_channel_zero_and_soxr_vhq_match_golden(reference_wav, tokenizer_golden) -> None:
    resampled = load_reference(*reference_wav, volume_normalize=False)
    assert resampled.dtype == np.float64 and resampled.shape == (56000,)
    assert np.abs(resampled - tokenizer_golden["wav_resampled"]).max() <= 1e-6


def test_volume_normalisation_keeps_the_stale_magnitudes_quirk(tokenizer_golden) -> None:
    processed = audio_volume_normalize(tokenizer_golden["wav_resampled"])
    assert np.abs(processed - tokenizer_golden["wav_processed"]).max() == 0.0
    assert np.abs(processed).max() == pytest.approx(0.436, abs=1e-3)


def test_quiet_clip_gain_uses_pre_rescale_magnitudes() -> None:
    audio = np.concatenate([np.full(100, 0.05), np.full(900, 0.02)])
    # peak 0.05 < 0.1: boost x2; then volume comes from the *original* magnitudes > 0.01
    loud = np.sort(np.abs(audio))
    volume = np.mean(loud[int(0.9 * 1000) : int(0.99 * 1000)])
    expected = audio / 0.05 * 0.1 * np.clip(0.2 / volume, 0.1, 10)
    expected = expected / np.abs(expected).max() if np.abs(expected).max() > 1 else expected
    out = audio_volume_normalize(audio)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out).max() == pytest.approx(0.4)  # recomputing magnitudes after the boost gives 0.2


def test_silence_is_left_unscaled_after_the_floor_boost() -> None:
    audio = np.full(50, 1e-4)
    np.testing.assert_allclose(audio_volume_normalize(audio), audio / 1e-3 * 0.1)


def test_short_clip_is_tiled_to_six_seconds(tokenizer_golden) -> None:
    clip = reference_clip(tokenizer_golden["wav_processed"], 96000).astype(np.float32)
    assert clip.shape == (96000,)
    np.testing.assert_array_equal(clip, tokenizer_golden["ref_clip"][0])


def test_long_clip_keeps_the_first_six_seconds() -> None:
    wav = np.arange(100_000, dtype=np.float64) / 1e5
    np.testing.assert_array_equal(reference_clip(wav, 96000), wav[:96000])


def test_prepare_reference_equals_the_official_load_audio(tokenizer, reference_wav, tokenizer_golden) -> None:
    prepared = tokenizer.prepare_reference(*reference_wav)
    assert prepared.dtype == np.float32 and prepared.shape == (56000,)
    assert np.abs(prepared - tokenizer_golden["wav_processed"]).max() <= 1e-6


def test_prepare_reference_mono_float32_input(tokenizer, reference_wav, tokenizer_golden) -> None:
    mono = reference_wav[0][:, 0].astype(np.float32)
    prepared = tokenizer.prepare_reference(mono, 24000)
    assert np.abs(prepared - tokenizer_golden["wav_processed"]).max() <= 1e-6


@pytest.mark.parametrize(
    ("wav", "sample_rate", "message"),
    [
        (np.zeros(0, np.float32), 16000, "0 samples"),
        (np.array([0.1, np.nan, 0.2], np.float32), 16000, "NaN"),
        (np.array([0.1, np.inf], np.float32), 16000, "NaN or infinite"),
        (np.zeros((2, 3, 4), np.float32), 16000, "1-D"),
        (np.zeros(100, np.int16), 16000, "dtype int16"),
        (np.zeros(100, np.float32), 0, "sample_rate"),
    ],
    ids=["empty", "nan", "inf", "3-d", "int", "rate"],
)
def test_bad_reference_audio_raises_value_error(tokenizer, wav, sample_rate: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokenizer.prepare_reference(wav, sample_rate)
