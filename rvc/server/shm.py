"""Audio across processes in POSIX shared memory, with names the parent can clean up.

Every job uses two segments whose names the parent derives from the pool's
prefix and the job id before the job starts: ``<prefix><job>i`` (input,
written by the parent at submit) and ``<prefix><job>o`` (output, created by
the worker). Because both names are known in advance, the parent can unlink
them whatever happened in between, even when the worker was killed halfway
through writing. Ownership rule: **only the parent unlinks**; workers attach,
copy, create and close. ``unlink_segment`` ignores a missing segment, and
``shm_unlink`` fails before it tells the resource tracker anything, so a
name is never unregistered twice (which would print tracker tracebacks).

Arrays are 1-D float32; an empty array uses no segment (None), because a
zero-byte mapping is an error.
"""

from __future__ import annotations

import logging
import os
from multiprocessing import shared_memory

import numpy as np

__all__ = [
    "SHM_DIR",
    "input_segment_name",
    "list_segments",
    "output_segment_name",
    "read_audio",
    "unlink_segment",
    "write_audio",
]

logger = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
_DTYPE = np.dtype(np.float32)


def input_segment_name(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}i"


def output_segment_name(prefix: str, job_id: str) -> str:
    return f"{prefix}{job_id}o"


def write_audio(name: str, audio: np.ndarray) -> str | None:
    """Create segment ``name`` holding ``audio`` (1-D float32); None for an empty array.

    The creator only closes its mapping: the segment lives on until the parent
    unlinks it. If anything fails after creation the segment is unlinked here.
    """
    samples = np.ascontiguousarray(audio, dtype=_DTYPE).reshape(-1)
    if samples.size == 0:
        return None
    segment = shared_memory.SharedMemory(name=name, create=True, size=samples.nbytes)
    try:
        np.ndarray(samples.shape, dtype=_DTYPE, buffer=segment.buf)[:] = samples
    except BaseException:
        segment.close()
        segment.unlink()
        raise
    segment.close()
    return name


def read_audio(name: str | None, num_samples: int) -> np.ndarray:
    """Copy ``num_samples`` float32 samples out of segment ``name`` (None -> empty array).

    The copy lets the segment be closed and unlinked at once; 5 s at 40 kHz is
    800 kB, far below a conversion's cost.
    """
    if name is None or num_samples == 0:
        return np.zeros(0, dtype=_DTYPE)
    segment = shared_memory.SharedMemory(name=name, create=False)
    try:
        if segment.size < num_samples * _DTYPE.itemsize:
            raise ValueError(f"segment {name} holds {segment.size} bytes, fewer than {num_samples} samples")
        view: np.ndarray = np.ndarray((num_samples,), dtype=_DTYPE, buffer=segment.buf)
        audio = view.copy()
        del view
    finally:
        segment.close()
    return audio


def unlink_segment(name: str | None) -> bool:
    """Remove segment ``name`` if it exists; True when something was removed."""
    if name is None:
        return False
    try:
        segment = shared_memory.SharedMemory(name=name, create=False)
    except FileNotFoundError:
        return False
    segment.close()
    try:
        segment.unlink()
    except FileNotFoundError:
        return False
    return True


def list_segments(prefix: str) -> list[str]:
    """Names of the existing segments starting with ``prefix`` (Linux: /dev/shm)."""
    try:
        return sorted(entry for entry in os.listdir(SHM_DIR) if entry.startswith(prefix))
    except FileNotFoundError:
        return []
