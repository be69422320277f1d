"""A worker process's entry point: thread limits first, the models second.

Workers are started with the "spawn" method, so each begins as a fresh
interpreter (nothing from the parent, threads, locks, CUDA state, sockets,
leaks in) that imports this module to find ``worker_main``. The order of
what happens next is the point of this module:

1. Importing ``rvc.server`` (this package) loads no torch: its modules hold
   the pool's bookkeeping and the torch-free value types of
   ``rvc.infer.params``; tests/rvc_server/test_imports.py checks it in a
   fresh interpreter.
2. ``worker_main`` writes the thread counts (OMP, MKL, OpenBLAS) and the
   oneDNN cache size into the environment, which torch's thread pools and
   oneDNN read when torch is loaded.
3. Only then does it import ``worker_runtime``, the one module of this
   package that imports torch, faiss and the converter at its top, and hand
   over to its loop.

Step 3 is the single import inside a function in ``rvc.server``, and it is
deliberate: it is the boundary between the process's setup and the model
side, crossed once per process. Should someone make torch load earlier
(an import in step 1), the worker says so in its log at start.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from rvc.infer.params import DEFAULT_PROFILE
from rvc.server.voices import VoiceFiles

__all__ = ["WorkerSpec", "worker_main"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# oneDNN keeps one JIT primitive per convolution shape (1024 by default, ~1.3 MB each): with
# every sentence a new length, that was +1.1 GB per worker after ten full-size conversions.
# 256 holds every primitive of one conversion, so an input's windows still share theirs.
_ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent to it when it is spawned (picklable)."""

    worker_id: int
    hubert_path: Path
    rmvpe_path: Path | None
    voices: tuple[VoiceFiles, ...]
    fcpe_path: Path | None
    device: str
    precision: str
    warmup: bool
    torch_threads: int
    log_level: str
    profile: str = DEFAULT_PROFILE  # RVC_PROFILE: the inference profile of a job that names none


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of a worker process (target of ``multiprocessing.Process``); never returns."""
    # The parent decides when workers stop; Ctrl-C in a foreground daemon must not
    # kill them halfway through a job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch_was_loaded = "torch" in sys.modules
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = str(spec.torch_threads)
    os.environ.setdefault(*_ONEDNN_CACHE)  # an operator's own value wins
    from rvc.server import worker_runtime  # torch loads here, after the limits above (see the docstring)

    worker_runtime.serve(spec, conn, torch_was_loaded=torch_was_loaded)
