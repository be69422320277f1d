"""``RVCServer``: RVC conversion in a pool of worker processes.

    config = PoolConfig(weights_dir, hubert_path, rmvpe_path, "SilverWolf_e300_s6600", num_workers=2)
    with RVCServer(config) as server:                      # spawns, loads, warms up
        handle = server.submit(audio, 16000, ConversionParams(pitch_shift=2))
        result = handle.result()                            # or: await handle.wait()
        stream = server.open_stream(None, ConversionParams())   # streams.py: audio in as it arrives

Each worker is a spawned process holding one ``VoiceConverter`` (HuBERT,
RMVPE and every resident voice, loaded once). A job's audio travels in
shared memory, its result comes back to its own future, and its timings
gain ``queue_wait``, ``ipc`` and ``pool_total``. The queue is bounded
(``Busy`` at once when full), every job has a deadline (``JobTimeout``), a
dead worker fails only its own job (``WorkerCrashed``, not retried: see
supervisor.py) and is replaced. ``submit`` may be called from any thread and
from an event loop; it never waits for a worker.

Importing this module does not import torch; the workers do.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import math
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

from rvc.errors import InvalidInput, ModelUnavailable, NotFound
from rvc.infer.params import ConversionParams, ConversionResult
from rvc.infer.stream_config import StreamConfig
from rvc.server.config import PoolConfig
from rvc.server.jobs import Job, JobHandle, JobIds, mono_float32, new_future
from rvc.server.shm import input_segment_name, list_segments, output_segment_name, unlink_segment, write_audio
from rvc.server.status import PoolStatus
from rvc.server.stream_jobs import Stream
from rvc.server.streams import StreamHandle
from rvc.server.supervisor import Supervisor
from rvc.server.voices import resolve_voice, voice_stem

__all__ = ["RVCServer"]

logger = logging.getLogger(__name__)

_MAX_SAMPLE_RATE = 384_000


def _wait_voice(future: concurrent.futures.Future[Any], name: str, timeout: float) -> Any:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise ModelUnavailable(f"voice {name!r}: workers still busy with it after {timeout:.0f} s") from None


def _shutdown_at_exit(server_ref: weakref.ReferenceType[RVCServer]) -> None:
    server = server_ref()
    if server is not None:
        server.shutdown(drain=False, timeout=5.0)


class RVCServer:
    """A pool of RVC worker processes; see the module docstring.

    Lifecycle: ``start()`` (or ``with``) -> ``submit`` / ``load_voice`` /
    ``status`` from any thread -> ``shutdown()``. Not restartable.
    """

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._default_voice = config.default_voice
        self._ids = JobIds()
        self._stream_ids = JobIds()
        # Short and unique per pool, so tests and operators can find its segments in /dev/shm.
        self.shm_prefix = f"rvc{os.getpid():x}{secrets.token_hex(3)}_"
        self._supervisor: Supervisor | None = None
        self._state = "new"
        self._state_lock = threading.Lock()
        self._at_exit: Callable[[weakref.ReferenceType[RVCServer]], None] | None = None

    # ------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float | None = None) -> RVCServer:
        """Spawn the workers and wait until all are ready (models loaded, warmed up).

        Raises NotFound/InvalidInput for a bad default voice, AssetError when a
        worker cannot load the assets, ModelUnavailable on timeout; on any
        failure the workers already started are stopped again.
        """
        with self._state_lock:
            if self._state != "new":
                raise ModelUnavailable(f"RVCServer cannot start: it is {self._state}")
            self._state = "starting"
        try:
            names = dict.fromkeys((self.config.default_voice, *self.config.extra_voices))
            voices = {name: resolve_voice(self.config.weights_dir, name) for name in names}
            supervisor = Supervisor(self.config, voices, self.shm_prefix)
            with self._state_lock:
                if self._state != "starting":
                    raise ModelUnavailable("the RVC server was shut down while starting")
                self._supervisor, self._state = supervisor, "running"
            supervisor.start()
            self._at_exit = atexit.register(_shutdown_at_exit, weakref.ref(self))
            supervisor.state.wait_ready(self.config.start_timeout_s + 30.0 if timeout is None else timeout)
        except BaseException:
            self.shutdown(drain=False, timeout=5.0)
            raise
        logger.info("RVC pool ready: %d workers, voices %s", self.config.num_workers, sorted(voices))
        return self

    def shutdown(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting jobs, finish (drain=True) or cancel the rest, stop every worker.

        drain=True waits up to ``timeout`` (default: the job timeout) for queued
        and running jobs; whatever is left then, or everything with
        drain=False, fails with JobCancelled. Workers still running after that
        are killed. Leaves no child process and no shared-memory segment.
        Idempotent; safe to call from any thread except the pool's own.
        """
        with self._state_lock:
            if self._state in ("stopped", "stopping"):
                return
            supervisor = self._supervisor
            self._state = "stopped" if supervisor is None else "stopping"
        if supervisor is None:
            return
        if timeout is None:
            timeout = self.config.job_timeout_s if drain else 10.0
        deadline = time.monotonic() + timeout
        supervisor.state.close_intake()
        if drain and not supervisor.state.wait_idle(deadline):
            logger.warning("RVC pool: jobs still running after %.0f s; cancelling them", timeout)
        cancelled = supervisor.state.cancel_all("the RVC server is shutting down")
        if cancelled:
            logger.info("RVC pool: cancelled %d jobs at shutdown", cancelled)
        supervisor.stop(
            max(deadline, time.monotonic() + 5.0) if drain else time.monotonic() + min(timeout, 5.0)
        )
        for name in list_segments(self.shm_prefix):  # nothing should be left; belt and braces
            logger.warning("RVC pool: removing leftover shared memory %s", name)
            unlink_segment(name)
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None
        with self._state_lock:
            self._state = "stopped"

    def __enter__(self) -> RVCServer:
        if self._state == "new":
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown(drain=exc is None)

    # ------------------------------------------------------------------------- jobs
    def _running(self) -> Supervisor:
        if self._state != "running" or self._supervisor is None:
            raise ModelUnavailable(f"the RVC server is {self._state}, not running")
        return self._supervisor

    def submit(
        self,
        audio: np.ndarray,
        sample_rate: int,
        params: ConversionParams | None = None,
        *,
        voice: str | None = None,
        timeout_s: float | None = None,
    ) -> JobHandle:
        """Queue one conversion and return at once with its handle.

        audio: (T,) float mono in [-1, 1] at ``sample_rate`` Hz (any rate the
        converter accepts; it resamples to 16 kHz itself). voice: a resident
        voice (default: the default voice). timeout_s: the job's deadline from
        now (default ``config.job_timeout_s``).
        Raises InvalidInput (bad audio, rate, params, voice name), NotFound
        (voice not loaded), Busy (queue full; ``retry_after_s`` set) or
        ModelUnavailable (not running).

        The handle's result then raises the job's own error: the converter's
        InvalidInput/NotFound, JobTimeout, JobCancelled, or WorkerCrashed when
        its worker died mid-job. A crashed job is **not retried**: the input
        may be what killed the worker (a poisoned file, an out-of-memory
        length), and a silent retry would then take down a second worker; the
        caller knows whether the request is worth repeating.
        """
        supervisor = self._running()
        samples = mono_float32(audio)
        if (
            isinstance(sample_rate, bool)
            or not isinstance(sample_rate, int | np.integer)
            or not 0 < sample_rate <= _MAX_SAMPLE_RATE
        ):
            raise InvalidInput(
                f"sample_rate must be an integer in 1..{_MAX_SAMPLE_RATE}, got {sample_rate!r}",
                field="sample_rate",
            )
        if params is None:
            params = ConversionParams()
        if not isinstance(params, ConversionParams):
            raise InvalidInput(
                f"params must be ConversionParams, got {type(params).__name__}", field="params"
            )
        params.validate()  # the one check of a job's parameters: workers trust them from here on
        name = self._default_voice if voice is None else voice_stem(voice)
        if timeout_s is None:
            timeout_s = self.config.job_timeout_s
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise InvalidInput(
                f"timeout_s must be a positive number of seconds, got {timeout_s!r}", field="timeout_s"
            )
        job_id = self._ids.next()
        submitted = time.monotonic()
        try:
            segment = write_audio(input_segment_name(self.shm_prefix, job_id), samples)
        except OSError as exc:
            raise ModelUnavailable(f"cannot place audio in shared memory: {exc}") from exc
        job = Job(
            job_id=job_id,
            voice=name,
            sample_rate=int(sample_rate),
            params=params,
            num_samples=int(samples.size),
            input_segment=segment,
            output_segment=output_segment_name(self.shm_prefix, job_id),
            submitted_at=submitted,
            deadline=submitted + float(timeout_s),
            future=new_future(),
            write_s=time.monotonic() - submitted,
        )
        try:
            supervisor.state.enqueue(job)
        except BaseException:
            unlink_segment(segment)
            raise
        return JobHandle(job_id, name, job.future, supervisor.state.cancel)

    def convert(
        self,
        audio: np.ndarray,
        sample_rate: int,
        params: ConversionParams | None = None,
        *,
        voice: str | None = None,
        timeout_s: float | None = None,
    ) -> ConversionResult:
        """``submit(...).result()``: blocking convenience for scripts and tests."""
        return self.submit(audio, sample_rate, params, voice=voice, timeout_s=timeout_s).result()

    def open_stream(
        self, voice: str | None, params: ConversionParams, config: StreamConfig | None = None
    ) -> StreamHandle:
        """Open a stream job (streams.py): 16 kHz audio in as it arrives, the voice's audio out.

        voice: a resident voice (None: the default voice). config: the block
        geometry (default ``StreamConfig()``). The stream binds to one worker
        with its first block and stays there; between blocks that worker takes
        other jobs. Raises InvalidInput (params, config), NotFound (voice not
        loaded), Busy (``config.max_streams`` open, or the job queue full;
        ``retry_after_s`` set) or ModelUnavailable. Never waits for a worker.
        """
        supervisor = self._running()
        if not isinstance(params, ConversionParams):
            raise InvalidInput(f"params must be ConversionParams, got {type(params).__name__}", field="params")
        params.validate()  # once, here: workers trust them from here on
        if config is None:
            config = StreamConfig()
        if not isinstance(config, StreamConfig):
            raise InvalidInput(f"config must be StreamConfig, got {type(config).__name__}", field="config")
        name = self._default_voice if voice is None else voice_stem(voice)
        state = supervisor.state
        sample_rate = state.voice_rate(name)
        if sample_rate is None:
            if name not in state.resident_voices():
                raise NotFound(f"voice {name!r} is not loaded (loaded: {list(state.resident_voices())})",
                               field="voice")  # fmt: skip
            raise ModelUnavailable(f"voice {name!r} is still loading; open the stream once it is loaded")
        stream = Stream(
            stream_id=f"s{self._stream_ids.next()}", voice=name, params=params, config=config,
            sample_rate=sample_rate, opened_at=time.monotonic(),
        )  # fmt: skip
        state.open_stream(stream)
        return StreamHandle(stream, state, self.shm_prefix)

    # ------------------------------------------------------------------------- voices
    @property
    def default_voice(self) -> str:
        return self._default_voice

    @property
    def voices(self) -> tuple[str, ...]:
        """Resident voices (including ones still loading)."""
        return self._running().state.resident_voices()

    def load_voice(
        self, name: str, *, make_default: bool = False, timeout: float | None = None
    ) -> dict[str, Any]:
        """Load ``<weights_dir>/<name>.pth`` (+ its index) on every worker, between their jobs.

        Queued jobs keep running meanwhile. Returns the voice info
        (name, version, if_f0, sample_rate, has_index). Raises InvalidInput
        (unsafe name), NotFound (no such file), AssetError (unloadable file;
        the voice is then unloaded everywhere).
        """
        supervisor = self._running()
        files = resolve_voice(self.config.weights_dir, name)
        info = _wait_voice(
            supervisor.state.load_voice(files),
            files.name,
            self.config.start_timeout_s if timeout is None else timeout,
        )
        if make_default:
            self._default_voice = files.name
        return info.to_dict() if info is not None else {"name": files.name}

    def unload_voice(self, name: str, *, timeout: float | None = None) -> None:
        """Remove a voice from every worker once the jobs already queued for it have run."""
        stem = voice_stem(name)
        if stem == self._default_voice:
            raise InvalidInput(
                f"{stem!r} is the default voice; make another voice the default first", field="voice"
            )
        _wait_voice(
            self._running().state.unload_voice(stem),
            stem,
            self.config.start_timeout_s if timeout is None else timeout,
        )

    def set_default_voice(self, name: str) -> None:
        stem = voice_stem(name)
        if stem not in self.voices:
            raise InvalidInput(f"voice {stem!r} is not loaded; load it first", field="voice")
        self._default_voice = stem

    # ------------------------------------------------------------------------- status
    def status(self) -> PoolStatus:
        """A snapshot of workers, queue, counters, stage averages and voices."""
        if self._supervisor is None:
            raise ModelUnavailable(f"the RVC server is {self._state}")
        return self._supervisor.state.snapshot(self._default_voice)

    @property
    def state(self) -> str:
        """ "new", "starting", "running", "stopping" or "stopped"."""
        return self._state
