"""Job ids, handles and the error/status plumbing that does not need workers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from rvc.errors import Busy, InvalidInput, JobCancelled, JobTimeout, NotFound, VoiceError, WorkerCrashed
from rvc.server.config import PoolConfig
from rvc.server.jobs import JobHandle, JobIds, Settled, new_future, settle
from rvc.server.status import PoolStatus, StageAverages, WorkerStatus, process_rss_mb
from rvc.server.wire import error_from_dict, error_to_dict


def _handle(future: Future[Any], cancelled: list[str] | None = None) -> JobHandle:
    def canceller(job_id: str, reason: str) -> bool:
        if cancelled is not None:
            cancelled.append(job_id)
        settle([(future, JobCancelled(f"job {job_id} cancelled: {reason}"))])
        return True

    return JobHandle("7", "voice", future, canceller)


def test_job_ids_are_unique_across_threads() -> None:
    ids = JobIds()
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [ids.next() for _ in range(500)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == len(set(seen)) == 4000
    assert all(name.isalnum() and name == name.lower() for name in seen)


def test_future_cannot_be_cancelled_behind_the_pools_back() -> None:
    future = new_future()
    assert future.cancel() is False
    settle([(future, 5)])
    assert future.result() == 5
    settle([(future, 6)])  # a second answer is ignored
    assert future.result() == 5


def test_result_timeout_cancels_the_job_and_raises_job_timeout() -> None:
    cancelled: list[str] = []
    handle = _handle(new_future(), cancelled)
    with pytest.raises(JobTimeout, match="no result within"):
        handle.result(timeout=0.01)
    assert cancelled == ["7"]


def test_result_raises_the_jobs_own_error() -> None:
    future = new_future()
    settle([(future, WorkerCrashed("died"))])
    handle = _handle(future)
    assert handle.done()
    with pytest.raises(WorkerCrashed):
        handle.result()
    assert isinstance(handle.exception(), WorkerCrashed)


def test_wait_in_an_event_loop_gets_the_result_set_from_another_thread() -> None:
    future = new_future()
    handle = _handle(future)

    async def main() -> object:
        threading.Timer(0.05, lambda: settle([(future, "audio")])).start()
        return await handle

    assert asyncio.run(main()) == "audio"


def test_cancelling_the_awaiting_task_cancels_the_job() -> None:
    cancelled: list[str] = []
    handle = _handle(new_future(), cancelled)

    async def main() -> None:
        task = asyncio.create_task(handle.wait())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == ["7"]
    with pytest.raises(JobCancelled):
        handle.result()


def test_wait_timeout_raises_job_timeout() -> None:
    handle = _handle(new_future())
    with pytest.raises(JobTimeout):
        asyncio.run(handle.wait(timeout=0.01))


@pytest.mark.parametrize(
    "error",
    [
        InvalidInput("bad pitch", field="pitch_shift"),
        NotFound("no voice", field="voice"),
        Busy("full", retry_after_s=2.5),
        WorkerCrashed("died"),
        JobTimeout("late"),
    ],
)
def test_project_errors_survive_the_wire(error: VoiceError) -> None:
    back = error_from_dict(error_to_dict(error))
    assert type(back) is type(error)
    assert back.message == error.message and back.field == error.field
    assert getattr(back, "retry_after_s", None) == getattr(error, "retry_after_s", None)


def test_foreign_errors_become_voice_error_naming_the_type() -> None:
    back = error_from_dict(error_to_dict(RuntimeError("shape mismatch")))
    assert type(back) is VoiceError
    assert "RuntimeError: shape mismatch" in back.message


def test_subclass_outside_the_tree_maps_to_its_nearest_project_class() -> None:
    class Special(InvalidInput):
        pass

    assert type(error_from_dict(error_to_dict(Special("x")))) is InvalidInput


def test_stage_averages_are_means_per_stage() -> None:
    stages = StageAverages()
    stages.add({"f0": 1.0, "ipc": 0.5})
    stages.add({"f0": 3.0})
    assert stages.means() == {"f0": 2.0, "ipc": 0.5}
    assert stages.mean("missing") is None


def test_pool_status_round_trips_through_json_dicts() -> None:
    worker = WorkerStatus(
        worker_id=0, pid=12, state="busy", jobs_done=3, rss_mb=100.0, voices=("a",), job_id="5", uptime_s=1.0
    )
    status = PoolStatus(
        accepting=True,
        num_workers=1,
        workers=(worker,),
        queue_depth=2,
        max_queue=4,
        running=1,
        jobs_submitted=6,
        jobs_done=3,
        jobs_failed=0,
        jobs_cancelled=0,
        jobs_timed_out=0,
        jobs_rejected_busy=1,
        workers_crashed=0,
        workers_recycled=0,
        workers_killed_hung=0,
        voices=("a",),
        default_voice="a",
        stage_avg_s={"ipc": 0.001},
    )
    data = status.to_dict()
    assert data["busy_workers"] == 1 and data["ready_workers"] == 1
    assert PoolStatus.from_dict(data) == status


def test_rss_of_this_process_is_positive() -> None:
    rss = process_rss_mb()
    assert rss is not None and rss > 1.0
    assert process_rss_mb(2**22 + 12345) is None


def test_pool_config_validates_and_normalises(tmp_path: Path) -> None:
    config = PoolConfig(tmp_path, tmp_path / "h.pt", None, "Voice.pth", extra_voices=("B.pth",))
    assert config.default_voice == "Voice" and config.extra_voices == ("B",)
    assert config.with_changes(num_workers=3).num_workers == 3
    assert config.precision == "auto" and config.with_changes(device="cpu").precision == "auto"  # the worker resolves it
    for bad in (
        {"num_workers": 0},
        {"max_queue": -1},
        {"job_timeout_s": 0},
        {"max_rss_mb": -1.0},
        {"device": "tpu"},
        {"max_jobs_per_worker": -2},
        {"default_voice": ".pth"},
        {"precision": "int8"},
        {"precision": "fp16", "device": "cpu"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
            config.with_changes(**bad)


def test_pool_config_from_settings_uses_the_service_variables(tmp_path: Path) -> None:
    from rvc.settings import load_settings

    settings = load_settings(
        weights_dir=tmp_path,
        assets_dir=tmp_path,
        rvc_workers=3,
        rvc_model="X.pth",
        rvc_queue_size=5,
        rvc_precision="bf16",
    )
    config = PoolConfig.from_settings(settings, warmup=False)
    assert (config.num_workers, config.max_queue, config.default_voice) == (3, 5, "X")
    assert config.precision == "bf16"
    assert config.hubert_path == tmp_path / "hubert" / "hubert_base.pt" and config.warmup is False
    assert config.fcpe_path == tmp_path / "fcpe" / "fcpe_c_v001.pt"  # read only when it exists


def test_settle_sets_exceptions_and_results() -> None:
    a, b = new_future(), new_future()
    settled: Settled = [(a, 1), (b, JobCancelled("x"))]
    settle(settled)
    assert a.result() == 1 and isinstance(b.exception(), JobCancelled)
