"""CUDA faults in real worker processes, injected on a CPU machine (rvc/server/faults.py).

An out-of-memory fails one job with DeviceOutOfMemory (503 with Retry-After at the gateway) and
the worker serves on; a sticky CUDA error fails its job and ends the worker, which the
supervisor replaces. The exceptions are the ones torch raises, raised where the converter
would raise them, chosen by RVC_FAULT_INJECTION read once at the worker's start.
"""

from __future__ import annotations

import json

import pytest

from rvc.errors import ConfigError, DeviceOutOfMemory, VoiceError, WorkerCrashed
from rvc.infer.converter import VoiceConverter
from rvc.server.faults import FaultPlan
from rvc.server.pool import RVCServer

from .conftest import (
    DETERMINISTIC,
    SAMPLE_RATE,
    Assets,
    assert_converts_as_reference,
    assert_no_leftovers,
    pool_config,
    speech_like,
    wait_for,
    worker_pids,
)


def test_oom_frees_and_fails_one_job_and_a_sticky_error_replaces_the_worker(
    assets: Assets, reference: VoiceConverter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rvc.api.errors import error_response

    # the spawned worker inherits this environment; the pool's own process never reads it
    monkeypatch.setenv("RVC_TESTING", "1")
    monkeypatch.setenv("RVC_FAULT_INJECTION", "oom-on-job-2,sticky-on-job-4")
    server = RVCServer(pool_config(assets, num_workers=1, warmup=False, precision="auto")).start()
    pids: set[int] = set()
    try:
        first = worker_pids(server)
        (worker,) = server.status().workers
        assert (worker.device, worker.precision, worker.gpu_reserved_mb) == ("cpu", "fp32", None)
        assert worker.precision_source == "auto -> fp32 (the CPU)"  # RVC_PRECISION=auto, resolved by the worker
        assert_converts_as_reference(server, reference, speech_like(80, 0.3))  # job 1

        with pytest.raises(DeviceOutOfMemory) as oom:  # job 2
            server.convert(speech_like(81, 0.3), SAMPLE_RATE, DETERMINISTIC)
        assert "out of memory" in oom.value.message and oom.value.retry_after_s == 2.0
        response = error_response(oom.value)
        assert response.status_code == 503 and response.headers["Retry-After"] == "2"
        assert json.loads(bytes(response.body))["error"]["code"] == "device_out_of_memory"

        assert_converts_as_reference(server, reference, speech_like(82, 0.3))  # job 3: the same worker serves on
        assert worker_pids(server) == first and server.status().workers_crashed == 0

        with pytest.raises(WorkerCrashed) as sticky:  # job 4: the context is poisoned
            server.convert(speech_like(83, 0.3), SAMPLE_RATE, DETERMINISTIC)
        assert "illegal memory access" in sticky.value.message and "replaced" in sticky.value.message
        replaced = wait_for(
            lambda: (pids := worker_pids(server)) and not pids & first and server.status().ready_workers == 1
            and pids,
            300, "a replacement for the worker with the sticky CUDA error",
        )
        status = server.status()
        assert status.workers_crashed == 1 and status.jobs_failed == 2
        assert len(status.workers) == 1 and status.workers[0].device == "cpu"
        assert_converts_as_reference(server, reference, speech_like(84, 0.3))  # the replacement's job 1
        assert worker_pids(server) == replaced
        pids = first | replaced
    finally:
        server.shutdown(drain=False, timeout=10.0)
    assert_no_leftovers(server, pids)


def test_fault_injection_without_the_testing_flag_stops_the_worker_at_start(
    assets: Assets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RVC_TESTING", raising=False)
    monkeypatch.setenv("RVC_FAULT_INJECTION", "oom-on-job-1")
    server = RVCServer(pool_config(assets, num_workers=1, warmup=False))
    with pytest.raises(VoiceError) as info:
        server.start()
    assert "RVC_TESTING=1" in info.value.message and "RVC_FAULT_INJECTION" in info.value.message
    assert server.state == "stopped"
    assert_no_leftovers(server, set())


def test_fault_plan_parses_rules_and_refuses_unknown_ones() -> None:
    plan = FaultPlan.from_environment({"RVC_TESTING": "1", "RVC_FAULT_INJECTION": "oom-on-job-2, sticky-on-job-4"})
    assert plan is not None
    assert [plan.fault_for(n) for n in range(1, 6)] == [None, "oom", None, "sticky", None]
    blocks = FaultPlan.from_environment({"RVC_TESTING": "1", "RVC_FAULT_INJECTION": "oom-on-block-2"})
    assert blocks is not None and blocks.fault_for(2, "block") == "oom" and blocks.fault_for(2) is None
    assert FaultPlan.from_environment({"RVC_TESTING": "1"}) is None
    for bad in ("oom-on-job-0", "segfault-on-job-1", "oom-on-job-2;sticky"):
        with pytest.raises(ConfigError, match=r"<oom\|sticky>-on-<job\|block>-N"):
            FaultPlan.from_environment({"RVC_TESTING": "1", "RVC_FAULT_INJECTION": bad})
    with pytest.raises(ConfigError, match="test-only"):
        FaultPlan.from_environment({"RVC_TESTING": "yes", "RVC_FAULT_INJECTION": "oom-on-job-1"})
