"""The project's exception tree.

Every error the service raises on purpose is a ``VoiceError``; foreign errors
(tritonclient, torch, multiprocessing, soundfile) are mapped into this tree
once, at the boundary where they occur, with ``raise Mapped(...) from exc``.
The gateway then needs one handler: ``status_code`` picks the HTTP status and
the message is shown to the client as is, so it must say what to change.

    VoiceError
    ├── InvalidInput            400  the request is wrong; the message says how
    │   ├── PayloadTooLarge     413  an upload over the configured size limit
    │   ├── UnsupportedMediaType 415 a form route sent a body that is not a form
    │   └── HeaderTooLarge      431  request headers over the gateway's limit
    ├── NotFound                404  an unknown voice, model or job
    ├── Conflict                409  a name that already exists (no clobbering)
    ├── AssetError              500  a checkpoint or config on disk is unusable
    ├── ConfigError             500  a setting has a wrong value (raised at start)
    ├── ModelUnavailable        503  a component is down or still loading
    │   ├── TTSBackendError     503  Triton is unreachable or failed the request
    │   │   ├── TritonStartError     tritonserver exited or never became ready
    │   │   └── ModelControlRefused  Triton refuses to unload/load models (not in explicit mode)
    │   ├── Busy                503  the worker queue is full (Retry-After)
    │   │   └── DeviceOutOfMemory    the GPU had no memory for this job; cache freed (Retry-After)
    │   └── StorageUnavailable  503  the database (SQLite file or PostgreSQL) cannot be reached
    ├── WorkerCrashed           503  a worker process died while running the job
    ├── JobCancelled            499  the caller cancelled, or the pool shut down
    └── JobTimeout              504  a job outlived its deadline
"""

from __future__ import annotations

__all__ = [
    "AssetError",
    "Busy",
    "ConfigError",
    "Conflict",
    "DeviceOutOfMemory",
    "HeaderTooLarge",
    "InvalidInput",
    "JobCancelled",
    "JobTimeout",
    "ModelControlRefused",
    "ModelUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "StorageUnavailable",
    "TTSBackendError",
    "TritonStartError",
    "UnsupportedMediaType",
    "VoiceError",
    "WorkerCrashed",
]


class VoiceError(Exception):
    """Root of every error the service raises on purpose."""

    status_code: int = 500
    code: str = "voice_error"
    retry_after_s: float | None = None  # set on every 503: the gateway's Retry-After header

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | int | None]:
        """The JSON error envelope's ``error`` object."""
        return {"code": self.code, "message": self.message, "field": self.field, "status": self.status_code}


class InvalidInput(VoiceError):
    status_code = 400
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    status_code = 415
    code = "unsupported_media_type"


class HeaderTooLarge(InvalidInput):
    status_code = 431
    code = "request_header_too_large"


class NotFound(VoiceError):
    status_code = 404
    code = "not_found"


class Conflict(VoiceError):
    status_code = 409
    code = "conflict"


class AssetError(VoiceError):
    """A file on disk (checkpoint, index, config) cannot be used as it is."""

    status_code = 500
    code = "asset_error"


class ConfigError(VoiceError):
    status_code = 500
    code = "config_error"


class ModelUnavailable(VoiceError):
    status_code = 503
    code = "model_unavailable"
    # What the gateway sends as Retry-After: a component that is down is retried, not given up on.
    retry_after_s: float = 5.0


class TTSBackendError(ModelUnavailable):
    code = "tts_backend_error"


class Busy(ModelUnavailable):
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeviceOutOfMemory(Busy):
    """A job ran out of GPU memory. The worker freed its cache and serves on, so the same request
    may succeed once concurrent work has finished: a 503 with Retry-After, not a 500.
    """

    code = "device_out_of_memory"


class StorageUnavailable(ModelUnavailable):
    """The storage layer's database refused or dropped the connection; saved voices and defaults wait for it."""

    code = "storage_unavailable"
    retry_after_s: float = 5.0  # a restarted PostgreSQL takes seconds; the gateway reconnects by itself


class WorkerCrashed(VoiceError):
    status_code = 503
    code = "worker_crashed"
    retry_after_s: float = 2.0  # the supervisor respawns a worker in about that time


class JobCancelled(VoiceError):
    status_code = 499
    code = "cancelled"


class JobTimeout(VoiceError):
    status_code = 504
    code = "timeout"


class TritonStartError(TTSBackendError):
    """tritonserver exited or never became ready; the message carries its log tail."""

    code = "triton_start_error"


class ModelControlRefused(TTSBackendError):
    """Triton refused to unload or load a model: it does not run with ``--model-control-mode=explicit``."""

    code = "model_control_refused"
