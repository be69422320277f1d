"""Stream jobs in a running pool on real (tiny) RVC assets: parity, sharing a worker, close, crash, errors."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from rvc.errors import InvalidInput, JobCancelled, JobTimeout, NotFound, WorkerCrashed
from rvc.infer.converter import VoiceConverter
from rvc.infer.params import ConversionParams
from rvc.infer.stream import open_stream
from rvc.infer.stream_config import StreamConfig
from rvc.processing.backends import PoolVoice
from rvc.server.pool import RVCServer
from rvc.server.shm import list_segments
from rvc.server.streams import StreamHandle
from rvc.settings import Settings

from .conftest import VOICE, Assets, pool_config, speech_like, wait_for, worker_pids

RATE = 40000  # the demo voice's rate
PARAMS = ConversionParams(deterministic=True)
SEEDED = ConversionParams(pitch_shift=3, seed=11)


def _in_process(reference: VoiceConverter, audio: np.ndarray, sizes: list[int], params: ConversionParams,
                config: StreamConfig | None = None) -> list[np.ndarray]:  # fmt: skip
    """The same input fed through ``open_stream`` in this process, one output per feed plus the flush."""
    stream = open_stream(reference, VOICE, params, config)
    return [stream.feed(piece) for piece in _split(audio, sizes)] + [stream.flush()]


def _through_pool(handle: StreamHandle, audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    futures = [handle.feed(piece) for piece in _split(audio, sizes)] + [handle.flush()]
    return [future.result(timeout=300) for future in futures]


def _split(audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    pieces, start, index = [], 0, 0
    while start < audio.shape[0]:
        size = sizes[index % len(sizes)]
        pieces.append(audio[start : start + size])
        start, index = start + size, index + 1
    return pieces


def _open_streams(pool: RVCServer) -> tuple[int, list[int]]:
    status = pool.status()
    return status.open_streams, [worker.streams for worker in status.workers]


@pytest.fixture(scope="module")
def solo(assets: Assets) -> Iterator[PoolVoice]:
    """The gateway's adapter around a 1-worker pool: every stream and job shares that one worker."""
    settings = Settings(rvc_model=f"{VOICE}.pth", weights_dir=assets.weights_dir)
    voice = PoolVoice(settings, pool_config(assets, num_workers=1))
    asyncio.run(voice.start())
    try:
        yield voice
    finally:
        asyncio.run(voice.close())


def test_blocks_through_the_pool_equal_the_in_process_stream_and_one_whole_feed(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    audio = speech_like(5, seconds=1.3)  # whole steps of 0.25 and 0.5 s (the schedule; 1.0 s next) and a partial one
    sizes = [777, 4000, 3001, 50, 9000]
    expected = _in_process(reference, audio, sizes, PARAMS)
    with pool.open_stream(None, PARAMS) as handle:
        assert handle.voice == VOICE and handle.sample_rate == RATE and handle.block_samples == 4000
        pieces = _through_pool(handle, audio, sizes)
    # the pool sends whole steps only, and the converter steps by the same schedule: every feed's share matches
    assert [piece.shape for piece in pieces] == [piece.shape for piece in expected]
    for got, want in zip(pieces, expected, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    joined = np.concatenate(pieces)
    assert joined.shape == (audio.shape[0] * RATE // 16000,)  # the length rule: floor(N * rate / 16 kHz)
    assert np.abs(joined).max() > 0

    whole = _through_pool(pool.open_stream(VOICE, PARAMS), audio, [audio.shape[0]])
    np.testing.assert_allclose(np.concatenate(whole), joined, rtol=0, atol=1e-6)
    wait_for(lambda: _open_streams(pool) == (0, [0, 0]), 60, "both streams to leave their workers")
    assert pool.status().stream_blocks_done >= 6  # per stream: two whole steps and the flush's one


@pytest.mark.parametrize("samples", [0, 100, 4000, 9999])
def test_total_length_is_the_input_duration_at_the_voice_rate(pool: RVCServer, samples: int) -> None:
    handle = pool.open_stream(None, SEEDED, StreamConfig(block=0.1, context=0.5))
    pieces = _through_pool(handle, speech_like(samples, seconds=1.0)[:samples], [1500])
    assert sum(piece.shape[0] for piece in pieces) == samples * RATE // 16000
    with pytest.raises(InvalidInput, match="flushed"):
        handle.feed(np.zeros(10, np.float32))


def test_two_streams_at_once_each_get_their_own_audio(pool: RVCServer, reference: VoiceConverter) -> None:
    inputs = [speech_like(21, seconds=1.1), speech_like(22, seconds=0.9)]
    params = [PARAMS, SEEDED]
    handles = [pool.open_stream(None, p) for p in params]
    assert len({handle.stream_id for handle in handles}) == 2
    outputs: list[list[np.ndarray]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        outputs[index] = _through_pool(handles[index], inputs[index], [2500, 4000])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        expected = np.concatenate(_in_process(reference, inputs[index], [2500, 4000], params[index]))
        np.testing.assert_allclose(np.concatenate(outputs[index]), expected, rtol=0, atol=1e-6)
    assert not np.allclose(outputs[0][-1][:100], outputs[1][-1][:100])
    wait_for(lambda: _open_streams(pool)[0] == 0, 60, "the streams to close")


def test_an_offline_job_runs_between_the_blocks_of_a_stream_on_the_same_worker(
    solo: PoolVoice, reference: VoiceConverter
) -> None:
    pool = solo.pool
    audio = speech_like(31, seconds=2.0)  # steps of 0.25 s, then three of 0.5 s, and the rest
    job_input = speech_like(32, seconds=0.3)
    finished: list[str] = []
    with pool.open_stream(None, PARAMS) as handle:
        first = handle.feed(audio[:4000]).result(timeout=300)  # the stream now lives on the one worker
        rest = handle.feed(audio[4000:])  # three steps queued for that worker
        job = pool.submit(job_input, 16000, PARAMS)
        job.add_done_callback(lambda _handle: finished.append("job"))
        rest.add_done_callback(lambda _future: finished.append("stream blocks"))
        result = job.result(timeout=300)
        assert pool.status().open_streams == 1  # done while the stream is still open
        outputs = [first, rest.result(timeout=300), handle.flush().result(timeout=300)]
    assert finished == ["job", "stream blocks"]  # the job did not wait for the stream's three steps
    np.testing.assert_array_equal(result.audio, reference.convert(VOICE, job_input, 16000, PARAMS).audio)
    expected = np.concatenate(_in_process(reference, audio, [4000, audio.shape[0]], PARAMS))
    np.testing.assert_allclose(np.concatenate(outputs), expected, rtol=0, atol=1e-6)


def test_close_mid_stream_frees_the_worker_state_and_later_feeds_raise(pool: RVCServer) -> None:
    handle = pool.open_stream(None, SEEDED)
    assert handle.feed(speech_like(41, 0.25)).result(timeout=300).shape == (10000 - 2400,)
    assert _open_streams(pool)[0] == 1 and sum(_open_streams(pool)[1]) == 1  # its worker holds it
    pending = handle.feed(speech_like(42, 2.0))
    handle.close()
    with pytest.raises(JobCancelled, match="closed"):
        pending.result(timeout=60)
    wait_for(lambda: _open_streams(pool) == (0, [0, 0]), 60, "the worker to drop the stream")
    wait_for(lambda: not list_segments(f"{pool.shm_prefix}{handle.stream_id}-"), 60, "its segments to go")
    with pytest.raises(JobCancelled):
        handle.feed(speech_like(43, 0.25))
    with pytest.raises(JobCancelled):
        handle.flush()
    handle.close()  # idempotent
    assert pool.convert(speech_like(44, 0.3), 16000, PARAMS).sample_rate == RATE


def test_a_forgotten_handle_frees_its_stream_when_collected(pool: RVCServer) -> None:
    handle = pool.open_stream(None, SEEDED)
    handle.feed(speech_like(45, 0.25)).result(timeout=300)
    assert pool.status().open_streams == 1
    del handle
    gc.collect()
    wait_for(lambda: _open_streams(pool) == (0, [0, 0]), 60, "the collected handle's stream to close")


def test_killing_the_streams_worker_fails_its_futures_and_the_pool_heals(
    pool: RVCServer, reference: VoiceConverter
) -> None:
    before = worker_pids(pool)
    handle = pool.open_stream(None, PARAMS)
    handle.feed(speech_like(51, 0.25)).result(timeout=300)
    holder = next(worker for worker in pool.status().workers if worker.streams == 1)
    pending = handle.feed(speech_like(52, 5.0))  # ten steps
    os.kill(holder.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="SIGKILL"):
        pending.result(timeout=60)
    with pytest.raises(WorkerCrashed):
        handle.feed(speech_like(53, 0.25))
    assert pool.status().open_streams == 0
    wait_for(lambda: pool.status().ready_workers == 2, 300, "a replacement worker")
    after = worker_pids(pool)
    assert holder.pid not in after and len(after & before) == 1
    audio = speech_like(54, 0.6)
    healed = _through_pool(pool.open_stream(None, PARAMS), audio, [4000])
    np.testing.assert_allclose(
        np.concatenate(healed), np.concatenate(_in_process(reference, audio, [4000], PARAMS)), rtol=0, atol=1e-6
    )
    assert pool.convert(audio, 16000, PARAMS).sample_rate == RATE
    assert not list_segments(f"{pool.shm_prefix}{handle.stream_id}-")


@pytest.mark.parametrize(
    "params, config, field",
    [
        (ConversionParams(pitch_shift=99), None, "pitch_shift"),
        (ConversionParams(f0_method="bogus"), None, "f0_method"),
        (ConversionParams(protect=0.9), None, "protect"),
        ({"pitch_shift": 2}, None, "params"),
        (ConversionParams(), {"block": 0.25}, "config"),
    ],
)
def test_bad_params_at_open_are_invalid_input_naming_the_field(
    pool: RVCServer, params: object, config: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        pool.open_stream(None, params, config)  # type: ignore[arg-type]  # wrong types on purpose
    assert info.value.field == field
    assert pool.status().open_streams == 0


def test_an_unknown_voice_is_not_found_and_bad_audio_is_refused(pool: RVCServer) -> None:
    with pytest.raises(NotFound) as info:
        pool.open_stream("Nobody", PARAMS)
    assert info.value.field == "voice"
    with pool.open_stream(None, PARAMS) as handle:
        for bad in (np.full(100, np.nan, np.float32), np.zeros((2, 100), np.float32), [0.0] * 100):
            with pytest.raises(InvalidInput) as bad_info:
                handle.feed(bad)  # type: ignore[arg-type]  # a list on purpose
            assert bad_info.value.field == "audio"


def test_pool_voice_streams_through_asyncio(solo: PoolVoice, reference: VoiceConverter) -> None:
    audio = speech_like(61, seconds=0.8)

    async def main() -> list[np.ndarray]:
        async with await solo.open_stream(None, SEEDED) as stream:
            assert stream.sample_rate == RATE
            pieces = [await stream.feed(piece) for piece in _split(audio, [3000])]
            return [*pieces, await stream.flush()]

    pieces = asyncio.run(main())
    expected = _in_process(reference, audio, [3000], SEEDED)
    np.testing.assert_allclose(np.concatenate(pieces), np.concatenate(expected), rtol=0, atol=1e-6)

    async def cancelled() -> None:
        stream = await solo.open_stream(None, SEEDED)
        task = asyncio.create_task(stream.feed(speech_like(62, 3.0)))
        deadline = asyncio.get_running_loop().time() + 60
        while not any((w.job_id or "").startswith(f"{stream.stream_id}-") for w in solo.pool.status().workers):
            assert asyncio.get_running_loop().time() < deadline, "the feed never reached the worker"
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(JobCancelled):
            await stream.feed(audio)

    asyncio.run(cancelled())
    wait_for(lambda: solo.pool.status().open_streams == 0, 60, "the cancelled stream to close")


def test_a_block_past_the_job_timeout_fails_its_stream_and_the_hung_worker_is_replaced(assets: Assets) -> None:
    # one 8 s block takes far longer than 50 ms on the demo voice: its worker is killed as hung at 60 ms
    pool = RVCServer(pool_config(assets, num_workers=1, job_timeout_s=0.05, hung_grace_s=0.01)).start()
    try:
        pid = next(iter(worker_pids(pool)))
        handle = pool.open_stream(None, PARAMS, StreamConfig(block=8.0, steady_block=8.0, context=0.5))
        with pytest.raises(JobTimeout, match="past its deadline"):
            handle.feed(speech_like(70, 8.0)).result(timeout=60)
        wait_for(lambda: pool.status().workers_killed_hung == 1, 60, "the hung worker to be killed")
        wait_for(lambda: pool.status().ready_workers == 1, 300, "a replacement worker")
        assert pid not in worker_pids(pool) and pool.status().open_streams == 0
        with pytest.raises(JobTimeout):
            handle.feed(speech_like(71, 0.25))
        assert pool.convert(speech_like(72, 0.3), 16000, PARAMS, timeout_s=300).sample_rate == RATE
    finally:
        pool.shutdown(drain=False, timeout=10.0)
    assert not list_segments(pool.shm_prefix)
