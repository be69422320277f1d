"""SpeechWaves: a request's sentences go to the TTS in waves, so the TTS can batch them.

An autoregressive TTS decodes a batch of sentences in little more time than one (on a GPU
almost none; on this CPU the full-size LLM steps a batch of 4 in 1.4x the time of 1), but a
batch is as slow as its longest member, so the first sentence of a request is spoken alone:
its audio is the first thing the client hears. Every later wave takes all sentences that were
submitted while the previous wave was speaking and sends them at the same moment, so Triton's
dynamic batcher finds them queued together. Each sentence's result is handed over as soon as
its own call returns; the next wave starts when the whole wave has returned.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SpeechWaves"]

T = TypeVar("T")


class SpeechWaves(Generic[T]):
    """Runs ``speak(index)`` for submitted indices, one wave at a time (the first wave: one index)."""

    def __init__(self, speak: Callable[[int], Awaitable[T]]) -> None:
        self._speak = speak
        self._queued: list[tuple[int, asyncio.Future[T]]] = []
        self._wave: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[T]] = set()
        self._waves_started = 0
        self._closed = False

    @property
    def waves_started(self) -> int:
        return self._waves_started

    def submit(self, index: int) -> asyncio.Future[T]:
        """A future for ``speak(index)``'s result, resolved when that call returns."""
        if self._closed:
            raise RuntimeError("SpeechWaves is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((index, future))
        self._start_wave()
        return future

    def _start_wave(self) -> None:
        if self._closed or (self._wave is not None and not self._wave.done()) or not self._queued:
            return
        take = 1 if self._waves_started == 0 else len(self._queued)
        wave, self._queued = self._queued[:take], self._queued[take:]
        self._waves_started += 1
        self._wave = asyncio.ensure_future(self._run(wave))

    async def _run(self, wave: list[tuple[int, asyncio.Future[T]]]) -> None:
        calls: list[asyncio.Task[T]] = []
        for index, future in wave:
            call = asyncio.ensure_future(self._speak(index))
            call.add_done_callback(functools.partial(_settle, future))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)
            calls.append(call)
        await asyncio.wait(calls)
        self._wave = None  # this task is still running: _start_wave must not wait for it
        self._start_wave()

    async def close(self) -> None:
        """Cancel every queued and running call and wait for them to end."""
        self._closed = True
        for _, future in self._queued:
            future.cancel()
        self._queued.clear()
        running = [*self._calls] + ([self._wave] if self._wave is not None else [])
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


def _settle(future: asyncio.Future[T], call: asyncio.Task[T]) -> None:
    if future.done():  # the consumer cancelled it
        return
    if call.cancelled():
        future.cancel()
    elif call.exception() is not None:
        future.set_exception(call.exception())  # type: ignore[arg-type]
    else:
        future.set_result(call.result())
