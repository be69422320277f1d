"""Unvoiced pitch filled in, as the official WebUI's ``main`` does since its July 2026 rewrite.

``main`` (``infer/vc/pipeline.py``, ``Pipeline.get_f0``) replaces every f0 == 0 frame by the
linear interpolation between its voiced neighbours before the key shift, for every f0 method:
frames before the first voiced one take its value, frames after the last voiced one take that,
and a curve with no voiced frame stays all zeros (``np.interp`` raises there, and main catches
it). What follows for the voice: the pitch is positive everywhere, so ``protect`` has no effect
(its mask keys on f0 == 0), the coarse pitch is never bin 1, and the NSF sine source runs through
consonants and silence. The ``2024`` profile does not call this.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fill_unvoiced"]


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """(T,) f0 in Hz, 0 = unvoiced -> a copy of the same dtype with every 0 interpolated (see module)."""
    filled = np.array(f0, copy=True)
    unvoiced = filled == 0
    if unvoiced.all() or not unvoiced.any():
        return filled
    voiced_at = np.flatnonzero(~unvoiced)
    # main assigns float64 interpolants into the estimator's own array: the cast is the reference's
    filled[unvoiced] = np.interp(np.flatnonzero(unvoiced), voiced_at, filled[voiced_at])
    return filled
