"""A stream job's records in the pool: the stream, the caller's feeds, the blocks they are cut into.

A ``Stream`` is bound to one worker by its first block (its converter state
lives there) and stays there. Its blocks are sent one at a time, in order;
each ``feed`` or ``flush`` call is one ``Feed`` whose future gets the output
of its blocks joined, and feeds settle in the order they were made, even one
that carried no whole block.

``StreamTable`` holds every stream not yet gone from its worker. Like the
job queue it is not locked itself: the pool's state calls it under the
pool's lock. Dropping a block here also removes its input segment, and a
stream leaves the table only once its worker holds nothing of it, so the
open-stream count in the pool's status is the workers' real state.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rvc.errors import VoiceError
from rvc.infer.params import ConversionParams
from rvc.infer.stream_config import StreamConfig
from rvc.server.jobs import Settled
from rvc.server.shm import unlink_segment

__all__ = ["Block", "Feed", "Stream", "StreamTable"]


@dataclass(eq=False)
class Feed:
    """One ``feed`` or ``flush`` call: its future gets its blocks' outputs, joined, once all are in."""

    future: concurrent.futures.Future[Any]
    blocks_left: int
    pieces: list[np.ndarray] = field(default_factory=list)

    def outcome(self) -> np.ndarray:
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)


@dataclass(eq=False)
class Block:
    """16 kHz input for one worker command: ``num_samples`` float32 in ``input_segment``.

    ``deadline`` is set when the block becomes its stream's next (``job_timeout_s`` from then),
    so a block is timed from when it could run, not from when it was fed behind others.
    """

    block_id: str
    num_samples: int
    input_segment: str | None
    output_segment: str
    final: bool
    feed: Feed
    queued_at: float
    dispatched_at: float | None = None
    deadline: float | None = None


@dataclass(eq=False)
class Stream:
    """The pool's record of one stream (changed under the pool's lock only).

    worker_id: the worker it is bound to (None until its first block is sent).
    on_worker: that worker holds its converter (an OpenStream was sent and no
        final block, failure or CloseStream has been answered since).
    ended: why it takes no more feeds and its output is dropped (closed by the
        caller, failed, timed out); None while it runs.
    flushed: ``flush`` was called: no more feeds, the final block is queued or running.
    """

    stream_id: str
    voice: str
    params: ConversionParams
    config: StreamConfig
    sample_rate: int
    opened_at: float
    blocks: deque[Block] = field(default_factory=deque)
    feeds: deque[Feed] = field(default_factory=deque)
    running: Block | None = None
    worker_id: int | None = None
    on_worker: bool = False
    ended: VoiceError | None = None
    flushed: bool = False
    closing: bool = False  # a CloseStream is on its way to the worker

    @property
    def needs_close(self) -> bool:
        """Its worker still holds its state that nobody wants: send CloseStream when the worker is free."""
        return self.ended is not None and self.on_worker and self.running is None and not self.closing

    @property
    def gone(self) -> bool:
        """Nothing of it left anywhere: no state on a worker, nothing running, nothing to send."""
        finished = self.ended is not None or (self.flushed and not self.feeds)
        return finished and not self.on_worker and self.running is None and not self.blocks

    @property
    def busy(self) -> bool:
        """Blocks still to convert for a caller who waits."""
        return self.ended is None and (self.running is not None or bool(self.blocks))

    def next_block(self) -> Block | None:
        """The block to send now, if the stream can send one."""
        if self.ended is not None or self.running is not None or self.closing or not self.blocks:
            return None
        return self.blocks[0]


class StreamTable:
    """Every stream that still has a caller or worker state, by id."""

    def __init__(self, timeout_s: float) -> None:
        self._streams: dict[str, Stream] = {}
        self._timeout_s = timeout_s

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    def add(self, stream: Stream) -> None:
        self._streams[stream.stream_id] = stream

    def on_worker(self, worker_id: int) -> list[Stream]:
        return [stream for stream in self._streams.values() if stream.worker_id == worker_id]

    def busy(self) -> bool:
        return any(stream.busy for stream in self._streams.values())

    # -- the callers' side ------------------------------------------------------------------------

    def feed(self, stream: Stream, blocks: list[Block], feed: Feed, settled: Settled) -> None:
        """Queue a feed's blocks behind the stream's earlier ones (the caller checked it is open)."""
        stream.blocks.extend(blocks)
        stream.feeds.append(feed)
        self.promote(stream, time.monotonic())
        self.settle_ready(stream, settled)

    def fail(self, stream: Stream, error: VoiceError, settled: Settled) -> None:
        """End the stream: every waiting feed gets ``error``, queued blocks are dropped.

        A running block is left to finish (its worker cannot be interrupted); its
        output is then dropped and a CloseStream frees the worker's state.
        """
        if stream.ended is None:
            stream.ended = error
        for block in stream.blocks:
            unlink_segment(block.input_segment)
        stream.blocks.clear()
        settled.extend((feed.future, error) for feed in stream.feeds)
        stream.feeds.clear()
        self.forget_if_gone(stream)

    # -- the supervisor's side --------------------------------------------------------------------

    def promote(self, stream: Stream, now: float) -> None:
        """Start the clock of the stream's next block, once it is next."""
        block = stream.next_block()
        if block is not None and block.deadline is None:
            block.deadline = now + self._timeout_s

    def settle_ready(self, stream: Stream, settled: Settled) -> None:
        """Hand finished feeds their audio, oldest first, stopping at the first unfinished one."""
        while stream.feeds and stream.feeds[0].blocks_left == 0:
            feed = stream.feeds.popleft()
            settled.append((feed.future, feed.outcome()))
        self.forget_if_gone(stream)

    def forget_if_gone(self, stream: Stream) -> None:
        if stream.gone:
            self._streams.pop(stream.stream_id, None)

    def deadlines(self) -> list[float]:
        times = []
        for stream in self._streams.values():
            block = stream.running if stream.running is not None else stream.next_block()
            if stream.ended is None and block is not None and block.deadline is not None:
                times.append(block.deadline)
        return times
