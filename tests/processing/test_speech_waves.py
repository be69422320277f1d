"""SpeechWaves: the first sentence alone, then each wave together; results as they come; clean cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rvc.processing.speech_waves import SpeechWaves


class Recorder:
    """``speak`` that logs which wave each call started in and waits for the test to release it."""

    def __init__(self) -> None:
        self.waves: SpeechWaves[str] = SpeechWaves(self.speak)
        self.started: list[list[int]] = []  # indices started together, per wave
        self.release: dict[int, asyncio.Event] = {}
        self.cancelled: list[int] = []

    async def speak(self, index: int) -> str:
        while len(self.started) < self.waves.waves_started:
            self.started.append([])
        self.started[-1].append(index)
        self.release.setdefault(index, asyncio.Event())
        try:
            await self.release[index].wait()
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise
        if index < 0:
            raise ValueError(f"cannot speak {index}")
        return f"audio {index}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run_with_recorder(scenario: Callable[[Recorder], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh Recorder in its own event loop, then close the waves: also after a
    failed assertion, so that no call is left waiting on an event that will never be set."""

    async def run() -> None:
        recorder = Recorder()
        try:
            await scenario(recorder)
        finally:
            await recorder.waves.close()

    asyncio.run(run())


def test_first_sentence_alone_then_the_queued_ones_together() -> None:
    async def scenario(recorder: Recorder) -> None:
        waves = recorder.waves
        futures = [waves.submit(index) for index in range(3)]
        await settle()
        assert recorder.started == [[0]]
        recorder.release[0].set()
        assert await futures[0] == "audio 0"
        await settle()
        assert recorder.started == [[0], [1, 2]] and waves.waves_started == 2
        futures.append(waves.submit(3))  # submitted while [1, 2] speak: the next wave
        recorder.release[2].set()
        assert await futures[2] == "audio 2"  # a result is handed over when its own call returns
        await settle()
        assert not futures[1].done() and 3 not in recorder.release  # wave 3 waits for the whole wave 2
        recorder.release[1].set()
        assert await futures[1] == "audio 1"
        await settle()
        assert recorder.started[-1] == [3]
        recorder.release[3].set()
        assert await futures[3] == "audio 3"

    run_with_recorder(scenario)


def test_a_failed_call_fails_only_its_own_future() -> None:
    async def scenario(recorder: Recorder) -> None:
        waves = recorder.waves
        first = waves.submit(0)
        await settle()
        recorder.release[0].set()
        await first
        bad, good = waves.submit(-1), waves.submit(1)
        await settle()
        recorder.release[-1].set()
        with pytest.raises(ValueError, match="cannot speak -1"):
            await bad
        recorder.release[1].set()
        assert await good == "audio 1"

    run_with_recorder(scenario)


def test_close_cancels_running_and_queued_calls() -> None:
    async def scenario(recorder: Recorder) -> None:
        waves = recorder.waves
        running, queued = waves.submit(0), waves.submit(1)
        await settle()
        await waves.close()
        assert recorder.cancelled == [0] and 1 not in recorder.release  # 1 never reached the TTS
        assert running.cancelled() and queued.cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            waves.submit(2)

    run_with_recorder(scenario)


def test_a_consumer_that_stops_waiting_does_not_break_the_wave() -> None:
    async def scenario(recorder: Recorder) -> None:
        waves = recorder.waves
        first = waves.submit(0)
        first.cancel()  # the consumer went away; the call itself still finishes
        await settle()
        later = waves.submit(1)
        recorder.release[0].set()
        await settle()
        recorder.release[1].set()
        assert await later == "audio 1"

    run_with_recorder(scenario)
