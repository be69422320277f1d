"""Fixtures for the worker-pool tests: tiny real RVC assets, pools, inputs, reference results.

Every pool here runs the real worker code on the real converter with demo
weights (tiny, random, in the official layouts); nothing is mocked.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pytest

from rvc.infer.params import ConversionParams

if TYPE_CHECKING:
    from rvc.infer.converter import VoiceConverter
    from rvc.server.config import PoolConfig
    from rvc.server.pool import RVCServer

T = TypeVar("T")
VOICE = "SilverWolf_e300_s6600"
OTHER_VOICE = "Other_e10_s100"
SAMPLE_RATE = 16000
# Fixed seed, no random draws: a worker's result equals the in-process converter's bit for bit.
DETERMINISTIC = ConversionParams(seed=5, deterministic=True)


@dataclass(frozen=True)
class Assets:
    weights_dir: Path
    hubert: Path
    rmvpe: Path


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    """Two demo voices (different seeds) beside each other, one shared HuBERT and RMVPE."""
    from rvc.infer.demo_assets import write_demo_rvc_assets

    root = tmp_path_factory.mktemp("rvc_assets")
    paths = write_demo_rvc_assets(root / "weights", root / "assets", voice_name=VOICE, seed=0)
    write_demo_rvc_assets(root / "weights", root / "unused_assets", voice_name=OTHER_VOICE, seed=1)
    return Assets(weights_dir=root / "weights", hubert=paths["hubert"], rmvpe=paths["rmvpe"])


def pool_config(assets: Assets, **changes: object) -> PoolConfig:
    from rvc.server.config import PoolConfig

    values: dict[str, object] = {
        "num_workers": 2,
        "max_queue": 32,
        "job_timeout_s": 120.0,
        "warmup": True,
        "start_timeout_s": 120.0,
    }
    values.update(changes)
    return PoolConfig(assets.weights_dir, assets.hubert, assets.rmvpe, VOICE, **values)  # type: ignore[arg-type]  # the overrides are PoolConfig fields, which it validates


def speech_like(seed: int, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float32: a gliding harmonic tone whose pitch and noise depend on ``seed``, so inputs differ."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 110.0 + 10.0 * (seed % 13) + 20.0 * np.sin(2 * np.pi * (0.5 + 0.1 * (seed % 7)) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum((0.25 / k) * np.sin(k * phase) for k in range(1, 5))
    return (wave + 0.003 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="session")
def reference(assets: Assets):
    """An in-process VoiceConverter on the same files: the sequential result of any job."""
    from rvc.infer.converter import ConverterAssets, VoiceConverter

    converter = VoiceConverter(ConverterAssets(hubert_path=assets.hubert, rmvpe_path=assets.rmvpe))
    converter.load_voice(VOICE, assets.weights_dir / f"{VOICE}.pth", assets.weights_dir / f"{VOICE}.index")
    converter.load_voice(
        OTHER_VOICE, assets.weights_dir / f"{OTHER_VOICE}.pth", assets.weights_dir / f"{OTHER_VOICE}.index"
    )
    return converter


def assert_converts_as_reference(server: RVCServer, reference: VoiceConverter, x: np.ndarray) -> None:
    """The pool converts ``x`` (16 kHz, default voice, ``DETERMINISTIC``) exactly as ``reference`` does."""
    np.testing.assert_array_equal(
        server.convert(x, SAMPLE_RATE, DETERMINISTIC).audio,
        reference.convert(VOICE, x, SAMPLE_RATE, DETERMINISTIC).audio,
    )


@pytest.fixture(scope="module")
def pool(assets: Assets) -> Iterator[RVCServer]:
    """A running 2-worker pool shared by a module's tests."""
    from rvc.server.pool import RVCServer

    server = RVCServer(pool_config(assets)).start()
    pids: set[int] = set()
    try:
        yield server
    finally:
        pids = worker_pids(server)
        server.shutdown(drain=False, timeout=10.0)
    assert_no_leftovers(server, pids)


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def worker_pids(server: RVCServer) -> set[int]:
    return {worker.pid for worker in server.status().workers if worker.pid is not None}


def assert_no_leftovers(server: RVCServer, pids: set[int]) -> None:
    """No live child process of this test process, no shared memory segment of the pool."""
    from rvc.server.shm import list_segments

    assert list_segments(server.shm_prefix) == []
    children = multiprocessing.active_children()
    assert children == [], f"child processes left: {children}"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} still exists"
