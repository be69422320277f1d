"""The worker process: one VoiceConverter, a loop over messages from its pipe.

Started with the "spawn" method, so nothing from the parent (threads, locks,
CUDA state, open sockets) leaks in. It sets one torch thread before torch is
imported, builds one ``VoiceConverter``, loads its voices, warms up, says
"ready", then serves one message at a time:

    parent -> worker                               worker -> parent
    ("convert", job_id, voice, in_name, n,         ("converted", job_id, n_out, sr, timings, rss_mb)
     sample_rate, params, out_name)                ("failed", job_id, error_dict, rss_mb)
    ("load_voice", op_id, VoiceFiles)              ("voice_done", op_id, name, info | None, error | None)
    ("unload_voice", op_id, name)                  ("voice_done", ...)
    ("stop",)                                      (exits 0)

An exception inside a job is caught and sent back as that job's error (a
poisoned input costs one job, not the process). When the parent disappears
the pipe reaches EOF and the worker exits, so it never outlives the pool.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rvc.server.shm import read_audio, write_audio
from rvc.server.status import process_rss_mb
from rvc.server.voices import VoiceFiles
from rvc.server.wire import error_to_dict

__all__ = ["WorkerSpec", "worker_main"]

logger = logging.getLogger(__name__)

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# oneDNN keeps one JIT primitive per convolution shape (1024 by default, ~1.3 MB each): with
# every sentence a new length, that was +1.1 GB per worker after ten full-size conversions.
# 256 holds every primitive of one conversion, so an input's windows still share theirs.
_ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")


def _release_freed_memory() -> None:
    """glibc keeps the pages of freed tensors; hand them back after each job (~10 ms, off the reply path)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent to it when it is spawned (picklable)."""

    worker_id: int
    hubert_path: Path
    rmvpe_path: Path | None
    voices: tuple[VoiceFiles, ...]
    device: str
    precision: str
    warmup: bool
    torch_threads: int
    log_level: str


def _voice_info(info: Any) -> dict[str, Any]:
    """VoiceInfo as plain data (name, version, if_f0, sample_rate, has_index, ...)."""
    return {
        key: value
        for key, value in dataclasses.asdict(info).items()
        if isinstance(value, str | int | float | bool) or value is None
    }


def _build_converter(spec: WorkerSpec) -> Any:
    import torch

    from rvc.infer.converter import ConverterAssets, VoiceConverter

    torch.set_num_threads(spec.torch_threads)
    try:
        import faiss  # its OpenMP pool is separate from torch's

        faiss.omp_set_num_threads(spec.torch_threads)
    except ImportError:
        pass
    device = spec.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    converter = VoiceConverter(
        ConverterAssets(hubert_path=spec.hubert_path, rmvpe_path=spec.rmvpe_path),
        device=device,
        precision=spec.precision,
    )
    for voice in spec.voices:
        converter.load_voice(voice.name, voice.pth, voice.index)
    if spec.warmup:
        converter.warm_up()
    return converter


def _convert(converter: Any, message: tuple[Any, ...]) -> tuple[Any, ...]:
    _, job_id, voice, in_name, num_samples, sample_rate, params, out_name = message
    try:
        started = time.perf_counter()
        audio = read_audio(in_name, num_samples)
        read_s = time.perf_counter() - started
        result = converter.convert(voice, audio, sample_rate, params)
        converted = time.perf_counter()
        written = write_audio(out_name, result.audio)
        timings = dict(result.timings)
        timings["worker_convert"] = converted - started - read_s
        timings["worker_shm"] = read_s + (time.perf_counter() - converted)
        size = 0 if written is None else int(result.audio.size)
        return ("converted", job_id, size, int(result.sample_rate), timings, process_rss_mb())
    except Exception as exc:  # any failure is this job's, not the worker's
        logger.warning("job %s failed: %s: %s", job_id, type(exc).__name__, exc)
        return ("failed", job_id, error_to_dict(exc), process_rss_mb())


def _voice_op(converter: Any, message: tuple[Any, ...]) -> tuple[Any, ...]:
    kind, op_id, target = message
    try:
        if kind == "load_voice":
            info = converter.load_voice(target.name, target.pth, target.index)
            return ("voice_done", op_id, target.name, _voice_info(info), None)
        converter.unload_voice(target)
        return ("voice_done", op_id, target, None, None)
    except Exception as exc:  # reported to the caller of load_voice / unload_voice
        name = target.name if isinstance(target, VoiceFiles) else target
        return ("voice_done", op_id, name, None, error_to_dict(exc))


def _exit_now(code: int) -> None:
    """Leave without interpreter teardown: unloading torch, transformers and faiss takes seconds,
    and a worker owns nothing that needs a finalizer (the parent unlinks all shared memory)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of a worker process (target of ``multiprocessing.Process``)."""
    # The parent decides when workers stop; Ctrl-C in a foreground daemon must not
    # kill them halfway through a job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = str(spec.torch_threads)
    os.environ.setdefault(*_ONEDNN_CACHE)  # an operator's own value wins
    logging.basicConfig(
        level=spec.log_level, format="%(asctime)s rvc-worker-%(process)d %(levelname)s %(name)s: %(message)s"
    )
    started = time.monotonic()
    try:
        converter = _build_converter(spec)
    except Exception as exc:  # reported to the parent, which decides what it means
        logger.exception("worker %d could not start", spec.worker_id)
        conn.send(("init_failed", error_to_dict(exc)))
        conn.close()
        _exit_now(1)
    voices = {name: _voice_info(info) for name, info in converter.voices.items()}
    conn.send(("ready", os.getpid(), voices, time.monotonic() - started, process_rss_mb()))
    logger.info(
        "worker %d ready in %.1f s with voices %s", spec.worker_id, time.monotonic() - started, sorted(voices)
    )
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            logger.info("worker %d: parent gone, exiting", spec.worker_id)
            _exit_now(0)
        kind = message[0]
        if kind == "convert":
            reply = _convert(converter, message)
        elif kind in ("load_voice", "unload_voice"):
            reply = _voice_op(converter, message)
        elif kind == "stop":
            conn.close()
            _exit_now(0)
        else:
            logger.error("worker %d: unknown message %r", spec.worker_id, kind)
            continue
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            _exit_now(0)
        if kind == "convert":
            _release_freed_memory()
