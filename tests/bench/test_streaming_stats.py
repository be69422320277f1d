"""The streaming benchmark's listener model: percentiles and the real-time player's stalls."""

from __future__ import annotations

import numpy as np
import pytest

from bench.streaming_stats import CONTINUITY_LIMIT_S, Arrival, percentile, playback

RATE = 1000


def test_percentile_interpolates_between_ranks_as_numpy_does() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for q in (0, 5, 25, 50, 75, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([2.0, 4.0], 50) == 3.0
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_no_values_and_out_of_range_q(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_audio_that_arrives_ahead_of_the_player_never_stalls() -> None:
    # 0.5 s of audio every 0.4 s: always ahead of real time
    arrivals = [Arrival(at=1.0 + 0.4 * index, samples=500) for index in range(5)]
    played = playback(arrivals, RATE)
    assert played.first_audio == 1.0
    assert (played.longest_gap, played.stalled, played.gaps) == (0.0, 0.0, 0)
    assert played.audio_seconds == 2.5
    assert played.continuous


def test_a_late_piece_stalls_the_player_by_its_lateness() -> None:
    # 0.5 s plays from 1.0 to 1.5; the next piece comes at 1.8 (0.3 s late), plays to 2.3; the last at 2.35
    arrivals = [Arrival(1.0, 500), Arrival(1.8, 500), Arrival(2.35, 100)]
    played = playback(arrivals, RATE)
    assert played.longest_gap == pytest.approx(0.3)
    assert played.stalled == pytest.approx(0.35)
    assert played.gaps == 1  # the 0.05 s stall is under the continuity limit
    assert not played.continuous


def test_a_stall_just_at_the_limit_is_still_continuous_and_empty_pieces_are_ignored() -> None:
    arrivals = [Arrival(0.2, 0), Arrival(0.5, 100), Arrival(0.6 + CONTINUITY_LIMIT_S, 100), Arrival(5.0, 0)]
    played = playback(arrivals, RATE)
    assert played.first_audio == 0.5  # the empty piece at 0.2 s is no audio
    assert played.longest_gap == pytest.approx(CONTINUITY_LIMIT_S)
    assert played.continuous
    assert played.audio_seconds == 0.2


def test_no_audio_means_no_first_audio() -> None:
    played = playback([Arrival(0.3, 0)], RATE)
    assert played.first_audio is None and played.audio_seconds == 0.0
