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


def test_report_judges_the_issue_targets_from_same_run_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_streaming import Arrival as BenchArrival
    from bench.bench_streaming import Run, report

    def run(first: float, total: float, step: float) -> Run:
        # 0.5 s pieces every `step` s from `first`: continuous when step <= 0.5 + the continuity limit
        arrivals = tuple(BenchArrival(first + step * index, 500) for index in range(4))
        return Run(total=total, sample_rate=RATE, arrivals=arrivals)

    results = {
        ("sentence", 1): [run(2.0, 6.0, 1.5), run(2.2, 6.2, 1.5)],
        ("chunk", 1): [run(0.6, 6.4, 0.4), run(0.8, 6.6, 0.4)],  # 0.33x first audio, 1.06x total
        ("sentence", 4): [run(4.0, 12.0, 1.5)] * 4,
        ("chunk", 4): [run(3.0, 12.5, 0.5)] * 4,  # 0.75x at p95: over 0.7
    }
    verdicts = report(results, [1, 4], rounds=1, sentences=3)
    assert verdicts == {
        "chunk first audio p50 <= 0.5x sentence, c=1": True,
        "total time <= 1.15x sentence, c=1": True,
        "zero underruns (gap > 100 ms), chunk, c=1": True,
        "chunk first audio p95 <= 0.7x sentence, c=4": False,
    }
    printed = capsys.readouterr().out
    assert " 1                      0.33" in printed and "0/2" in printed  # the ratio row; sentence mode stalls


def test_report_without_chunk_mode_judges_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_streaming import Arrival as BenchArrival
    from bench.bench_streaming import Run, report

    results = {("sentence", 1): [Run(total=3.0, sample_rate=RATE, arrivals=(BenchArrival(1.0, 1000),))]}
    assert report(results, [1], rounds=1, sentences=1) == {}
    assert "not judged, chunk mode not available" in capsys.readouterr().out
