"""IdleUnloader's ordering rules, with plain coroutines for unload and load (the real parts are
exercised on the stack in tests/api/test_idle_unload.py): the races there are timing-dependent,
here each is forced with events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rvc.errors import ModelUnavailable
from rvc.processing.idle import IdleState, IdleUnloader


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Parts:
    """Records the order of unloads and loads; each may be held open by its event."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.unloaders: list[IdleUnloader] = []  # every one built on these parts (``make``)
        self.unload_gate = asyncio.Event()
        self.load_gate = asyncio.Event()
        self.unload_gate.set()
        self.load_gate.set()
        self.fail_load = False

    async def unload(self) -> None:
        self.calls.append("unload")
        await self.unload_gate.wait()
        self.calls.append("unloaded")

    async def load(self) -> None:
        self.calls.append("load")
        await self.load_gate.wait()
        if self.fail_load:
            raise ModelUnavailable("Triton could not load spark_tts")
        self.calls.append("loaded")


async def settle(unloader: IdleUnloader, state: IdleState) -> None:
    for _ in range(200):
        if unloader.state is state:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"state stayed {unloader.state}, wanted {state}")


def make(parts: Parts, clock: Clock) -> IdleUnloader:
    unloader = IdleUnloader(0.04, unload=parts.unload, load=parts.load, clock=clock)
    unloader.start()
    parts.unloaders.append(unloader)
    return unloader


async def unloaded(parts: Parts, clock: Clock) -> IdleUnloader:
    """An unloader that has gone idle and unloaded, the state a waking request finds."""
    unloader = make(parts, clock)
    clock.now = 1.0
    await settle(unloader, IdleState.IDLE)
    return unloader


def run_scenario(scenario: Callable[[Parts, Clock], Awaitable[None]]) -> None:
    """Run ``scenario`` on fresh parts and clock in its own event loop, then close every unloader it
    made: also after a failed assertion, so that no timer or transition task outlives the loop."""

    async def run() -> None:
        parts, clock = Parts(), Clock()
        try:
            await scenario(parts, clock)
        finally:
            for unloader in parts.unloaders:
                await unloader.close()

    asyncio.run(run())


def test_in_flight_request_is_never_unloaded_under_and_idle_time_counts_from_its_end() -> None:
    async def scenario(parts: Parts, clock: Clock) -> None:
        unloader = make(parts, clock)
        async with unloader.hold() as waited:
            assert waited == 0.0
            clock.now = 10.0
            await asyncio.sleep(0.05)
            assert parts.calls == [] and not unloader.due()
        assert not unloader.due()  # the request just ended
        clock.now = 10.05
        await settle(unloader, IdleState.IDLE)
        assert parts.calls == ["unload", "unloaded"]

    run_scenario(scenario)


def test_request_arriving_during_unload_waits_for_it_then_loads_and_reports_its_wait() -> None:
    async def scenario(parts: Parts, clock: Clock) -> None:
        parts.unload_gate.clear()
        unloader = make(parts, clock)
        clock.now = 1.0
        await settle(unloader, IdleState.UNLOADING)

        async def request() -> float:
            async with unloader.hold() as waited:
                assert unloader.state is IdleState.WARM
                return waited

        task = asyncio.create_task(request())
        await asyncio.sleep(0.02)
        clock.now = 3.5
        parts.unload_gate.set()
        assert await task == 2.5
        assert parts.calls == ["unload", "unloaded", "load", "loaded"]
        assert (unloader.unloads, unloader.loads) == (1, 1)

    run_scenario(scenario)


def test_concurrent_wakers_share_one_load_and_a_cancelled_one_does_not_cancel_it() -> None:
    async def scenario(parts: Parts, clock: Clock) -> None:
        unloader = await unloaded(parts, clock)
        parts.load_gate.clear()

        async def request() -> float:
            async with unloader.hold() as waited:
                return waited

        impatient = asyncio.create_task(request())
        patient = [asyncio.create_task(request()) for _ in range(3)]
        await asyncio.sleep(0.02)
        impatient.cancel()
        await asyncio.sleep(0.01)
        parts.load_gate.set()
        await asyncio.gather(*patient)
        assert parts.calls.count("load") == 1 and unloader.state is IdleState.WARM
        assert unloader.in_flight == 0

    run_scenario(scenario)


def test_failed_load_is_a_503_for_its_requests_and_the_next_request_tries_again() -> None:
    async def scenario(parts: Parts, clock: Clock) -> None:
        unloader = await unloaded(parts, clock)
        parts.fail_load = True
        with pytest.raises(ModelUnavailable):
            async with unloader.hold():
                pass
        assert unloader.state is IdleState.IDLE and "could not load" in (unloader.last_error or "")
        parts.fail_load = False
        async with unloader.hold():
            assert unloader.state is IdleState.WARM

    run_scenario(scenario)


def test_idle_time_must_be_positive() -> None:
    async def noop() -> None: ...

    with pytest.raises(ValueError, match="idle_s"):
        IdleUnloader(0, unload=noop, load=noop)
