"""``StreamHandle``: the caller's view of one stream job in the pool.

    with server.open_stream(None, ConversionParams(pitch_shift=2)) as stream:   # default voice
        for chunk in tts_chunks:                       # (N,) float32 at 16 kHz, any N
            play(stream.feed(chunk).result())          # audio at stream.sample_rate, maybe empty
        play(stream.flush().result())                  # the rest; the worker's state is freed

Why the pool cuts the input. A worker runs one command at a time, and a
stream's converter runs one step per whole step of input (``StreamConfig``'s
schedule: ``block``, doubling up to ``steady_block``). If a feed of several
steps went to the worker as one command, an offline job queued behind it
would wait for all of them; so the handle keeps the samples that do not yet
fill the next step and sends whole steps only, one command each (the flush
sends the rest). The converter cuts its steps by the same schedule whatever
it is fed, so the output is the same as feeding it directly, however the
audio was split.

Every method may be called from any thread; feeds are queued in call order
and their futures settle in that order. The futures are already running,
so ``Future.cancel()`` refuses: ``close()`` is how a stream is cancelled.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from rvc.server.jobs import mono_float32, new_future
from rvc.server.shm import input_segment_name, output_segment_name, unlink_segment, write_audio
from rvc.server.stream_jobs import Block, Feed, Stream

if TYPE_CHECKING:
    from rvc.server.state import PoolState

__all__ = ["HOP_SAMPLES", "StreamHandle"]

HOP_SAMPLES = 160  # 16 kHz samples per 10 ms frame, the unit of StreamConfig's lengths


def _close_abandoned(state_ref: weakref.ReferenceType[PoolState], stream_id: str) -> None:
    """Close a stream whose handle was collected, from a thread of its own.

    The collector may run in any thread, the pool's supervisor included while
    it holds the pool's lock, which ``close_stream`` takes: closing here could
    deadlock.
    """
    state = state_ref()
    if state is None:
        return
    reason = "its handle was garbage-collected without close()"
    try:
        threading.Thread(target=state.close_stream, args=(stream_id, reason), daemon=True).start()
    except RuntimeError:  # the interpreter is shutting down: the pool's own shutdown frees the stream
        pass


class StreamHandle:
    """One open stream: ``feed`` 16 kHz audio, ``flush`` once, or ``close`` at any time.

    stream_id: unique in the pool. voice: the voice it converts to.
    sample_rate: the rate of every array its futures return (the voice's rate).
    """

    def __init__(self, stream: Stream, state: PoolState, shm_prefix: str) -> None:
        self._stream = stream
        self._state = state
        self._prefix = shm_prefix
        self._lock = threading.Lock()
        self._carry = np.zeros(0, dtype=np.float32)
        self._fed = 0
        self._numbers = itertools.count(1)
        self._steps = 0  # steps cut so far: the schedule's position
        self._block_samples = stream.config.block_frames * HOP_SAMPLES
        # a forgotten handle must not pin a worker's state for the pool's lifetime
        self._finalizer = weakref.finalize(self, _close_abandoned, weakref.ref(state), stream.stream_id)

    @property
    def stream_id(self) -> str:
        return self._stream.stream_id

    @property
    def voice(self) -> str:
        return self._stream.voice

    @property
    def sample_rate(self) -> int:
        return self._stream.sample_rate

    @property
    def block_samples(self) -> int:
        """16 kHz samples of the first step: the least input that gives output."""
        return self._block_samples

    def _step_samples(self) -> int:
        return self._stream.config.step_frames(self._steps) * HOP_SAMPLES

    def feed(self, audio16k: np.ndarray) -> concurrent.futures.Future[np.ndarray]:
        """Queue (N,) float audio at 16 kHz (N >= 0); the future gets (M,) float32 at ``sample_rate``.

        M covers the whole steps this feed completed (0 while a step fills).
        Raises InvalidInput for bad audio or a flushed stream, and the stream's
        own error (JobCancelled, WorkerCrashed, JobTimeout, ...) once it ended;
        the future raises that error when the stream ends before its blocks did.
        """
        samples = mono_float32(audio16k, allow_empty=True)
        with self._lock:
            joined = np.concatenate([self._carry, samples]) if self._carry.size else samples
            pieces, start = [], 0
            while joined.shape[0] - start >= (size := self._step_samples()):
                pieces.append(joined[start : start + size])
                start += size
                self._steps += 1
            future = self._queue(pieces, final=False)
            self._carry = joined[start:].copy()
            self._fed += samples.shape[0]
        return future

    def flush(self) -> concurrent.futures.Future[np.ndarray]:
        """The rest of the output; the stream ends and its worker drops its state once it is converted.

        After it the stream has returned ``floor(N · sample_rate / 16000)``
        samples in all for N samples fed (the converter's length rule).
        """
        with self._lock:
            pieces = [self._carry] if self._fed else []  # nothing fed: nothing to push out, no worker needed
            future = self._queue(pieces, final=True)
            self._carry = np.zeros(0, dtype=np.float32)
        return future

    def close(self, reason: str = "closed by the caller") -> None:
        """Cancel the stream now: waiting futures get JobCancelled, the worker's state is freed.

        Idempotent; after a flush whose future has settled it does nothing (the stream is gone).
        """
        self._state.close_stream(self.stream_id, reason)
        self._finalizer.detach()

    def _queue(self, pieces: list[np.ndarray], *, final: bool) -> concurrent.futures.Future[np.ndarray]:
        """Write each piece to shared memory as one block and queue them as one feed (under ``_lock``)."""
        future: concurrent.futures.Future[Any] = new_future()
        feed = Feed(future=future, blocks_left=len(pieces))
        blocks: list[Block] = []
        try:
            for index, piece in enumerate(pieces):
                block_id = f"{self.stream_id}-{next(self._numbers)}"
                blocks.append(
                    Block(
                        block_id=block_id,
                        num_samples=int(piece.shape[0]),
                        input_segment=write_audio(input_segment_name(self._prefix, block_id), piece),
                        output_segment=output_segment_name(self._prefix, block_id),
                        final=final and index == len(pieces) - 1,
                        feed=feed,
                        queued_at=time.monotonic(),
                    )
                )
            self._state.feed_stream(self._stream, blocks, feed, final=final)
        except BaseException:
            for block in blocks:
                unlink_segment(block.input_segment)
            raise
        if final:
            self._finalizer.detach()
        return future

    def __enter__(self) -> StreamHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StreamHandle(stream_id={self.stream_id!r}, voice={self.voice!r}, sample_rate={self.sample_rate})"
