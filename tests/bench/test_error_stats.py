"""The precision benches' error measure: max |difference| and RMS error in dB under the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.error_stats import error_stats


def test_an_error_a_tenth_of_the_signal_reads_minus_20_db() -> None:
    reference = np.sin(np.linspace(0, 20 * np.pi, 4000))
    stats = error_stats(reference, 1.1 * reference)
    assert stats.rms_db == pytest.approx(-20.0)
    assert stats.max_abs == pytest.approx(0.1, rel=1e-3)
    assert stats.cells() == ("1.0e-01", "-20.0")


def test_one_outlier_sets_the_max_but_barely_the_rms() -> None:
    reference = np.ones(10_000, dtype=np.float32)
    estimate = reference.copy()
    estimate[1234] += 0.5
    stats = error_stats(reference, estimate)
    assert stats.max_abs == pytest.approx(0.5)
    assert stats.rms_db == pytest.approx(20 * math.log10(0.5 / 100))


def test_identical_outputs_read_minus_infinity() -> None:
    reference = np.arange(1, 5, dtype=np.float32)
    assert error_stats(reference, reference.copy()).rms_db == -math.inf


@pytest.mark.parametrize(("reference", "estimate"), [(np.zeros(4), np.ones(4)), (np.ones(4), np.ones(5))])
def test_a_silent_reference_or_mismatched_shapes_are_refused(reference, estimate) -> None:
    with pytest.raises(ValueError):
        error_stats(reference, estimate)
