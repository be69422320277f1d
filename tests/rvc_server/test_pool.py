"""A running 2-worker pool on real (tiny) RVC assets: routing, errors, backpressure, voices, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import numpy as np
import pytest

from rvc.errors import Busy, InvalidInput, JobCancelled, JobTimeout, ModelUnavailable, NotFound, WorkerCrashed
from rvc.infer.converter import VoiceConverter
from rvc.infer.params import ConversionParams
from rvc.server.pool import RVCServer

from .conftest import OTHER_VOICE, SAMPLE_RATE, VOICE, speech_like, wait_for, worker_pids


def _params(index: int) -> ConversionParams:
    # half exactly deterministic, half seeded noise, pitch varies: routing mistakes would show
    return ConversionParams(pitch_shift=index % 5 - 2, seed=1000 + index, deterministic=index % 2 == 0)


def test_concurrent_jobs_from_many_threads_each_get_their_own_sequential_result(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    inputs = [speech_like(seed, seconds=0.25) for seed in range(24)]
    handles: list = [None] * 24
    barrier = threading.Barrier(6)

    def submit_four(thread_index: int) -> None:
        barrier.wait()
        for index in range(thread_index, 24, 6):
            handles[index] = pool.submit(inputs[index], SAMPLE_RATE, _params(index))

    threads = [threading.Thread(target=submit_four, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({handle.job_id for handle in handles}) == 24
    results = [handle.result(timeout=300) for handle in handles]

    outputs = []
    for index, result in enumerate(results):
        expected = reference.convert(VOICE, inputs[index], SAMPLE_RATE, _params(index))
        assert result.sample_rate == expected.sample_rate == 40000
        assert result.audio.dtype == np.float32 and result.audio.shape == expected.audio.shape
        np.testing.assert_array_equal(result.audio, expected.audio, err_msg=f"job {index}")
        assert {"queue_wait", "ipc", "pool_total", "synthesizer", "total"} <= set(result.timings)
        assert result.timings["pool_total"] >= result.timings["total"]
        outputs.append(result.audio)
    # distinct inputs gave distinct outputs, so equality above proves no cross-talk
    assert len({output.tobytes() for output in outputs}) == 24
    status = pool.status()
    assert status.jobs_done >= 24 and status.queue_depth == 0 and status.running == 0
    assert {"queue_wait", "ipc", "pool_total", "f0", "hubert"} <= set(status.stage_avg_s)


def test_event_loop_callers_await_results_without_blocking(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    inputs = [speech_like(100 + seed, seconds=0.3) for seed in range(4)]

    async def main() -> list:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        background = asyncio.create_task(ticker())
        handles = [pool.submit(x, SAMPLE_RATE, _params(1)) for x in inputs[:3]]
        results = await asyncio.gather(*(handle.wait(timeout=300) for handle in handles))
        results.append(await pool.submit(inputs[3], SAMPLE_RATE, _params(1)))  # a handle is awaitable
        background.cancel()
        assert ticks > 1  # the loop kept running while workers converted
        return results

    for x, result in zip(inputs, asyncio.run(main()), strict=True):
        np.testing.assert_array_equal(
            result.audio, reference.convert(VOICE, x, SAMPLE_RATE, _params(1)).audio
        )


@pytest.mark.parametrize(
    "audio, rate, params, field",
    [
        (np.full(4000, np.nan, np.float32), SAMPLE_RATE, None, "audio"),
        (np.zeros((2, 4000), np.float32), SAMPLE_RATE, None, "audio"),
        (np.zeros(0, np.float32), SAMPLE_RATE, None, "audio"),
        (np.zeros(4000, np.float32), 0, None, "sample_rate"),
        ([0.0] * 4000, SAMPLE_RATE, None, "audio"),
        (np.zeros(4000, np.float32), SAMPLE_RATE, ConversionParams(f0_method="bogus"), "f0_method"),
        (np.zeros(4000, np.float32), SAMPLE_RATE, {"pitch_shift": 2}, "params"),
    ],
)
def test_bad_requests_are_refused_at_submit(
    pool: RVCServer, audio: object, rate: int, params: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        pool.submit(audio, rate, params)
    assert info.value.field == field


def test_poisoned_jobs_fail_alone_and_the_workers_survive(pool: RVCServer, reference: VoiceConverter) -> None:
    pids = worker_pids(pool)
    bad_speaker = pool.submit(speech_like(1, 0.3), SAMPLE_RATE, ConversionParams(speaker_id=5))
    too_short = pool.submit(speech_like(2, 0.01), SAMPLE_RATE, ConversionParams())
    good = pool.submit(speech_like(3, 0.3), SAMPLE_RATE, _params(0))
    with pytest.raises(InvalidInput) as info:
        bad_speaker.result(timeout=300)
    assert info.value.field == "speaker_id"
    with pytest.raises(InvalidInput, match="at least"):
        too_short.result(timeout=300)
    expected = reference.convert(VOICE, speech_like(3, 0.3), SAMPLE_RATE, _params(0))
    np.testing.assert_array_equal(good.result(timeout=300).audio, expected.audio)
    assert worker_pids(pool) == pids
    assert pool.status().jobs_failed >= 2


def test_full_queue_gives_busy_at_once_and_cancelled_jobs_leave_it(pool: RVCServer) -> None:
    audio = speech_like(7, seconds=0.5)
    accepted = []
    with pytest.raises(Busy) as info:
        for _ in range(pool.config.max_queue + 40):
            accepted.append(pool.submit(audio, SAMPLE_RATE))
    assert info.value.retry_after_s >= 1.0 and info.value.status_code == 503
    status = pool.status()
    assert 0 < status.queue_depth <= pool.config.max_queue and status.jobs_rejected_busy >= 1
    cancelled = [handle.cancel("test") for handle in accepted]
    assert sum(cancelled) >= pool.config.max_queue - 4  # all but the few a worker already finished
    for handle, was_cancelled in zip(accepted, cancelled, strict=True):
        if was_cancelled:
            with pytest.raises(JobCancelled, match="test"):
                handle.result(timeout=60)
        else:
            assert handle.result(timeout=60).sample_rate == 40000
        assert handle.cancel() is False  # finished either way
    assert pool.status().queue_depth == 0
    pool.submit(audio, SAMPLE_RATE).result(timeout=300)  # room again


def test_deadlines_give_job_timeout_in_the_queue_and_while_running(pool: RVCServer) -> None:
    blockers = [pool.submit(speech_like(seed, 2.0), SAMPLE_RATE) for seed in (20, 21)]
    queued = pool.submit(speech_like(22, 0.3), SAMPLE_RATE, timeout_s=0.05)
    with pytest.raises(JobTimeout, match="queue"):
        queued.result(timeout=60)
    running = pool.submit(speech_like(23, 2.0), SAMPLE_RATE, timeout_s=0.2)
    with pytest.raises(JobTimeout):
        running.result(timeout=60)
    for blocker in blockers:
        blocker.result(timeout=300)
    assert pool.status().jobs_timed_out >= 2
    with pytest.raises(JobTimeout, match="no result within"):  # the caller's own wait
        pool.submit(speech_like(24, 2.0), SAMPLE_RATE).result(timeout=0.01)


def test_voices_load_while_jobs_are_queued_and_are_chosen_per_job(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    inputs = [speech_like(40 + seed, 0.4) for seed in range(6)]
    queued = [pool.submit(x, SAMPLE_RATE, _params(0)) for x in inputs]
    info = pool.load_voice(f"{OTHER_VOICE}.pth")
    assert info["name"] == OTHER_VOICE and info["sample_rate"] == 40000 and info["has_index"] is True
    for x, handle in zip(inputs, queued, strict=True):  # none dropped, all on the default voice
        np.testing.assert_array_equal(
            handle.result(timeout=300).audio, reference.convert(VOICE, x, SAMPLE_RATE, _params(0)).audio
        )
    status = pool.status()
    assert set(status.voices) == {VOICE, OTHER_VOICE}
    assert all(set(worker.voices) == {VOICE, OTHER_VOICE} for worker in status.workers)

    other = pool.submit(inputs[0], SAMPLE_RATE, _params(0), voice=OTHER_VOICE).result(timeout=300)
    expected = reference.convert(OTHER_VOICE, inputs[0], SAMPLE_RATE, _params(0))
    np.testing.assert_array_equal(other.audio, expected.audio)
    assert not np.array_equal(other.audio, queued[0].result().audio)

    pool.set_default_voice(OTHER_VOICE)
    np.testing.assert_array_equal(pool.convert(inputs[0], SAMPLE_RATE, _params(0)).audio, expected.audio)
    with pytest.raises(InvalidInput, match="default voice"):
        pool.unload_voice(OTHER_VOICE)
    pool.set_default_voice(VOICE)

    pending = [pool.submit(x, SAMPLE_RATE, _params(0), voice=OTHER_VOICE) for x in inputs[:3]]
    pool.unload_voice(OTHER_VOICE)  # waits for the jobs already queued for it
    assert all(handle.result(timeout=300).sample_rate == 40000 for handle in pending)
    with pytest.raises(NotFound):
        pool.submit(inputs[0], SAMPLE_RATE, voice=OTHER_VOICE)
    assert all(set(worker.voices) == {VOICE} for worker in pool.status().workers)


@pytest.mark.parametrize(
    "name, error", [("../weights/x", InvalidInput), ("Nobody", NotFound), (".hidden", InvalidInput)]
)
def test_voice_names_are_checked_against_the_weights_folder(
    pool: RVCServer, name: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        pool.load_voice(name)
    with pytest.raises(error):
        pool.submit(speech_like(0, 0.2), SAMPLE_RATE, voice=name)


def test_kill_9_of_a_busy_worker_fails_its_job_and_the_pool_heals(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    before = worker_pids(pool)
    victim = pool.submit(speech_like(60, 3.0), SAMPLE_RATE)
    bystander = pool.submit(speech_like(61, 0.5), SAMPLE_RATE, _params(0))
    worker = wait_for(
        lambda: next(
            (w for w in pool.status().workers if w.job_id == victim.job_id and w.state == "busy"), None
        ),
        60,
        "the victim job to start",
    )
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="SIGKILL"):
        victim.result(timeout=60)
    np.testing.assert_array_equal(
        bystander.result(timeout=300).audio,
        reference.convert(VOICE, speech_like(61, 0.5), SAMPLE_RATE, _params(0)).audio,
    )
    wait_for(lambda: pool.status().ready_workers == 2, 300, "a replacement worker")
    after = worker_pids(pool)
    assert len(after) == 2 and worker.pid not in after and len(after & before) == 1
    assert pool.status().workers_crashed == 1
    x = speech_like(62, 0.3)
    np.testing.assert_array_equal(
        pool.convert(x, SAMPLE_RATE, _params(0)).audio,
        reference.convert(VOICE, x, SAMPLE_RATE, _params(0)).audio,
    )


def test_shutdown_without_drain_cancels_queued_and_running_jobs(pool: RVCServer) -> None:
    # last in this module: it stops the shared pool (the fixture's own shutdown is then a no-op)
    handles = [pool.submit(speech_like(100 + seed, 2.0), SAMPLE_RATE) for seed in range(5)]
    wait_for(lambda: pool.status().running >= 1, 60, "a job to start")
    cancelled_before = pool.status().jobs_cancelled
    pool.shutdown(drain=False, timeout=10)
    for handle in handles:
        with pytest.raises(JobCancelled, match="shutting down"):
            handle.result(timeout=1)
    assert pool.status().jobs_cancelled == cancelled_before + 5
    assert pool.state == "stopped" and pool.status().workers == ()
    with pytest.raises(ModelUnavailable):
        pool.submit(speech_like(0, 0.3), SAMPLE_RATE)
