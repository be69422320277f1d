"""What a listener of a streamed response experiences, computed from when its audio arrived.

Pure functions (no I/O, no numpy) so ``tests/bench`` pins them and ``bench_streaming.py`` and any
other client share one definition:

- ``percentile``: linear interpolation between closest ranks (numpy's default), so p50 of two
  runs is their mean and p95 of a handful of runs does not just repeat the worst one.
- ``playback``: a player that starts at the first sample it receives and then plays at real
  time, stalling whenever the next sample has not arrived; the longest stall is the underrun a
  real-time client would hear ("continuity OK" = none over ``CONTINUITY_LIMIT_S``). A sentence
  stream that delivers sentence 2 after sentence 1 has finished playing stalls here even though
  its first audio came early: the metric chunked streaming has to win on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CONTINUITY_LIMIT_S", "Arrival", "Playback", "percentile", "playback"]

CONTINUITY_LIMIT_S = 0.1


@dataclass(frozen=True)
class Arrival:
    """One piece of audio as the client received it: ``at`` seconds after sending the request."""

    at: float
    samples: int


@dataclass(frozen=True)
class Playback:
    """The simulated player's view of one response (seconds; ``first_audio`` is None when no audio came)."""

    first_audio: float | None
    longest_gap: float
    stalled: float  # all gaps together
    gaps: int  # stalls over CONTINUITY_LIMIT_S
    audio_seconds: float

    @property
    def continuous(self) -> bool:
        return self.longest_gap <= CONTINUITY_LIMIT_S


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be from 0 to 100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def playback(arrivals: Sequence[Arrival], sample_rate: int) -> Playback:
    """Play ``arrivals`` (in arrival order) from the first non-empty one at real time; measure the stalls."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    first: float | None = None
    runs_out = 0.0  # when the audio received so far has all been played
    longest = stalled = 0.0
    gaps = 0
    total = 0
    for arrival in arrivals:
        if arrival.samples <= 0:
            continue
        if first is None:
            first = runs_out = arrival.at
        elif arrival.at > runs_out:
            gap = arrival.at - runs_out
            longest, stalled = max(longest, gap), stalled + gap
            gaps += gap > CONTINUITY_LIMIT_S
            runs_out = arrival.at
        runs_out += arrival.samples / sample_rate
        total += arrival.samples
    return Playback(first, longest, stalled, gaps, total / sample_rate)
