"""sparktts.serving.memory: the bounded oneDNN cache and the heap trim the Triton models use."""

from __future__ import annotations

import sys

from sparktts.serving.memory import (
    ONEDNN_CACHE_CAPACITY,
    ONEDNN_CACHE_VARIABLE,
    bound_primitive_cache,
    release_freed_memory,
)


def test_bound_primitive_cache_sets_a_default_and_keeps_an_operators_value() -> None:
    environ: dict[str, str] = {}
    bound_primitive_cache(environ)
    assert environ == {ONEDNN_CACHE_VARIABLE: str(ONEDNN_CACHE_CAPACITY)}
    environ = {ONEDNN_CACHE_VARIABLE: "4096"}
    bound_primitive_cache(environ)
    assert environ[ONEDNN_CACHE_VARIABLE] == "4096"


def test_release_freed_memory_returns_freed_pages_on_glibc() -> None:
    def resident_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    # Many mid-sized blocks come from the heap (below the mmap threshold), not from mmap.
    blocks = [bytearray(64 * 1024) for _ in range(4000)]
    del blocks[:-1]  # the last one pins the top of the heap, so only an explicit trim frees the rest
    before = resident_mb()
    assert release_freed_memory() == sys.platform.startswith("linux")
    assert resident_mb() < before - 100  # ~250 MB were freed to the heap; most goes back
