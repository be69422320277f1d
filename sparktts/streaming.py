"""Streaming synthesis helpers: the official runtime's chunk schedule and the client's crossfade.

The official Triton ``spark_tts`` model vocodes the semantic stream in growing chunks: the first
once ``ceil(1.0 s * 50)`` = 50 tokens exist, each next one ``min(1500, int(previous * 8))``
tokens long (50 -> 400 -> 1500 -> 1500 ...), consecutive chunks sharing ``ceil(0.1 s * 50)`` = 5
tokens. Each chunk is vocoded on its own, so the shared 5 tokens (1600 samples) exist twice; the
official gRPC client blends them with linear fades (``np.linspace(1, 0, n)`` out, ``(0, 1)`` in)
over ``int(0.1 * 16000)`` = 1600 samples. The joined length is exactly ``320 * tokens``.

One deliberate difference from the official runtime: when generation ends right after a chunk,
the official code vocodes the 5 leftover overlap tokens as a last chunk, which its client then
appends a second time (1600 duplicated samples). ``ChunkSchedule.split`` emits a remainder only
if it holds tokens that no chunk has covered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

TOKEN_RATE = 50  # semantic tokens per second of 16 kHz audio (hop 320)
SAMPLES_PER_TOKEN = 320


def _tokens(seconds: float) -> int:
    # round first so that e.g. 0.1 * 50 = 5.000000000000001 does not become 6 tokens
    return math.ceil(round(seconds * TOKEN_RATE, 6))


@dataclass(frozen=True)
class ChunkSchedule:
    """Chunk sizes in semantic tokens: ``first``, then ``min(largest, int(size * scale))``."""

    first: int = 50
    scale: float = 8.0
    largest: int = 1500
    overlap: int = 5

    def __post_init__(self) -> None:
        if self.first < 1:
            raise ValueError(f"first chunk must hold >= 1 token, got {self.first}")
        if self.scale < 1.0:
            raise ValueError(f"scale must be >= 1 (chunks never shrink), got {self.scale}")
        if self.largest < self.first:
            raise ValueError(f"largest chunk {self.largest} is smaller than the first {self.first}")
        if not 0 <= self.overlap < self.first:
            raise ValueError(f"overlap must be in [0, first={self.first}), got {self.overlap}")

    @classmethod
    def from_durations(
        cls,
        chunk_duration: float = 1.0,
        scale_factor: float = 8.0,
        max_chunk_duration: float = 30.0,
        overlap_duration: float = 0.1,
    ) -> ChunkSchedule:
        """The official parameters in seconds (``audio_chunk_duration`` etc.), converted as upstream."""
        if chunk_duration < 0.5:
            raise ValueError(f"chunk_duration must be >= 0.5 s (official limit), got {chunk_duration}")
        return cls(
            first=_tokens(chunk_duration),
            scale=float(scale_factor),
            largest=_tokens(max_chunk_duration),
            overlap=_tokens(overlap_duration),
        )

    @property
    def overlap_samples(self) -> int:
        return self.overlap * SAMPLES_PER_TOKEN

    def sizes(self) -> Iterator[int]:
        """50, 400, 1500, 1500, ... (infinite)."""
        size = self.first
        while True:
            yield size
            size = min(self.largest, int(size * self.scale))

    def split(self, tokens: Iterable[int]) -> Iterator[list[int]]:
        """Group a (lazy) token stream into overlapping chunks, each yielded as soon as it is full."""
        sizes = self.sizes()
        size = next(sizes)
        pending: list[int] = []
        fresh = 0  # tokens in ``pending`` that no yielded chunk has covered
        for token in tokens:
            pending.append(token)
            fresh += 1
            if len(pending) >= size:
                yield pending[:size]
                pending = pending[size - self.overlap :]
                fresh = len(pending) - self.overlap
                size = next(sizes)
        if fresh > 0:
            yield pending


class Crossfader:
    """Incremental form of :func:`crossfade_join`: push chunks, get back the audio that is final.

    Each pushed chunk's last ``overlap`` samples are held back until the next chunk (or
    :meth:`finish`) arrives, so concatenating everything returned equals ``crossfade_join``.
    """

    def __init__(self, overlap_samples: int) -> None:
        if overlap_samples < 0:
            raise ValueError(f"overlap_samples must be >= 0, got {overlap_samples}")
        self.overlap = int(overlap_samples)
        self._fade_out = np.linspace(1, 0, self.overlap)
        self._fade_in = np.linspace(0, 1, self.overlap)
        self._tail: np.ndarray | None = None

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """chunk: (T,) float32 at 16 kHz; T >= overlap after the first -> the samples now final."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"a chunk must be 1-D, got shape {chunk.shape}")
        if self._tail is None:
            head = chunk
        else:
            if self._tail.shape[0] < self.overlap or chunk.shape[0] < self.overlap:
                raise ValueError(f"chunks that are joined need >= {self.overlap} samples each")
            mixed = chunk[: self.overlap] * self._fade_in + self._tail * self._fade_out
            head = np.concatenate([mixed.astype(np.float32), chunk[self.overlap :]])
        keep = min(self.overlap, head.shape[0])
        self._tail = head[head.shape[0] - keep :]
        return head[: head.shape[0] - keep]

    def finish(self) -> np.ndarray:
        tail = self._tail if self._tail is not None else np.zeros(0, dtype=np.float32)
        self._tail = None
        return tail


def crossfade_join(chunks: Iterable[np.ndarray], overlap_samples: int) -> np.ndarray:
    """Join overlapping chunks as the official client does: linear fades over ``overlap_samples``.

    Returns (sum(T_i) - (n - 1) * overlap,) float32; one chunk is returned unchanged.
    """
    fader = Crossfader(overlap_samples)
    pieces = [fader.push(chunk) for chunk in chunks]
    pieces.append(fader.finish())
    return np.concatenate(pieces).astype(np.float32, copy=False)
