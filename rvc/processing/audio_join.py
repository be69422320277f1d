"""Join per-sentence audio into one waveform with short crossfades.

A hard cut between two independently generated sentences clicks when the
first ends and the second starts away from zero; a few milliseconds of
linear crossfade removes that without audibly shortening the pause.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crossfade_concat", "rms"]


def crossfade_concat(pieces: list[np.ndarray], sample_rate: int, *, fade_ms: float = 10.0) -> np.ndarray:
    """Concatenate (T_i,) float32 pieces, overlapping neighbours by ``fade_ms`` with linear fades.

    The overlap is clamped to half the shorter neighbour, so tiny pieces never vanish.
    """
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    joined = np.asarray(pieces[0], dtype=np.float32)
    for piece in pieces[1:]:
        piece = np.asarray(piece, dtype=np.float32)
        overlap = min(int(sample_rate * fade_ms / 1000), joined.size // 2, piece.size // 2)
        if overlap == 0:
            joined = np.concatenate([joined, piece])
            continue
        fade_in = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
        mixed = joined[-overlap:] * (1.0 - fade_in) + piece[:overlap] * fade_in
        joined = np.concatenate([joined[:-overlap], mixed, piece[overlap:]])
    return joined


def rms(wav: np.ndarray) -> float:
    """Root mean square of (T,) audio; 0 for an empty array."""
    return float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
