"""What each RVC inference profile changes, importable without torch (the gateway reports it).

A profile names an official WebUI release whose inference the service follows (README "RVC
inference profiles"). Only the two steps that change the audio beyond rounding differ here; the
HuBERT folder layout and the device rule of ``2026`` are asset and placement choices made at
start (``rvc.assets``, ``rvc.device``), not per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rvc.infer.params import DEFAULT_PROFILE, PROFILES

__all__ = ["DEFAULT_PROFILE", "PROFILES", "InferenceProfile", "SinePhase", "profile_named"]

# "running_sum": the phase as an exact running sum (the November 2024 SineGen, in 20240604);
# "interpolated": the older form that upsamples a frame-rate cumulative sum (main, July 2026).
SinePhase = Literal["running_sum", "interpolated"]


@dataclass(frozen=True)
class InferenceProfile:
    """fill_unvoiced: interpolate f0 through unvoiced frames before the key shift (``pitch_fill.py``)."""

    name: str
    fill_unvoiced: bool
    sine_phase: SinePhase


_PROFILES = {
    "2026": InferenceProfile("2026", fill_unvoiced=True, sine_phase="interpolated"),
    "2024": InferenceProfile("2024", fill_unvoiced=False, sine_phase="running_sum"),
}
assert tuple(_PROFILES) == PROFILES  # one list of names, in params.py


def profile_named(name: str | None, default: str = DEFAULT_PROFILE) -> InferenceProfile:
    """The profile ``name`` (None: ``default``); ValueError for a name that is not one (checked at entry)."""
    chosen = default if name is None else name
    try:
        return _PROFILES[chosen]
    except KeyError:
        raise ValueError(f"RVC profile must be one of {', '.join(PROFILES)}, got {chosen!r}") from None
