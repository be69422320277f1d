"""f0 methods: reference parity (rmvpe, pm), accuracy on tones and speech (pm, harvest, crepe), shifts, bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvc.errors import InvalidInput
from rvc.infer.f0 import coarse_pitch, estimate_f0, pitch_inputs, shift_f0

from .conftest import harmonic_tone


@pytest.fixture(scope="module")
def padded_hp_audio(pipeline_tiny: Path) -> np.ndarray:
    """The golden high-passed input, reflect-padded by 1 s as the pipeline hands it to get_f0 (float64)."""
    hp = np.load(pipeline_tiny / "expected_rmvpe.npz")["hp_audio_16k"]
    return np.pad(hp, (16000, 16000), mode="reflect")


def test_rmvpe_pitch_matches_pipeline_golden(padded_hp_audio, rmvpe_model, pipeline_tiny) -> None:
    golden = np.load(pipeline_tiny / "expected_rmvpe.npz")
    coarse, f0 = pitch_inputs(estimate_f0("rmvpe", padded_hp_audio, 600, rmvpe=rmvpe_model), pitch_shift=3)
    assert coarse.shape == f0.shape == (601,)
    np.testing.assert_array_equal(coarse, golden["pitch_full"])
    expected = golden["pitchf_full"]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    voiced = expected > 0
    assert np.all(np.abs(f0 - expected)[voiced] <= np.maximum(1e-3, 1e-6 * expected[voiced]))


def test_pm_pitch_matches_pipeline_golden(padded_hp_audio, pipeline_tiny) -> None:
    golden = np.load(pipeline_tiny / "expected_pm.npz")
    coarse, f0 = pitch_inputs(estimate_f0("pm", padded_hp_audio, 600), pitch_shift=3)
    assert coarse.shape == (600,)
    np.testing.assert_array_equal(coarse, golden["pitch_full"])
    np.testing.assert_allclose(f0, golden["pitchf_full"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["pm", "harvest", "crepe"])
def test_methods_find_a_220_hz_tone(method: str) -> None:
    tone = harmonic_tone(220.0, 1.0)
    f0 = estimate_f0(method, tone, tone.size // 160, crepe_model="tiny")
    middle = f0[20:-20]
    assert (middle > 0).all()
    assert np.abs(np.median(middle) / 220.0 - 1) < 0.02


def test_crepe_full_model_finds_a_tone() -> None:
    # the WebUI's setting; one short check of the packaged full-size weights
    tone = harmonic_tone(330.0, 0.5)
    f0 = estimate_f0("crepe", tone, tone.size // 160, crepe_model="full")
    assert np.abs(np.median(f0[10:-10]) / 330.0 - 1) < 0.02


def test_pm_harvest_and_crepe_track_espeak_speech_together(espeak_speech: np.ndarray) -> None:
    p_len = espeak_speech.size // 160
    curves = {
        m: estimate_f0(m, espeak_speech, p_len, crepe_model="tiny")[:p_len]
        for m in ("pm", "harvest", "crepe")
    }
    for method, f0 in curves.items():
        voiced = f0[f0 > 0]
        assert 0.4 < voiced.size / p_len < 0.95, method
        assert 60 < np.median(voiced) < 250, method
        assert np.percentile(voiced, 95) / np.percentile(voiced, 5) > 1.15, method  # intonation is followed
    common = np.logical_and.reduce([f0 > 0 for f0 in curves.values()])
    assert common.mean() > 0.4
    for a, b in (("pm", "harvest"), ("pm", "crepe"), ("harvest", "crepe")):
        cents = 1200 * np.abs(np.log2(curves[a][common] / curves[b][common]))
        assert np.mean(cents < 50) > 0.95, (a, b)


def test_pitch_shift_of_12_doubles_the_curve() -> None:
    tone = harmonic_tone(np.linspace(150.0, 250.0, 16000), 1.0)
    coarse0, f0 = pitch_inputs(estimate_f0("pm", tone, 100), pitch_shift=0)
    coarse12, f0_up = pitch_inputs(estimate_f0("pm", tone, 100), pitch_shift=12)
    np.testing.assert_array_equal(f0_up, 2 * f0)
    voiced = f0 > 0
    assert voiced.sum() > 80
    assert (coarse12[voiced] > coarse0[voiced]).all()
    np.testing.assert_allclose(shift_f0(np.array([100.0]), -12), [50.0])
    np.testing.assert_allclose(shift_f0(np.array([100.0]), 7), [100 * 2 ** (7 / 12)])


def test_coarse_bins_follow_reference_mel_mapping() -> None:
    f0 = np.array([0.0, 50.0, 100.0, 200.0, 440.0, 1100.0, 3000.0])
    np.testing.assert_array_equal(coarse_pitch(f0), [1, 1, 20, 54, 122, 255, 255])
    assert coarse_pitch(f0).dtype == np.int32


def test_unknown_method_and_missing_model_raise_invalid_input() -> None:
    tone = harmonic_tone(220.0, 0.2)
    with pytest.raises(InvalidInput, match="f0_method") as info:
        estimate_f0("yin", tone, 20)
    assert info.value.field == "f0_method"
    with pytest.raises(InvalidInput, match="RMVPE"):
        estimate_f0("rmvpe", tone, 20, rmvpe=None)
    with pytest.raises(InvalidInput, match="FCPE"):
        estimate_f0("fcpe", tone, 20, fcpe=None)
    with pytest.raises(InvalidInput, match="crepe model"):
        estimate_f0("crepe", tone, 20, crepe_model="huge")


def test_crepe_dithering_repeats_with_a_seed_and_leaves_numpy_rng_alone() -> None:
    tone = harmonic_tone(np.linspace(180.0, 240.0, 8000), 0.5)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = estimate_f0("crepe", tone, 50, crepe_model="tiny", seed=7)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(first, estimate_f0("crepe", tone, 50, crepe_model="tiny", seed=7))
