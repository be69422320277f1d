"""Idle unload: after IDLE_UNLOAD_S without model requests, free the models; the next request loads them.

``IdleUnloader`` counts the requests that need models (``hold``) and runs a timer task. When no
request has been in flight for ``idle_s``, it runs ``unload`` (Triton's models through the
repository API, the RVC workers stopped); a request that then arrives runs ``load`` and waits for
it, and learns how long it waited (the gateway puts it in a header). One transition runs at a
time, in a task of its own: a request that arrives while the unload runs waits for it to finish and
then loads; a client that gives up while the models load cancels only its own wait, never the
load. The timer decides and marks the state in one step of the event loop, so a request that
arrives "as the timer fires" either counts as in flight (no unload) or finds the state changed
(and waits). A failed load leaves the state idle, so the next request tries again; its own
request gets the load's error (a 503 with Retry-After), never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum

from rvc.errors import ModelUnavailable, VoiceError

__all__ = ["IdleSnapshot", "IdleState", "IdleUnloader"]

logger = logging.getLogger(__name__)


class IdleState(Enum):
    WARM = "warm"
    UNLOADING = "unloading"
    IDLE = "idle"
    LOADING = "loading"


@dataclass(frozen=True)
class IdleSnapshot:
    """What /status shows of idle unload."""

    idle_unload_s: float
    state: str
    in_flight: int
    idle_for_s: float
    unloads: int
    loads: int
    last_load_s: float | None
    last_error: str | None


class IdleUnloader:
    """``async with unloader.hold() as waited_s:`` around every request that needs the models."""

    def __init__(
        self,
        idle_s: float,
        *,
        unload: Callable[[], Awaitable[None]],
        load: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_s <= 0:
            raise ValueError(f"idle_s must be positive, got {idle_s}")
        self.idle_s = idle_s
        self._unload, self._load, self._clock = unload, load, clock
        self.state = IdleState.WARM
        self.in_flight = 0
        self.last_used = clock()
        self.unloads = self.loads = 0
        self.last_load_s: float | None = None
        self.last_error: str | None = None
        self._transition: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the timer (inside the running event loop)."""
        if self._timer is None:
            self.last_used = self._clock()  # loading at start-up is not idle time
            self._timer = asyncio.create_task(self._watch(), name="idle-unload-timer")

    async def close(self) -> None:
        for task in (self._timer, self._transition):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, VoiceError):
                    pass

    # ------------------------------------------------------------------ requests
    @asynccontextmanager
    async def hold(self) -> AsyncIterator[float]:
        """Mark a request in flight for the block; first wait for the models if they are unloaded.

        Yields the seconds this request waited for them (0.0 when they were loaded).
        """
        self.in_flight += 1
        try:
            waited = 0.0
            if self.state is not IdleState.WARM:
                started = self._clock()
                await self._wake()
                waited = self._clock() - started
            yield waited
        finally:
            self.in_flight -= 1
            self.last_used = self._clock()

    async def _wake(self) -> None:
        while self.state is not IdleState.WARM:
            if self._transition is None or self._transition.done():
                self._transition = asyncio.create_task(self._load_models(), name="idle-load")
            # shielded: a client that gives up cancels its wait, not the load other requests wait for
            await asyncio.shield(self._transition)

    async def _load_models(self) -> None:
        self.state = IdleState.LOADING
        started = self._clock()
        logger.info("a request arrived while the models were unloaded: loading them")
        try:
            await self._load()
        except Exception as exc:
            self.state = IdleState.IDLE
            self.last_error = f"loading the models failed: {exc}"
            logger.error("%s", self.last_error)
            if isinstance(exc, ModelUnavailable):
                raise
            raise ModelUnavailable(f"the models were unloaded while idle and could not be loaded again: {exc}") from exc
        self.state = IdleState.WARM
        self.loads += 1
        self.last_load_s = self._clock() - started
        self.last_used = self._clock()
        logger.info("models loaded again in %.1f s", self.last_load_s)

    # ------------------------------------------------------------------ the timer
    def due(self) -> bool:
        """True when the models are loaded, nothing is in flight and nothing was for ``idle_s``."""
        return (
            self.state is IdleState.WARM
            and self.in_flight == 0
            and self._clock() - self.last_used >= self.idle_s
            and (self._transition is None or self._transition.done())
        )

    async def _watch(self) -> None:
        poll_s = min(1.0, self.idle_s / 4)
        while True:
            await asyncio.sleep(poll_s)
            if self.due():
                self.state = IdleState.UNLOADING  # in the same loop step as the check: no request slips between
                self._transition = asyncio.create_task(self._unload_models(), name="idle-unload")
                try:
                    await asyncio.shield(self._transition)
                except VoiceError:
                    pass  # logged by _unload_models

    async def _unload_models(self) -> None:
        logger.info("no model request for %g s: unloading the models (IDLE_UNLOAD_S)", self.idle_s)
        try:
            await self._unload()
        except Exception as exc:  # noqa: BLE001 - whatever was unloaded is loaded again by the next request
            self.last_error = f"unloading the models failed: {exc}"
            logger.error("%s", self.last_error)
        self.state = IdleState.IDLE
        self.unloads += 1

    def snapshot(self) -> IdleSnapshot:
        return IdleSnapshot(
            idle_unload_s=self.idle_s, state=self.state.value, in_flight=self.in_flight,
            idle_for_s=round(max(0.0, self._clock() - self.last_used), 1) if self.in_flight == 0 else 0.0,
            unloads=self.unloads, loads=self.loads,
            last_load_s=None if self.last_load_s is None else round(self.last_load_s, 3), last_error=self.last_error,
        )

    @property
    def idle(self) -> bool:
        """The models are (being) unloaded or loaded again: /health says ``idle``."""
        return self.state is not IdleState.WARM
