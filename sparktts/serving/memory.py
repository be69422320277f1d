"""Keep a long-running model process's resident memory flat.

Two things grow a CPU inference process that sees inputs of ever-new lengths: oneDNN caches
one JIT-compiled primitive per convolution/matmul shape (1024 by default, measured at ~1.3 MB
each: +1.1 GB in ten RVC conversions of different lengths on the full-size models), and glibc
keeps freed heap pages instead of returning them. ``ONEDNN_CACHE_CAPACITY`` bounds the first
(enough for every primitive of one request, so windows of one input still reuse theirs;
measured ~10% slower on repeated lengths, flat memory) and ``release_freed_memory`` returns
the second after each request.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import MutableMapping

__all__ = ["ONEDNN_CACHE_CAPACITY", "ONEDNN_CACHE_VARIABLE", "bound_primitive_cache", "release_freed_memory"]

ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 256


def bound_primitive_cache(environ: MutableMapping[str, str] = os.environ) -> None:
    """Cap oneDNN's primitive cache unless the operator already chose a size; before torch runs."""
    environ.setdefault(ONEDNN_CACHE_VARIABLE, str(ONEDNN_CACHE_CAPACITY))


def release_freed_memory() -> bool:
    """Give the heap's free pages back to the OS; False where the C library has no ``malloc_trim``."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: glibc's, when it is glibc
    except (OSError, AttributeError):
        return False
    trim(0)
    return True
