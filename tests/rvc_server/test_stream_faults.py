"""CUDA faults in a stream block, injected in a real worker on a CPU machine (rvc/server/faults.py).

A stream's block fails as an offline job does: an out-of-memory ends that stream with
DeviceOutOfMemory (503 + Retry-After at the gateway) and the worker serves on; a sticky CUDA error
ends the stream and the worker, which the supervisor replaces.
"""

from __future__ import annotations

import numpy as np
import pytest

from rvc.errors import DeviceOutOfMemory, WorkerCrashed
from rvc.server.pool import RVCServer

from .conftest import (
    DETERMINISTIC,
    Assets,
    assert_no_leftovers,
    pool_config,
    speech_like,
    wait_for,
    worker_pids,
)


def test_a_blocks_oom_ends_its_stream_with_503_and_a_sticky_error_replaces_the_worker(
    assets: Assets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RVC_TESTING", "1")  # the spawned worker inherits these
    monkeypatch.setenv("RVC_FAULT_INJECTION", "oom-on-block-2,sticky-on-block-4")
    server = RVCServer(pool_config(assets, num_workers=1, warmup=False)).start()
    pids: set[int] = set()
    try:
        first = worker_pids(server)
        oomed = server.open_stream(None, DETERMINISTIC)
        assert oomed.feed(speech_like(90, 0.25)).result(timeout=300).size > 0  # block 1: the first step
        with pytest.raises(DeviceOutOfMemory) as oom:  # block 2
            oomed.feed(speech_like(91, 0.5)).result(timeout=300)
        assert "out of memory" in oom.value.message and oom.value.retry_after_s == 2.0
        wait_for(lambda: server.status().open_streams == 0, 60, "the failed stream to be dropped")
        assert worker_pids(server) == first and server.status().workers_crashed == 0

        sticky = server.open_stream(None, DETERMINISTIC)
        assert sticky.feed(speech_like(92, 0.25)).result(timeout=300).size > 0  # block 3: the same worker serves on
        with pytest.raises(WorkerCrashed) as crashed:  # block 4: the context is poisoned
            sticky.feed(speech_like(93, 0.5)).result(timeout=300)
        assert "illegal memory access" in crashed.value.message and "replaced" in crashed.value.message
        replaced = wait_for(
            lambda: (now := worker_pids(server)) and not now & first and server.status().ready_workers == 1 and now,
            300, "a replacement for the worker with the sticky CUDA error",
        )
        status = server.status()
        assert status.workers_crashed == 1 and status.streams_failed == 2 and status.open_streams == 0
        with server.open_stream(None, DETERMINISTIC) as fresh:  # under one step, sent by the flush: the replacement's block 1
            out = np.concatenate([fresh.feed(speech_like(94, 0.2)).result(timeout=300), fresh.flush().result(timeout=300)])
        assert out.shape == (8000,) and np.abs(out).max() > 0  # 0.2 s at the voice's 40 kHz
        pids = first | replaced
    finally:
        server.shutdown(drain=False, timeout=10.0)
    assert_no_leftovers(server, pids)
