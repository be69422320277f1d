"""The messages between the pool's supervisor and its worker processes.

Each message is a frozen dataclass sent whole over the worker's pipe
(multiprocessing pickles it); neither side unpacks anything by position,
and both dispatch on the message's class with ``match``::

    supervisor -> worker (Command)          worker -> supervisor (Reply)
                                            Ready | InitFailed      once, after start
    ConvertJob                              JobConverted | JobFailed
    OpenStream | StreamBlock                BlockConverted | StreamFailed
    CloseStream                             StreamClosed
    LoadVoice | UnloadVoice                 VoiceDone
    Stop                                    (the worker exits 0)

Audio never travels in a message: a message names the shared-memory
segment that holds it (shm.py), so a pipe carries a few hundred bytes per
job whatever the audio's length.

Every reply that answers a command carries the id of the task it answers
(``job_id``, ``op_id``); the supervisor checks it against the task it
believes the worker is running, so a late answer to an abandoned task can
never settle another task's future.

A stream job keeps a ``StreamConverter`` on one worker between its blocks
(streams.py says why the pool cuts a stream into blocks). ``OpenStream``
builds that state and converts the stream's first block, so every block,
the first included, is answered by exactly one reply keyed by its
``block_id``: ``BlockConverted``, or ``StreamFailed`` after which the worker
holds nothing of the stream. A ``final`` block flushes the stream and frees
its state on the worker; ``CloseStream`` frees it at any other time.
"""

from __future__ import annotations

from dataclasses import dataclass

from rvc.infer.params import ConversionParams, VoiceInfo
from rvc.infer.stream_config import StreamConfig
from rvc.server.voices import VoiceFiles
from rvc.server.wire import ErrorReport

__all__ = [
    "BlockConverted",
    "CloseStream",
    "Command",
    "ConvertJob",
    "InitFailed",
    "JobConverted",
    "JobFailed",
    "LoadVoice",
    "OpenStream",
    "Ready",
    "Reply",
    "Stop",
    "StreamBlock",
    "StreamClosed",
    "StreamFailed",
    "UnloadVoice",
    "VoiceDone",
]


@dataclass(frozen=True)
class Command:
    """A message from the supervisor to one worker."""


@dataclass(frozen=True)
class Reply:
    """A message from a worker to the supervisor."""


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvertJob(Command):
    """Convert ``num_samples`` float32 samples at ``sample_rate`` from ``input_segment``.

    The worker writes the result to ``output_segment`` (which it creates) and
    answers ``JobConverted`` or ``JobFailed``. ``params`` were validated when
    the job entered the pool.
    """

    job_id: str
    voice: str
    input_segment: str | None
    num_samples: int
    sample_rate: int
    params: ConversionParams
    output_segment: str


@dataclass(frozen=True)
class StreamBlock(Command):
    """Feed ``num_samples`` float32 samples at 16 kHz from ``input_segment`` to stream ``stream_id``.

    The pool cuts a stream so that a block completes at most one converter
    step (``final`` blocks excepted: a flush pushes the rest out in one or two
    more). ``final``: flush after feeding; the worker then drops the stream.
    The output, at the voice's rate, goes to ``output_segment`` (created by
    the worker unless it is empty).
    """

    stream_id: str
    block_id: str
    input_segment: str | None
    num_samples: int
    output_segment: str
    final: bool


@dataclass(frozen=True)
class OpenStream(Command):
    """Open stream ``stream_id`` on ``voice`` and convert its first ``block`` (one reply, for the block).

    ``params`` were validated when the stream entered the pool; the
    voice-dependent checks (speaker id, rmvpe present) fail the block.
    """

    stream_id: str
    voice: str
    params: ConversionParams
    config: StreamConfig
    block: StreamBlock


@dataclass(frozen=True)
class CloseStream(Command):
    """Drop stream ``stream_id`` (a no-op for a stream the worker does not hold); answered by ``StreamClosed``."""

    stream_id: str


@dataclass(frozen=True)
class LoadVoice(Command):
    """Load (or replace) a voice from its files; answered by ``VoiceDone``."""

    op_id: int
    files: VoiceFiles


@dataclass(frozen=True)
class UnloadVoice(Command):
    """Drop a resident voice; answered by ``VoiceDone``."""

    op_id: int
    name: str


@dataclass(frozen=True)
class Stop(Command):
    """Exit now (sent only to a worker with no task)."""


# -- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready(Reply):
    """Models loaded, voices resident, warm-up done: the worker takes commands from now on.

    ``device`` is where its models run once "auto" is resolved ("cpu", "cuda", "cuda:N") and
    ``precision`` its decoder's (RVC_PRECISION resolved: fp32, bf16 or fp16), for /status: the
    worker's own word, not the setting's, because a setting of "auto" could otherwise hide a worker
    on the CPU or in fp32. ``precision_source`` says how it was chosen ("fp16" when set, or
    "auto -> fp16 (main's rule: NVIDIA L4, capability 8.9)").
    """

    pid: int
    voices: dict[str, VoiceInfo]
    startup_s: float
    rss_mb: float | None
    device: str = "cpu"
    precision: str = "fp32"
    precision_source: str = "fp32"


@dataclass(frozen=True)
class InitFailed(Reply):
    """The worker could not start (assets unreadable, ...); it exits 1 right after."""

    error: ErrorReport


@dataclass(frozen=True)
class JobConverted(Reply):
    """``num_samples`` float32 samples at ``sample_rate`` are in the job's output segment.

    timings: the converter's seconds per stage plus ``worker_convert`` and
    ``worker_shm`` (the worker's share of the IPC cost). ``gpu_reserved_mb``: what its CUDA
    caching allocator holds after the job (None on the CPU), for the recycling rule.
    """

    job_id: str
    num_samples: int
    sample_rate: int
    timings: dict[str, float]
    rss_mb: float | None
    gpu_reserved_mb: float | None = None


@dataclass(frozen=True)
class JobFailed(Reply):
    """The job raised; the worker lives on (a poisoned input costs one job), unless
    ``worker_exits``: a sticky CUDA error left its context unusable, and it exits right after
    this reply, so the supervisor sends it nothing more and starts a replacement.
    """

    job_id: str
    error: ErrorReport
    rss_mb: float | None
    gpu_reserved_mb: float | None = None
    worker_exits: bool = False


@dataclass(frozen=True)
class BlockConverted(Reply):
    """``num_samples`` float32 samples at ``sample_rate`` are in the block's output segment.

    timings: the converter's seconds per stage for this block plus ``worker_convert`` and ``worker_shm``.
    """

    stream_id: str
    block_id: str
    num_samples: int
    sample_rate: int
    timings: dict[str, float]
    rss_mb: float | None


@dataclass(frozen=True)
class StreamFailed(Reply):
    """Block ``block_id`` raised; the worker dropped the stream (and lives on, unless ``worker_exits``:
    a sticky CUDA error left its GPU context unusable, so it exits after this reply)."""

    stream_id: str
    block_id: str
    error: ErrorReport
    rss_mb: float | None
    worker_exits: bool = False


@dataclass(frozen=True)
class StreamClosed(Reply):
    """The worker holds nothing of stream ``stream_id`` any more."""

    stream_id: str


@dataclass(frozen=True)
class VoiceDone(Reply):
    """A voice operation ended: ``info`` after a load, ``error`` when it failed."""

    op_id: int
    name: str
    info: VoiceInfo | None = None
    error: ErrorReport | None = None
