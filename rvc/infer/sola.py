"""SOLA joins for streamed conversion: align each decoded block to the previous one, then crossfade.

Every streamed step decodes a little more than its block: a head that overlaps the end of the
previous block (crossfade + search window) and the new block. The previous step's tail and the
new head come from two decoder runs over different context, so they differ slightly in phase;
concatenating them clicks. SOLA (synchronous overlap-add, as RVC's realtime GUI takes it from
DDSP-SVC) slides the new head over a short search window, keeps the offset whose normalised
cross-correlation with the previous tail is highest, and crossfades the two over the overlap with
a sine-squared fade (fade-in + fade-out = 1 at every sample, so a steady signal keeps its level).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SolaJoiner", "fade_in_window", "sola_offset"]

_EPSILON = 1e-8


def fade_in_window(length: int) -> np.ndarray:
    """sin²(π/2 · t) for t from 0 to 1 over ``length`` samples: (length,) float32, 0 -> 1."""
    ramp = np.linspace(0.0, 1.0, num=length, dtype=np.float64)
    return np.square(np.sin(0.5 * np.pi * ramp)).astype(np.float32)


def sola_offset(head: np.ndarray, reference: np.ndarray) -> int:
    """The shift k in [0, len(head) − len(reference)] where ``head[k:k+R]`` best matches ``reference``.

    Score: Σ head[k+i]·reference[i] / sqrt(Σ head[k+i]² + 1e-8), the realtime GUI's normalised
    cross-correlation (normalised by the head's energy only: the reference is the same for every
    k). Ties, and an all-zero reference, give the smallest k. head: (H,) float, reference: (R,) float, R <= H.
    """
    reference = np.asarray(reference, dtype=np.float64)
    head = np.asarray(head, dtype=np.float64)
    length = reference.shape[0]
    if length == 0 or head.shape[0] < length:
        raise ValueError(
            f"sola_offset needs 0 < len(reference) <= len(head), got {length} and {head.shape[0]}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(head, length)  # (H − R + 1, R)
    numerator = windows @ reference
    denominator = np.sqrt(np.sum(np.square(windows), axis=1) + _EPSILON)
    return int(np.argmax(numerator / denominator))


class SolaJoiner:
    """Joins decoded steps into one continuous signal; holds only the last crossfade tail.

    Each ``join`` takes a step's decoded audio laid out as [overlap head | new block], where the
    head is ``crossfade + search`` samples long and starts where the previous step's tail
    started; it returns exactly ``len(decoded) − crossfade − search`` samples. Before the first
    step the tail is silence, so the first block fades in from zero at offset 0.
    """

    def __init__(self, crossfade: int, search: int) -> None:
        if crossfade < 1 or search < 0:
            raise ValueError(
                f"SolaJoiner needs crossfade >= 1 and search >= 0 samples, got {crossfade}, {search}"
            )
        self.crossfade = crossfade
        self.search = search
        self.fade_in = fade_in_window(crossfade)
        self.fade_out = (1.0 - self.fade_in).astype(np.float32)
        self.tail = np.zeros(crossfade, dtype=np.float32)
        self.last_offset = 0

    def reset(self) -> None:
        self.tail[:] = 0.0
        self.last_offset = 0

    def join(self, decoded: np.ndarray) -> np.ndarray:
        """decoded: (crossfade + search + B,) float32 -> (B,) float32, crossfaded onto the previous tail."""
        block = decoded.shape[0] - self.crossfade - self.search
        if block < 0:
            raise ValueError(
                f"a step must decode at least crossfade + search = {self.crossfade + self.search} samples, "
                f"got {decoded.shape[0]}"
            )
        offset = sola_offset(decoded[: self.crossfade + self.search], self.tail)
        self.last_offset = offset
        aligned = np.array(decoded[offset : offset + block + self.crossfade], dtype=np.float32)
        aligned[: self.crossfade] = aligned[: self.crossfade] * self.fade_in + self.tail * self.fade_out
        self.tail = aligned[block:].copy()
        return aligned[:block]
