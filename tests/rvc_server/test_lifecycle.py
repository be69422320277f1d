"""Worker recycling, hung-worker kills, start-up failures and shutdown of a 1-worker pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rvc.errors import AssetError, JobTimeout, ModelUnavailable, NotFound, VoiceError
from rvc.infer.converter import VoiceConverter
from rvc.server.pool import RVCServer

from .conftest import (
    SAMPLE_RATE,
    Assets,
    assert_converts_as_reference,
    assert_no_leftovers,
    pool_config,
    speech_like,
    wait_for,
    worker_pids,
)


class _StatusWatcher:
    """Samples the pool's status in a thread: fewest ready workers seen, most processes seen."""

    def __init__(self, server: RVCServer) -> None:
        self.server = server
        self.min_ready = 10**6
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.server.status()
            self.min_ready = min(self.min_ready, status.ready_workers)
            self.max_processes = max(self.max_processes, len(status.workers))
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def small_pool(assets: Assets) -> Iterator[RVCServer]:
    server = RVCServer(
        pool_config(assets, num_workers=1, max_jobs_per_worker=2, warmup=False, hung_grace_s=0.3)
    ).start()
    yield server
    server.shutdown(drain=False, timeout=10.0)


def test_worker_is_recycled_after_max_jobs_and_its_replacement_is_ready_first(
    small_pool: RVCServer, reference: VoiceConverter
) -> None:
    first = worker_pids(small_pool)
    watcher = _StatusWatcher(small_pool)
    try:
        inputs = [speech_like(70 + seed, 0.3) for seed in range(2)]
        for x in inputs:
            assert_converts_as_reference(small_pool, reference, x)
        wait_for(
            lambda: worker_pids(small_pool) not in (first, set()) and len(small_pool.status().workers) == 1,
            300,
            "the recycled worker's replacement",
        )
    finally:
        watcher.stop()
    status = small_pool.status()
    assert status.workers_recycled == 1 and status.workers_crashed == 0 and status.ready_workers == 1
    assert watcher.min_ready >= 1, "there was a moment with no ready worker"
    assert watcher.max_processes == 2, "the replacement never ran beside the old worker"
    assert_converts_as_reference(small_pool, reference, speech_like(72, 0.3))


def test_worker_stuck_past_deadline_and_grace_is_killed_and_replaced(small_pool: RVCServer) -> None:
    wait_for(lambda: small_pool.status().ready_workers == 1, 300, "a ready worker")
    before = worker_pids(small_pool)
    handle = small_pool.submit(speech_like(80, 4.0), SAMPLE_RATE, timeout_s=0.3)
    with pytest.raises(JobTimeout):
        handle.result(timeout=60)
    wait_for(lambda: small_pool.status().workers_killed_hung == 1, 60, "the stuck worker to be killed")
    wait_for(
        lambda: small_pool.status().ready_workers == 1 and worker_pids(small_pool) != before,
        300,
        "a replacement",
    )
    assert small_pool.status().jobs_timed_out == 1


def test_drain_shutdown_finishes_queued_jobs_and_leaves_nothing_behind(small_pool: RVCServer) -> None:
    wait_for(lambda: small_pool.status().ready_workers == 1, 300, "a ready worker")
    pids = worker_pids(small_pool)
    handles = [small_pool.submit(speech_like(90 + seed, 0.3), SAMPLE_RATE) for seed in range(3)]
    small_pool.shutdown(drain=True, timeout=300)
    assert all(handle.result(timeout=1).sample_rate == 40000 for handle in handles)
    assert small_pool.state == "stopped"
    with pytest.raises(ModelUnavailable):
        small_pool.submit(speech_like(0, 0.3), SAMPLE_RATE)
    small_pool.shutdown()  # idempotent
    assert_no_leftovers(small_pool, pids)


def test_unloadable_assets_fail_start_with_the_workers_error_and_no_orphans(
    assets: Assets, tmp_path: Path
) -> None:
    broken = tmp_path / "hubert_base.pt"
    broken.write_bytes(b"this is not a checkpoint")
    server = RVCServer(pool_config(assets, num_workers=1, warmup=False).with_changes(hubert_path=broken))
    with pytest.raises(VoiceError) as info:
        server.start()
    assert isinstance(info.value, AssetError | ModelUnavailable)
    assert "hubert" in info.value.message.lower() or "checkpoint" in info.value.message.lower()
    assert server.state == "stopped"
    assert_no_leftovers(server, set())


def test_missing_default_voice_fails_before_any_process_starts(assets: Assets) -> None:
    server = RVCServer(pool_config(assets).with_changes(default_voice="Nobody"))
    with pytest.raises(NotFound):
        server.start()
    assert server.state == "stopped"
    assert_no_leftovers(server, set())


def test_recycle_rule_watches_jobs_host_memory_and_gpu_memory(assets: Assets) -> None:
    from rvc.server.lifecycle import recycle_reason

    config = pool_config(assets, max_jobs_per_worker=10, max_rss_mb=2000.0, max_gpu_mb=3000.0)
    assert recycle_reason(config, 3, 1500.0, 2500.0) is None
    assert recycle_reason(config, 10, 1500.0, 2500.0) == "10 jobs done"
    assert recycle_reason(config, 3, 2100.0, 2500.0) == "resident memory 2100 MiB > 2000 MiB"
    assert recycle_reason(config, 3, 1500.0, 3100.0) == "GPU memory reserved 3100 MiB > 3000 MiB"
    # a worker on the CPU reports no GPU memory: the rule is off there whatever the threshold
    assert recycle_reason(config, 3, 1500.0, None) is None
    # 0 switches the GPU rule off, and a negative threshold is refused with the setting named
    assert recycle_reason(config.with_changes(max_gpu_mb=0.0), 3, 1500.0, 50_000.0) is None
    with pytest.raises(ValueError, match="max_gpu_mb"):
        config.with_changes(max_gpu_mb=-1.0)


def test_gpu_recycling_threshold_comes_from_rvc_recycle_gpu_mb(assets: Assets, monkeypatch: pytest.MonkeyPatch) -> None:
    from rvc.server.config import PoolConfig
    from rvc.settings import load_settings

    monkeypatch.setenv("RVC_RECYCLE_GPU_MB", "4096")
    assert PoolConfig.from_settings(load_settings()).max_gpu_mb == 4096.0
    monkeypatch.delenv("RVC_RECYCLE_GPU_MB")
    assert PoolConfig.from_settings(load_settings()).max_gpu_mb == 0.0
