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

    The overlap is clamped to half the shorter neighbour (the joined audio so
    far, and the next piece), so tiny pieces never vanish. Linear in the total
    length: a long-form job joins hundreds of sentences, which joining by
    repeated concatenation would copy hundreds of times.
    """
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    fade = int(sample_rate * fade_ms / 1000)
    parts = [np.asarray(pieces[0], dtype=np.float32)]
    length = parts[0].size
    for piece in pieces[1:]:
        piece = np.asarray(piece, dtype=np.float32)
        overlap = min(fade, length // 2, piece.size // 2)
        if overlap == 0:
            parts.append(piece)
            length += piece.size
            continue
        tail_parts: list[np.ndarray] = []
        gathered = 0
        while gathered < overlap:  # the last ``overlap`` samples may span several short pieces
            tail_parts.append(parts.pop())
            gathered += tail_parts[-1].size
        tail = tail_parts[0] if len(tail_parts) == 1 else np.concatenate(tail_parts[::-1])
        fade_in = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
        mixed = tail[-overlap:] * (1.0 - fade_in) + piece[:overlap] * fade_in
        parts.extend((tail[:-overlap], mixed, piece[overlap:]))
        length += piece.size - overlap
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def rms(wav: np.ndarray) -> float:
    """Root mean square of (T,) audio; 0 for an empty array."""
    return float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
