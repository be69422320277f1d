"""crossfade_concat: linear in the total length, and sample for sample the join by repeated concatenation."""

from __future__ import annotations

import numpy as np

from rvc.processing.audio_join import crossfade_concat


def joined_by_concatenation(pieces: list[np.ndarray], sample_rate: int, fade_ms: float = 10.0) -> np.ndarray:
    """The join as first written: the whole output copied once per piece (quadratic for a long job)."""
    joined = np.asarray(pieces[0], dtype=np.float32)
    for piece in pieces[1:]:
        overlap = min(int(sample_rate * fade_ms / 1000), joined.size // 2, piece.size // 2)
        if overlap == 0:
            joined = np.concatenate([joined, piece])
            continue
        fade_in = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
        mixed = joined[-overlap:] * (1.0 - fade_in) + piece[:overlap] * fade_in
        joined = np.concatenate([joined[:-overlap], mixed, piece[overlap:]])
    return joined


def test_the_join_equals_the_concatenating_one_for_short_long_and_empty_pieces() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        # pieces shorter than the 160-sample fade make the overlap reach back over several of them
        pieces = [rng.uniform(-1, 1, int(rng.integers(0, 600))).astype(np.float32) for _ in range(rng.integers(1, 10))]
        expected = joined_by_concatenation(pieces, 16000)
        np.testing.assert_array_equal(crossfade_concat(pieces, 16000), expected)


def test_one_piece_comes_back_as_it_is_and_none_is_empty() -> None:
    piece = np.arange(10, dtype=np.float32)
    assert crossfade_concat([piece], 16000) is piece
    assert crossfade_concat([], 16000).size == 0
