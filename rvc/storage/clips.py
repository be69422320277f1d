"""Reference clips as the database holds them: raw float32 samples, their rate and their hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["StoredReference", "clip_bytes", "clip_from_bytes", "clip_sha256"]


@dataclass(frozen=True)
class StoredReference:
    """A reference clip: (T,) float32 mono at ``sample_rate``, read-only; ``sha256`` of its samples."""

    wav: np.ndarray
    sample_rate: int
    sha256: str
    stored_at: float

    @property
    def duration_s(self) -> float:
        return self.wav.size / self.sample_rate


def clip_bytes(samples: np.ndarray) -> bytes:
    """(T,) float32 -> the bytes stored (little-endian on every host, so any gateway reads them)."""
    return np.ascontiguousarray(samples, dtype="<f4").reshape(-1).tobytes()


def clip_from_bytes(data: bytes) -> np.ndarray:
    """The stored bytes -> a read-only (T,) float32 array in native order."""
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    samples.setflags(write=False)
    return samples


def clip_sha256(samples: np.ndarray) -> str:
    """The hash today's file stores computed: of the native float32 samples."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()
