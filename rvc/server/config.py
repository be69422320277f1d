"""Settings of the RVC worker pool, as one frozen dataclass.

The pool never reads the environment itself: ``PoolConfig.from_settings``
builds it from the service's ``Settings`` (RVC_MODEL, RVC_WORKERS,
RVC_QUEUE_SIZE, RVC_STREAM_MAX, RVC_JOB_TIMEOUT_S, RVC_RECYCLE_GPU_MB, WEIGHTS_DIR, ASSETS_DIR), and tests build
one directly around tiny demo assets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rvc.device import RVC_PRECISION_SETTINGS
from rvc.infer.params import DEFAULT_PROFILE, PROFILES

if TYPE_CHECKING:
    from rvc.settings import Settings

__all__ = ["PoolConfig"]

_DEVICES = ("auto", "cpu", "cuda")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0 (0 switches it off), got {value!r}")


@dataclass(frozen=True)
class PoolConfig:
    """What an ``RVCServer`` needs to start its workers.

    weights_dir: folder of voices, ``<voice>.pth`` (+ optional ``.index``).
    hubert_path / rmvpe_path: the shared content encoder and pitch model
        (``rmvpe_path`` may be None when no job uses f0_method="rmvpe").
    default_voice: voice loaded at start and used when a job names none;
        given with or without ``.pth``, stored without it.
    fcpe_path: an operator's copy of FCPE's weights (``ASSETS_DIR/fcpe/fcpe_c_v001.pt``),
        read instead of the file in the installed torchfcpe wheel when it exists.
    num_workers: worker processes kept alive (each holds every resident voice).
    max_queue: jobs waiting for a worker before ``submit`` raises Busy.
    max_streams: open streams before ``open_stream`` raises Busy (each one
        needs its share of a worker in real time).
    job_timeout_s: default deadline of a job, counted from submit.
    max_jobs_per_worker / max_rss_mb: recycle a worker after that many jobs or
        above that resident memory (0 = never); its replacement is ready first.
    max_gpu_mb: recycle a worker whose CUDA caching allocator holds more than this
        after a job (0 = never; workers on the CPU report no GPU memory).
    hung_grace_s: after a running job missed its deadline (its caller already
        got JobTimeout), how long its worker may keep going before it is killed
        and replaced, so one stuck conversion cannot hold a worker forever.
    start_timeout_s: longest a worker may take to load models and warm up.
    warmup: run one short conversion per worker before taking jobs.
    device: "cpu", "cuda" or "auto" (cuda when available).
    profile: the RVC inference profile of a job that names none ("2026" or "2024", RVC_PROFILE).
    precision: the voice decoder's precision, "auto" (each worker resolves it for its device:
        ``rvc.gpu_rule.rvc_precision``), "fp32" (exact), "bf16" or "fp16"
        (rvc.infer.converter.decoder_dtype says what each costs in accuracy).
    torch_threads: intra-op threads per worker; 1, because N workers each with
        several threads oversubscribe the cores (docs/triton_runtime.md: 5-40x slower).
    """

    weights_dir: Path
    hubert_path: Path
    rmvpe_path: Path | None
    default_voice: str
    fcpe_path: Path | None = None
    num_workers: int = 2
    max_queue: int = 32
    max_streams: int = 16
    job_timeout_s: float = 300.0
    max_jobs_per_worker: int = 0
    max_rss_mb: float = 0.0
    max_gpu_mb: float = 0.0
    hung_grace_s: float = 10.0
    start_timeout_s: float = 300.0
    warmup: bool = True
    device: str = "cpu"
    precision: str = "auto"
    profile: str = DEFAULT_PROFILE
    torch_threads: int = 1
    log_level: str = "INFO"
    extra_voices: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights_dir", Path(self.weights_dir))
        object.__setattr__(self, "hubert_path", Path(self.hubert_path))
        for name in ("rmvpe_path", "fcpe_path"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not isinstance(self.default_voice, str) or not self.default_voice.removesuffix(".pth"):
            raise ValueError(f"default_voice must be a voice name, got {self.default_voice!r}")
        object.__setattr__(self, "default_voice", self.default_voice.removesuffix(".pth"))
        object.__setattr__(self, "extra_voices", tuple(v.removesuffix(".pth") for v in self.extra_voices))
        for name in ("num_workers", "max_queue", "max_streams", "torch_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_jobs_per_worker, int) or self.max_jobs_per_worker < 0:
            raise ValueError(f"max_jobs_per_worker must be an integer >= 0, got {self.max_jobs_per_worker!r}")
        for name in ("job_timeout_s", "hung_grace_s", "start_timeout_s"):
            _positive(name, getattr(self, name))
        _non_negative("max_rss_mb", self.max_rss_mb)
        _non_negative("max_gpu_mb", self.max_gpu_mb)
        if self.device not in _DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {_DEVICES} or 'cuda:N', got {self.device!r}")
        if self.precision not in RVC_PRECISION_SETTINGS:
            raise ValueError(f"precision must be one of {RVC_PRECISION_SETTINGS}, got {self.precision!r}")
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {_LOG_LEVELS}, got {self.log_level!r}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> PoolConfig:
        """The pool configuration the service settings describe; ``overrides`` win."""
        values: dict[str, object] = {
            "weights_dir": settings.weights_dir,
            "hubert_path": settings.content_encoder_path,
            "rmvpe_path": settings.rmvpe_path,
            "fcpe_path": settings.fcpe_path,
            "default_voice": settings.voice_name,
            "num_workers": settings.rvc_workers,
            "max_queue": settings.rvc_queue_size,
            "max_streams": settings.rvc_stream_max,
            "job_timeout_s": settings.rvc_job_timeout_s,
            "max_gpu_mb": settings.rvc_recycle_gpu_mb,
            "device": settings.device,
            "precision": settings.rvc_precision,
            "profile": settings.rvc_profile,
            "log_level": settings.log_level,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def with_changes(self, **changes: object) -> PoolConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]
