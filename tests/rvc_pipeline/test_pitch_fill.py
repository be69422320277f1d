"""The ``2026`` profile's unvoiced-pitch fill (main's ``Pipeline.get_f0``) and the profile table."""

from __future__ import annotations

import numpy as np
import pytest

from rvc.infer.f0 import estimate_f0, pitch_inputs
from rvc.infer.pitch_fill import fill_unvoiced
from rvc.infer.profiles import PROFILES, profile_named


def test_gaps_take_the_line_between_voiced_neighbours_and_edges_the_nearest() -> None:
    f0 = np.array([0, 0, 100, 0, 0, 0, 140, 0], dtype=np.float32)
    filled = fill_unvoiced(f0)
    np.testing.assert_allclose(filled, [100, 100, 100, 110, 120, 130, 140, 140])
    assert filled.dtype == np.float32 and f0[0] == 0  # a copy, in the estimator's dtype


@pytest.mark.parametrize("f0", [np.zeros(5), np.array([120.0, 130.0])])
def test_all_unvoiced_stays_zero_and_all_voiced_is_unchanged(f0: np.ndarray) -> None:
    np.testing.assert_array_equal(fill_unvoiced(f0), f0)


def test_fill_comes_before_the_key_shift_so_no_frame_is_coarse_bin_one() -> None:
    wave = np.zeros(16000)
    t = np.arange(6000) / 16000
    wave[:6000] = 0.3 * np.sin(2 * np.pi * 150 * t)  # voiced, then 0.6 s of silence
    f0 = estimate_f0("pm", wave, 100)
    coarse, shifted = pitch_inputs(f0, pitch_shift=12, fill=True)
    plain_coarse, plain = pitch_inputs(f0, pitch_shift=12)
    assert (plain == 0).any() and (plain_coarse == 1).any()
    assert (shifted > 0).all() and (coarse > 1).all()
    voiced = plain > 0
    np.testing.assert_array_equal(shifted[voiced], plain[voiced])


def test_profiles_say_what_differs() -> None:
    assert PROFILES == ("2026", "2024") and profile_named(None).name == "2026"
    assert profile_named("2026").fill_unvoiced and profile_named("2026").sine_phase == "interpolated"
    assert not profile_named("2024").fill_unvoiced and profile_named("2024").sine_phase == "running_sum"
    assert profile_named(None, default="2024").name == "2024"
    with pytest.raises(ValueError, match="2026, 2024"):
        profile_named("2025")
