"""Streamed TTS audio as the gateway consumes it: overlapping server chunks joined incrementally.

A streaming Spark-TTS model vocodes each chunk of semantic tokens on its own, so consecutive
chunks share ``overlap`` samples (5 tokens = 1600 samples by default) that exist twice. The
official client cross-fades them linearly (fade-out of the earlier chunk, fade-in of the later);
``ChunkJoiner`` does the same as chunks arrive and releases only audio that no later chunk can
change: every chunk's last ``overlap`` samples wait for the next chunk (or the end of the stream).
So the audio a consumer gets lags the server by one overlap (0.1 s of audio), and the released
pieces simply concatenate: their total is ``sum(len) - overlap * (n - 1)`` samples, exactly
``join_chunks`` of the same chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AudioChunk", "ChunkJoiner", "join_chunks"]

_EMPTY = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class AudioChunk:
    """One piece of a streamed synthesis, ready to play or convert.

    audio: (T,) float32 at 16 kHz, already cross-faded: chunks concatenate without further work.
    sample_offset: where ``audio[0]`` sits in the whole waveform (the sum of earlier chunks' T).
    received_s: seconds from sending the request to receiving the server response this came from.
    final: the last chunk of the stream (possibly the held-back tail alone).
    """

    index: int
    audio: np.ndarray
    sample_offset: int
    received_s: float
    final: bool

    @property
    def end_offset(self) -> int:
        return self.sample_offset + int(self.audio.shape[0])


class ChunkJoiner:
    """Incremental linear cross-fade of overlapping chunks (see the module docstring)."""

    def __init__(self, overlap_samples: int) -> None:
        if overlap_samples < 0:
            raise ValueError(f"overlap_samples must be >= 0, got {overlap_samples}")
        self.overlap = int(overlap_samples)
        self._tail: np.ndarray | None = None  # the joined waveform's last samples, not yet released

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """chunk: (T,) float32 as the server sent it -> the samples that are now final."""
        piece = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if piece.size == 0:
            return _EMPTY
        if self._tail is None:
            head = piece
        else:
            n = min(self.overlap, self._tail.size, piece.size)
            mixed = (piece[:n] * np.linspace(0, 1, n) + self._tail[self._tail.size - n :] * np.linspace(1, 0, n))
            head = np.concatenate([self._tail[: self._tail.size - n], mixed.astype(np.float32), piece[n:]])
        keep = min(self.overlap, head.size)
        self._tail = head[head.size - keep :]
        return head[: head.size - keep]

    def finish(self) -> np.ndarray:
        """The held-back tail: the last samples of the waveform."""
        tail = _EMPTY if self._tail is None else self._tail
        self._tail = None
        return tail


def join_chunks(chunks: Sequence[np.ndarray], overlap_samples: int) -> np.ndarray:
    """Streamed chunks -> one waveform of ``sum(len) - overlap * (n - 1)`` samples (the length of
    the offline waveform), cross-faded as the official client does."""
    joiner = ChunkJoiner(overlap_samples)
    pieces = [joiner.push(chunk) for chunk in chunks]
    pieces.append(joiner.finish())
    return np.concatenate(pieces).astype(np.float32, copy=False)
