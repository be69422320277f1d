"""The model side of a worker process: one VoiceConverter, a loop over commands from its pipe.

Imported by ``worker.worker_main`` once the thread limits are set (worker.py
says why the order matters); nothing else imports it. The worker builds one
``VoiceConverter``, loads its voices, warms up, answers ``Ready``, then
serves one command at a time (messages.py lists them and their replies).
Open streams' converters live in a dict by stream id between their blocks;
the pool decides which worker holds which stream.

The device is decided here with the service's one rule
(``rvc.device.resolve_device`` on this process's torch), so DEVICE=auto
with a CPU build of torch on a GPU host fails the start instead of running
quietly on the CPU; RVC_PRECISION=auto becomes a dtype here too, for the card
this worker converts on (``rvc.gpu_rule.rvc_precision``), and ``Ready`` says
which device and precision it took, and why.

An exception inside a task is caught and sent back as that task's error (a
poisoned input costs one job, not the process). CUDA faults are the
exceptions (``rvc.device.classify_cuda_error``): an out-of-memory frees the
allocator's cache and fails the job with ``DeviceOutOfMemory`` (503 with
Retry-After) while the worker serves on; a sticky error (illegal address,
device-side assert) poisons the CUDA context for every later call, so the
job fails and the worker exits, and the supervisor starts a fresh one.
faults.py injects both for tests on machines without a GPU. When the parent
disappears the pipe reaches EOF and the worker exits, so it never outlives
the pool.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import NoReturn

import faiss
import numpy as np
import torch

from rvc.device import (
    apply_precision_flags,
    check_rvc_precision,
    classify_cuda_error,
    driver_present,
    resolve_device,
    torch_facts,
)
from rvc.errors import DeviceOutOfMemory, NotFound, WorkerCrashed
from rvc.gpu_rule import PrecisionChoice, rvc_placement, rvc_precision
from rvc.infer.converter import ConverterAssets, VoiceConverter
from rvc.infer.pipeline import CPU_SEGMENTS, SegmentConfig
from rvc.infer.stream import StreamConverter, open_stream
from rvc.server.faults import FaultKind, FaultPlan, FaultTarget
from rvc.server.messages import (
    BlockConverted,
    CloseStream,
    Command,
    ConvertJob,
    InitFailed,
    JobConverted,
    JobFailed,
    LoadVoice,
    OpenStream,
    Ready,
    Reply,
    Stop,
    StreamBlock,
    StreamClosed,
    StreamFailed,
    UnloadVoice,
    VoiceDone,
)
from rvc.server.shm import read_audio, write_audio
from rvc.server.status import process_rss_mb
from rvc.server.wire import ErrorReport
from rvc.server.worker import WorkerSpec

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def _release_freed_memory() -> None:
    """glibc keeps the pages of freed tensors; hand them back after each job (~10 ms, off the reply path)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _exit_now(code: int) -> NoReturn:
    """Leave without interpreter teardown: unloading torch, transformers and faiss takes seconds,
    and a worker owns nothing that needs a finalizer (the parent unlinks all shared memory)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# A sticky CUDA error: the exit code tells the supervisor's log it was not a crash of the code.
EXIT_DEVICE_FAULT = 3
OOM_RETRY_AFTER_S = 2.0


class _JobRunner:
    """Runs conversion jobs and stream blocks on one device, counts each (for fault injection), maps CUDA faults."""

    def __init__(self, converter: VoiceConverter, device: str, faults: FaultPlan | None) -> None:
        self.converter = converter
        self.device = device
        self.faults = faults
        self.jobs_started = 0
        self.blocks_started = 0

    def gpu_reserved_mb(self) -> float | None:
        if not self.device.startswith("cuda"):
            return None
        return float(torch.cuda.memory_reserved(self.device)) / 2**20

    def _inject(self, target: FaultTarget, number: int) -> None:
        kind: FaultKind | None = None if self.faults is None else self.faults.fault_for(number, target)
        if kind == "oom":
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 20.00 GiB (injected by RVC_FAULT_INJECTION on {target} "
                f"{number})"
            )
        if kind == "sticky":
            raise RuntimeError(
                f"CUDA error: an illegal memory access was encountered (injected by RVC_FAULT_INJECTION on {target} "
                f"{number})"
            )

    def device_fault(self, exc: Exception, what: str) -> tuple[Exception, bool]:
        """The error to report for ``exc`` raised by ``what`` (a job, a stream block), and whether this worker
        must exit: a CUDA out-of-memory frees the cache and asks for a retry (503); a sticky CUDA error
        leaves the GPU context unusable, so the worker exits and the supervisor replaces it."""
        kind = classify_cuda_error(exc)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if kind == "sticky":
            logger.error("%s: sticky CUDA error, this worker exits: %s", what, first_line)
            return WorkerCrashed(
                f"{what}: a CUDA error left the worker's GPU context unusable ({first_line}); the worker is being "
                "replaced: retry the request"
            ), True
        if kind == "oom":
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()  # hand the cached blocks back before the next job
            logger.warning("%s: GPU out of memory, cache freed: %s", what, first_line)
            return DeviceOutOfMemory(
                f"the GPU ran out of memory converting {what} ({first_line}); retry shortly, or send shorter audio",
                retry_after_s=OOM_RETRY_AFTER_S,
            ), False
        logger.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        return exc, False

    def convert(self, job: ConvertJob) -> JobConverted | JobFailed:
        self.jobs_started += 1
        try:
            started = time.perf_counter()
            audio = read_audio(job.input_segment, job.num_samples)
            read_s = time.perf_counter() - started
            self._inject("job", self.jobs_started)
            result = self.converter.convert(job.voice, audio, job.sample_rate, job.params)
            converted = time.perf_counter()
            written = write_audio(job.output_segment, result.audio)
            timings = dict(result.timings)
            timings["worker_convert"] = converted - started - read_s
            timings["worker_shm"] = read_s + (time.perf_counter() - converted)
            return JobConverted(
                job_id=job.job_id,
                num_samples=0 if written is None else int(result.audio.size),
                sample_rate=int(result.sample_rate),
                timings=timings,
                rss_mb=process_rss_mb(),
                gpu_reserved_mb=self.gpu_reserved_mb(),
            )
        except Exception as exc:  # any failure is this job's, not the worker's (CUDA faults aside)
            return self._failed(job, exc)

    def _failed(self, job: ConvertJob, exc: Exception) -> JobFailed:
        error, exits = self.device_fault(exc, f"job {job.job_id}")
        return JobFailed(job_id=job.job_id, error=ErrorReport.from_exception(error), rss_mb=process_rss_mb(),
                         gpu_reserved_mb=None if exits else self.gpu_reserved_mb(), worker_exits=exits)

    def stream(self, streams: dict[str, StreamConverter], command: OpenStream | StreamBlock) -> BlockConverted | StreamFailed:
        """Open (for OpenStream) and convert one block; a failure drops the stream, and the worker only
        after a sticky CUDA error (as for a job)."""
        block = command.block if isinstance(command, OpenStream) else command
        self.blocks_started += 1
        try:
            if isinstance(command, OpenStream):
                streams[command.stream_id] = open_stream(self.converter, command.voice, command.params, command.config)
            self._inject("block", self.blocks_started)
            reply = _stream_block(streams.get(block.stream_id), block)
        except Exception as exc:  # the stream's failure; the worker's only for a sticky CUDA error
            streams.pop(block.stream_id, None)
            error, exits = self.device_fault(exc, f"stream {block.stream_id} block {block.block_id}")
            return StreamFailed(
                stream_id=block.stream_id, block_id=block.block_id, error=ErrorReport.from_exception(error),
                rss_mb=process_rss_mb(), worker_exits=exits,
            )  # fmt: skip
        if block.final:
            streams.pop(block.stream_id, None)
        return reply


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Where and how this worker converts, once DEVICE and RVC_PRECISION are resolved."""

    device: str
    segments: SegmentConfig
    precision: PrecisionChoice


def _resolve_device(spec: WorkerSpec) -> _Placement:
    """DEVICE by the service's one rule on this process's torch; "cuda:N" keeps its index.

    DEVICE=auto on CUDA then follows the official main's GPU rule (``rvc.gpu_rule``): its card, or
    the CPU when no card qualifies, and its segment lengths. Elsewhere the CPU lengths, as before.
    RVC_PRECISION=auto takes the rule's dtype for the card chosen either way (fp32 on the CPU).
    """
    requested, _, index = spec.device.partition(":")
    facts = torch_facts()
    kind = resolve_device(requested, driver=driver_present(), facts=facts)
    device = f"cuda:{index}" if kind == "cuda" and index else str(kind)
    segments = CPU_SEGMENTS
    if requested == "auto" and kind == "cuda":
        placement = rvc_placement(facts)
        logger.info("RVC GPU rule: %s (%s)", placement.device, placement.reason)
        device, segments = placement.device, SegmentConfig(**dataclasses.asdict(placement.segments))
        kind = "cuda" if placement.device.startswith("cuda") else "cpu"
    check_rvc_precision(spec.precision, kind, facts.capability if kind == "cuda" else None)
    precision = rvc_precision(spec.precision, device, facts)
    if precision.reason:
        logger.info("RVC_PRECISION=%s on %s", precision.source, device)
    apply_precision_flags(precision.precision)
    return _Placement(device, segments, precision)


def _build_converter(spec: WorkerSpec, placement: _Placement) -> VoiceConverter:
    torch.set_num_threads(spec.torch_threads)
    faiss.omp_set_num_threads(spec.torch_threads)  # its OpenMP pool is separate from torch's
    converter = VoiceConverter(
        ConverterAssets(hubert_path=spec.hubert_path, rmvpe_path=spec.rmvpe_path, fcpe_path=spec.fcpe_path),
        device=placement.device,
        precision=placement.precision.precision,
        segments=placement.segments,
        profile=spec.profile,
    )
    for voice in spec.voices:
        converter.load_voice(voice.name, voice.pth, voice.index)
    if spec.warmup:
        converter.warm_up()
    return converter


def _load_voice(converter: VoiceConverter, command: LoadVoice) -> VoiceDone:
    files = command.files
    try:
        info = converter.load_voice(files.name, files.pth, files.index)
    except Exception as exc:  # reported to the caller of load_voice
        return VoiceDone(op_id=command.op_id, name=files.name, error=ErrorReport.from_exception(exc))
    return VoiceDone(op_id=command.op_id, name=files.name, info=info)


def _unload_voice(converter: VoiceConverter, command: UnloadVoice) -> VoiceDone:
    try:
        converter.unload_voice(command.name)
    except Exception as exc:  # reported to the caller of unload_voice
        return VoiceDone(op_id=command.op_id, name=command.name, error=ErrorReport.from_exception(exc))
    return VoiceDone(op_id=command.op_id, name=command.name)


def _stream_block(stream: StreamConverter | None, block: StreamBlock) -> BlockConverted:
    """Feed one block (and flush a final one); raises what the converter raises."""
    if stream is None:
        raise NotFound(f"stream {block.stream_id} is not open on this worker", field="stream_id")
    started = time.perf_counter()
    audio = read_audio(block.input_segment, block.num_samples)
    read_s = time.perf_counter() - started
    before = dict(stream.timings)
    # a final block may be empty (the fed audio ended on a block boundary); StreamConverter.feed
    # rejects an empty array in scipy's filter, so only the flush runs then
    output = stream.feed(audio) if audio.size else np.zeros(0, dtype=np.float32)
    if block.final:
        output = np.concatenate([output, stream.flush()])
    converted = time.perf_counter()
    written = write_audio(block.output_segment, output)
    timings = {stage: seconds - before.get(stage, 0.0) for stage, seconds in stream.timings.items()}
    timings["worker_convert"] = converted - started - read_s
    timings["worker_shm"] = read_s + (time.perf_counter() - converted)
    return BlockConverted(
        stream_id=block.stream_id,
        block_id=block.block_id,
        num_samples=0 if written is None else int(output.size),
        sample_rate=stream.sample_rate,
        timings=timings,
        rss_mb=process_rss_mb(),
    )


def _answer(runner: _JobRunner, streams: dict[str, StreamConverter], command: Command) -> Reply | None:
    """The reply to one command; None for a command this worker does not know (logged)."""
    converter = runner.converter
    match command:
        case ConvertJob():
            return runner.convert(command)
        case OpenStream() | StreamBlock():
            return runner.stream(streams, command)
        case CloseStream():
            streams.pop(command.stream_id, None)
            return StreamClosed(stream_id=command.stream_id)
        case LoadVoice():
            return _load_voice(converter, command)
        case UnloadVoice():
            return _unload_voice(converter, command)
        case _:
            logger.error("unknown command %r", type(command).__name__)
            return None


def _ends_work(command: Command, reply: Reply | None) -> bool:
    """After a job or a stream's end; not after every block (the stream's next would wait ~10 ms)."""
    if isinstance(command, ConvertJob | CloseStream) or isinstance(reply, StreamFailed):
        return True
    block = command.block if isinstance(command, OpenStream) else command
    return isinstance(block, StreamBlock) and block.final


def _send(conn: Connection, reply: Reply) -> None:
    try:
        conn.send(reply)
    except (BrokenPipeError, OSError):  # the parent is gone
        _exit_now(0)


def serve(spec: WorkerSpec, conn: Connection, *, torch_was_loaded: bool = False) -> NoReturn:
    """Build the converter, say Ready (or InitFailed), then answer commands until Stop or EOF."""
    logging.basicConfig(
        level=spec.log_level, format="%(asctime)s rvc-worker-%(process)d %(levelname)s %(name)s: %(message)s"
    )
    if torch_was_loaded:
        logger.warning("worker %d: torch was loaded before its thread limits were set", spec.worker_id)
    started = time.monotonic()
    try:
        faults = FaultPlan.from_environment(os.environ)  # test-only (faults.py); read once, here
        placement = _resolve_device(spec)
        runner = _JobRunner(_build_converter(spec, placement), placement.device, faults)
    except Exception as exc:  # reported to the parent, which decides what it means
        logger.exception("worker %d could not start", spec.worker_id)
        conn.send(InitFailed(ErrorReport.from_exception(exc)))
        conn.close()
        _exit_now(1)
    converter = runner.converter
    startup_s = time.monotonic() - started
    precision = placement.precision
    _send(conn, Ready(pid=os.getpid(), voices=converter.voices, startup_s=startup_s, rss_mb=process_rss_mb(),
                      device=placement.device, precision=precision.precision, precision_source=precision.source))
    logger.info(
        "worker %d ready in %.1f s on %s (%s) with voices %s", spec.worker_id, startup_s, placement.device,
        precision.source, sorted(converter.voices),
    )
    streams: dict[str, StreamConverter] = {}
    if faults is not None:
        logger.warning("worker %d: test-only fault injection active: %s", spec.worker_id, faults)
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            logger.info("worker %d: parent gone, exiting", spec.worker_id)
            _exit_now(0)
        if isinstance(command, Stop):
            conn.close()
            _exit_now(0)
        reply = _answer(runner, streams, command)
        if reply is not None:
            _send(conn, reply)
        if isinstance(reply, JobFailed | StreamFailed) and reply.worker_exits:
            conn.close()
            _exit_now(EXIT_DEVICE_FAULT)
        if _ends_work(command, reply):
            _release_freed_memory()
