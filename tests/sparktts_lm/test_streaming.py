"""Chunk schedule and crossfade join, against the official runtime's and client's formulas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sparktts.streaming import ChunkSchedule, Crossfader, crossfade_join


def _official_client_join(audios: list[np.ndarray], cross_fade_samples: int) -> np.ndarray:
    """The official gRPC client's reconstruction, restated (valid for chunks >= 2 * overlap)."""
    if len(audios) == 1:
        return audios[0]
    fade_out, fade_in = np.linspace(1, 0, cross_fade_samples), np.linspace(0, 1, cross_fade_samples)
    out = audios[0][:-cross_fade_samples]
    for i in range(1, len(audios)):
        mixed = audios[i][:cross_fade_samples] * fade_in + audios[i - 1][-cross_fade_samples:] * fade_out
        out = np.concatenate([out, mixed, audios[i][cross_fade_samples:-cross_fade_samples]])
    return np.concatenate([out, audios[-1][-cross_fade_samples:]])


def test_default_schedule_is_the_official_one() -> None:
    schedule = ChunkSchedule.from_durations(1.0, 8.0, 30.0, 0.1)
    assert schedule == ChunkSchedule(first=50, scale=8.0, largest=1500, overlap=5)
    assert list(itertools.islice(schedule.sizes(), 5)) == [50, 400, 1500, 1500, 1500]
    assert schedule.overlap_samples == 1600


def test_split_yields_overlapping_chunks_that_cover_every_token() -> None:
    schedule = ChunkSchedule()
    tokens = list(range(2000))
    chunks = list(schedule.split(iter(tokens)))
    assert [len(c) for c in chunks] == [50, 400, 1500, 65]
    assert chunks[1][:5] == chunks[0][-5:] and chunks[2][:5] == chunks[1][-5:]
    rebuilt = chunks[0] + [t for c in chunks[1:] for t in c[5:]]
    assert rebuilt == tokens


def test_split_is_lazy_and_skips_an_overlap_only_remainder() -> None:
    schedule = ChunkSchedule()
    seen: list[int] = []

    def produce():
        for t in range(50 + 400 - 5):  # ends exactly on the second chunk boundary
            seen.append(t)
            yield t

    stream = schedule.split(produce())
    assert len(next(stream)) == 50 and len(seen) == 50  # the first chunk leaves before token 51 exists
    assert [len(c) for c in stream] == [400]
    assert [len(c) for c in schedule.split(iter(range(7)))] == [7]
    assert list(schedule.split(iter([]))) == []


@pytest.mark.parametrize("lengths", [[16000, 128000, 480000, 19200], [16000, 3200], [16000]])
def test_crossfade_join_equals_the_official_client(lengths: list[int]) -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.uniform(-1, 1, n).astype(np.float32) for n in lengths]
    joined = crossfade_join(chunks, 1600)
    assert joined.dtype == np.float32 and joined.shape == (sum(lengths) - 1600 * (len(lengths) - 1),)
    np.testing.assert_allclose(joined, _official_client_join(chunks, 1600), rtol=0, atol=1e-6)


def test_crossfader_pieces_concatenate_to_the_join() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.uniform(-1, 1, n).astype(np.float32) for n in (16000, 1920, 5000)]
    fader = Crossfader(1600)
    pieces = [fader.push(c) for c in chunks] + [fader.finish()]
    assert np.array_equal(np.concatenate(pieces), crossfade_join(chunks, 1600))


def test_constant_signal_survives_the_crossfade() -> None:
    joined = crossfade_join([np.full(16000, 0.5, np.float32), np.full(9600, 0.5, np.float32)], 1600)
    np.testing.assert_allclose(joined, 0.5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"first": 0}, "first"), ({"scale": 0.5}, "scale"), ({"largest": 10}, "largest"), ({"overlap": 50}, "overlap")],
)
def test_bad_schedule_is_rejected(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkSchedule(**kwargs)


def test_short_chunks_cannot_be_joined() -> None:
    with pytest.raises(ValueError, match="1600 samples"):
        crossfade_join([np.zeros(16000, np.float32), np.zeros(100, np.float32)], 1600)
    with pytest.raises(ValueError, match="chunk_duration"):
        ChunkSchedule.from_durations(0.2)
