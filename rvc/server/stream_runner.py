"""The supervisor's side of stream jobs: which block a free worker runs, replies, deaths, deadlines.

One part the supervisor (supervisor.py) composes, called from its thread
under the pool's lock, beside ``Lifecycle``.

Sharing a worker between a stream and offline jobs. A stream holds its
worker only while one block converts. When a worker is free and both one of
its streams' blocks and new work (an offline job, or a new stream's first
block, whichever came first) wait, it alternates: after a block it takes
the new work, after anything else the block. So an offline job waits behind
at most one block, and a block behind at most the job running on its
worker (plus one block of another stream on that worker). Workers with no
block of their own waiting are served first, so new work goes to them when
it can. A new stream binds to the free worker holding the fewest streams.

A worker that dies fails every stream it holds with WorkerCrashed (their
converter state died with it: a stream does not migrate); a block past its
deadline fails its stream with JobTimeout and its worker is treated like one
hung on an offline job (killed ``hung_grace_s`` later unless it answers).
"""

from __future__ import annotations

import logging
import time

from rvc.errors import JobTimeout, VoiceError, WorkerCrashed
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, Settled
from rvc.server.messages import (
    BlockConverted,
    CloseStream,
    OpenStream,
    StreamBlock,
    StreamClosed,
    StreamFailed,
)
from rvc.server.process import WorkerProcess, WorkerState
from rvc.server.shm import read_audio, unlink_segment
from rvc.server.state import PoolState
from rvc.server.stream_jobs import Block, Stream

__all__ = ["StreamRunner"]

logger = logging.getLogger(__name__)


def takes_stream_work(worker: WorkerProcess) -> bool:
    """Free for its own streams' blocks: ready, not on its way out (retiring still serves its streams)."""
    return worker.ready and worker.task is None and not worker.stopping


class StreamRunner:
    """Dispatch, replies, deaths and deadlines of the pool's streams."""

    def __init__(self, state: PoolState, config: PoolConfig) -> None:
        self._state = state
        self._config = config

    # -- choosing -------------------------------------------------------------------------------

    def own_block(self, worker: WorkerProcess) -> tuple[Stream, Block] | None:
        """The oldest next block of a stream bound to ``worker``."""
        ready = [
            (stream, block)
            for stream in self._state.streams.on_worker(worker.worker_id)
            if (block := stream.next_block()) is not None
        ]
        return min(ready, key=lambda pair: pair[1].queued_at, default=None)

    def new_stream_block(self, worker: WorkerProcess) -> tuple[Stream, Block] | None:
        """The oldest first block of an unbound stream ``worker`` could take on."""
        if worker.state is not WorkerState.SERVING or not worker.ready:
            return None  # a recycling worker takes no new streams: they would keep it alive
        ready = [
            (stream, block)
            for stream in self._state.streams
            if stream.worker_id is None and stream.voice in worker.voices
            and (block := stream.next_block()) is not None
        ]  # fmt: skip
        return min(ready, key=lambda pair: pair[1].queued_at, default=None)

    def dispatch_order(self, worker: WorkerProcess) -> tuple[bool, int]:
        """Sort key of free workers: those with no block of their own waiting first, then fewest streams."""
        return self.own_block(worker) is not None, len(worker.streams)

    def choose(self, worker: WorkerProcess, job: Job | None) -> tuple[Stream, Block] | Job | None:
        """What a free worker runs next among its streams' blocks, new streams and ``job`` (see the docstring)."""
        own = self.own_block(worker)
        new: tuple[Stream, Block] | Job | None = job
        fresh = self.new_stream_block(worker)
        if fresh is not None and (job is None or fresh[1].queued_at < job.submitted_at):
            new = fresh
        if own is not None and new is not None:
            return new if worker.last_was_block else own
        return own if own is not None else new

    # -- sending --------------------------------------------------------------------------------

    def send_close(self, worker: WorkerProcess) -> bool:
        """Free the state of an ended stream held by ``worker``; True when a CloseStream was sent."""
        stream = next((s for s in self._state.streams.on_worker(worker.worker_id) if s.needs_close), None)
        if stream is None:
            return False
        stream.closing = True
        worker.task = stream
        if not worker.send(CloseStream(stream_id=stream.stream_id)):
            worker.advance(WorkerState.STOPPING)  # its death will free the stream
        return True

    def send_block(self, worker: WorkerProcess, stream: Stream, block: Block) -> None:
        command = StreamBlock(
            stream_id=stream.stream_id, block_id=block.block_id, input_segment=block.input_segment,
            num_samples=block.num_samples, output_segment=block.output_segment, final=block.final,
        )  # fmt: skip
        opening = stream.worker_id is None
        stream.blocks.popleft()
        stream.running, block.dispatched_at = block, time.monotonic()
        worker.task, worker.last_was_block = block, True
        if opening:
            stream.worker_id, stream.on_worker = worker.worker_id, True
            worker.streams.add(stream.stream_id)
            sent = worker.send(
                OpenStream(stream.stream_id, stream.voice, stream.params, stream.config, command)
            )
        else:
            sent = worker.send(command)
        if sent:
            return
        worker.advance(WorkerState.STOPPING)
        if opening:  # never reached the worker: the stream may start on another one
            worker.task, stream.running, block.dispatched_at = None, None, None
            stream.worker_id, stream.on_worker = None, False
            worker.streams.discard(stream.stream_id)
            stream.blocks.appendleft(block)
        # else: the block stays running; the worker's death fails the stream

    # -- replies --------------------------------------------------------------------------------

    def on_reply(
        self, worker: WorkerProcess, reply: BlockConverted | StreamFailed | StreamClosed, settled: Settled
    ) -> None:
        table = self._state.streams
        stream = table.get(reply.stream_id)
        task = worker.task
        if isinstance(reply, StreamClosed):
            if stream is None or task is not stream:
                logger.error("worker %d closed stream %s it was not closing", worker.worker_id, reply.stream_id)
                return
            worker.task = None
            stream.on_worker = stream.closing = False
            worker.streams.discard(stream.stream_id)
            table.forget_if_gone(stream)
            return
        block = task if isinstance(task, Block) and task.block_id == reply.block_id else None
        if stream is None or block is None or stream.running is not block:
            logger.error("worker %d answered block %s, which it was not running", worker.worker_id, reply.block_id)
            return
        worker.task, worker.kill_at, worker.rss_mb = None, None, reply.rss_mb
        stream.running = None
        if isinstance(reply, StreamFailed) and reply.worker_exits:
            # A sticky CUDA error: the worker exits after this reply; its other streams fail at its death.
            worker.advance(WorkerState.STOPPING)
            self._state.counters.crashed += 1
            logger.error("worker %d (pid %s) has an unusable CUDA context and exits; starting a replacement",
                         worker.worker_id, worker.pid)
        if isinstance(reply, StreamFailed) or block.final:
            stream.on_worker = False  # the worker dropped it
            worker.streams.discard(stream.stream_id)
        try:
            if isinstance(reply, StreamFailed):
                self._state.counters.streams_failed += 1
                table.fail(stream, reply.error.to_exception(), settled)
            elif stream.ended is None:
                self._take_output(stream, block, reply, settled)
        finally:
            unlink_segment(block.input_segment)
            unlink_segment(block.output_segment)
            table.promote(stream, time.monotonic())
            table.forget_if_gone(stream)

    def _take_output(self, stream: Stream, block: Block, reply: BlockConverted, settled: Settled) -> None:
        table = self._state.streams
        try:
            audio = read_audio(block.output_segment, reply.num_samples)
        except (OSError, ValueError) as exc:  # the segment vanished or is short: a worker bug
            self._state.counters.streams_failed += 1
            table.fail(stream, VoiceError(f"block {block.block_id}: could not read the result: {exc}"), settled)
            return
        self._state.counters.stream_blocks_done += 1
        block.feed.pieces.append(audio)
        block.feed.blocks_left -= 1
        table.settle_ready(stream, settled)

    # -- deaths and deadlines -------------------------------------------------------------------

    def on_worker_death(self, worker: WorkerProcess, how: str, settled: Settled) -> None:
        """Every stream on a dead worker fails: its converter state is gone."""
        table = self._state.streams
        for stream in table.on_worker(worker.worker_id):
            block = stream.running
            stream.running, stream.on_worker, stream.closing = None, False, False
            if block is not None:
                unlink_segment(block.input_segment)
                unlink_segment(block.output_segment)
            if stream.ended is None:
                self._state.counters.streams_failed += 1
                error = WorkerCrashed(
                    f"worker {worker.worker_id} (pid {worker.pid}) died ({how}) holding stream "
                    f"{stream.stream_id}; the stream is lost (not retried: its input may be what killed it)"
                )
                table.fail(stream, error, settled)
            table.forget_if_gone(stream)
        worker.streams.clear()

    def expire(self, now: float, settled: Settled) -> None:
        """A stream whose next or running block is past its deadline fails with JobTimeout."""
        table = self._state.streams
        workers = {worker.worker_id: worker for worker in self._state.workers.live()}
        for stream in table:
            running = stream.running
            block = running if running is not None else stream.next_block()
            if stream.ended is not None or block is None or block.deadline is None or now < block.deadline:
                continue
            self._state.counters.streams_failed += 1
            where = "converting" if running is not None else "waiting for its worker"
            error = JobTimeout(
                f"stream {stream.stream_id}: block {block.block_id} still {where} past its deadline "
                f"({self._config.job_timeout_s:g} s)"
            )
            table.fail(stream, error, settled)
            worker = workers.get(stream.worker_id) if running is not None and stream.worker_id is not None else None
            if worker is not None and worker.kill_at is None:
                worker.kill_at = block.deadline + self._config.hung_grace_s

    def fail_all(self, error: VoiceError, settled: Settled) -> None:
        for stream in self._state.streams:
            self._state.streams.fail(stream, error, settled)

    def fail_unbound(self, error: VoiceError, settled: Settled) -> None:
        """Streams no worker holds yet (the pool can no longer start workers)."""
        for stream in self._state.streams:
            if stream.worker_id is None:
                self._state.streams.fail(stream, error, settled)
