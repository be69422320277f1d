"""How far a reduced-precision output is from its float32 reference, in the two numbers we report.

``max_abs`` is the largest sample difference (what an int16 LSB count or a 1e-3 budget reads);
``rms_db`` is 20·log10(rms(error) / rms(reference)): how far under the signal the error sits on
average, which a max alone hides (one outlier sample and a uniformly loud error read alike).
Shared by ``bench_rvc.py`` and ``bench_bicodec.py`` so both print the same measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ErrorStats", "error_stats"]


@dataclass(frozen=True)
class ErrorStats:
    """``estimate`` against ``reference``: largest |difference| and RMS error in dB under the reference."""

    max_abs: float
    rms_db: float

    def cells(self) -> tuple[str, str]:
        """The two table cells: '1.9e-02' and '-31.0' (dB; '-inf' when identical)."""
        return f"{self.max_abs:.1e}", f"{self.rms_db:.1f}"


def error_stats(reference: np.ndarray, estimate: np.ndarray) -> ErrorStats:
    """Both arrays the same shape (any dtype); the reference must not be all zeros."""
    if reference.shape != estimate.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, estimate {estimate.shape}")
    reference64 = np.asarray(reference, dtype=np.float64)
    error = np.asarray(estimate, dtype=np.float64) - reference64
    reference_rms = math.sqrt(float(np.mean(reference64**2)))
    if reference_rms == 0.0:
        raise ValueError("the reference is silent: an error relative to it has no meaning")
    error_rms = math.sqrt(float(np.mean(error**2)))
    rms_db = 20 * math.log10(error_rms / reference_rms) if error_rms > 0 else -math.inf
    return ErrorStats(max_abs=float(np.max(np.abs(error))), rms_db=rms_db)
