"""The service's one settings object, read from the environment.

Built by ``load_settings()`` and passed down (``create_app(settings)``), never
read at import time, so tests inject their own. A wrong value fails at start
with a ``ConfigError`` that names the environment variable, because a
pydantic traceback about a field name does not tell an operator which
variable to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rvc.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["PROJECT_ROOT", "Settings", "load_settings"]


class Settings(BaseSettings):
    """Service settings; every field maps to the upper-case environment variable of its name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    # --- the seed's variables -------------------------------------------------------------
    rvc_model: str = Field("SilverWolf_e300_s6600.pth", description="RVC voice file name in WEIGHTS_DIR")
    rvc_workers: int = Field(2, ge=1, le=64, description="number of RVC worker processes")
    api_port: int = Field(8080, ge=1, le=65535, description="Voice HTTP API port")
    triton_model_repo: Path = Field(
        PROJECT_ROOT / "var" / "model_repo",
        description="prepared Triton model repository (triton/run.sh stage 2 writes it from triton/model_repo)",
    )

    # --- network ------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="bind address of the API; 0.0.0.0 to expose it (containers)")
    triton_host: str = Field("127.0.0.1", description="where tritonserver listens / is reached")
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    triton_timeout_s: float = Field(120.0, gt=0, description="per-request deadline for Triton calls")

    # --- assets -------------------------------------------------------------------------
    weights_dir: Path = Field(PROJECT_ROOT / "weights", description="RVC voices: <voice>.pth and .index")
    assets_dir: Path = Field(PROJECT_ROOT / "assets", description="hubert/hubert_base.pt, rmvpe/rmvpe.pt")
    spark_model_dir: Path = Field(
        PROJECT_ROOT / "pretrained_models" / "Spark-TTS-0.5B", description="Spark-TTS-0.5B folder"
    )
    voices_dir: Path = Field(PROJECT_ROOT / "var" / "voices", description="saved voices")
    run_dir: Path = Field(PROJECT_ROOT / "var" / "run", description="sockets, pid files and server logs")
    state_dir: Path = Field(PROJECT_ROOT / "var" / "state", description="stored /config defaults and reference clip")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where models run")
    rvc_precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="RVC decoder precision: fp32 (exact), bf16 (opt-in, ~2.3x faster decoder on CPUs with "
        "AVX-512 BF16/AMX, max deviation ~5e-3), fp16 (CUDA only)",
    )

    # --- request limits -----------------------------------------------------------------
    max_text_chars: int = Field(5000, ge=1, description="longest accepted text")
    max_upload_mb: float = Field(25.0, gt=0, description="largest accepted upload")
    max_reference_seconds: float = Field(30.0, gt=0, description="longest accepted reference clip")
    max_audio_seconds: float = Field(600.0, gt=0, description="longest audio accepted by /rvc")
    rvc_queue_size: int = Field(32, ge=1, description="jobs waiting for a worker before 503 busy")
    rvc_job_timeout_s: float = Field(300.0, gt=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- access -------------------------------------------------------------------------
    api_keys: str | None = Field(
        None,
        description="off when unset; comma-separated keys, or the path of a file with one key per line: every "
        "route but /health and /metrics then needs 'Authorization: Bearer <key>'",
    )

    @field_validator("rvc_model")
    @classmethod
    def _voice_file_name(cls, value: str) -> str:
        if not value.endswith(".pth") or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a .pth file name inside WEIGHTS_DIR, e.g. SilverWolf_e300_s6600.pth")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        ports = {
            "API_PORT": self.api_port,
            "TRITON_GRPC_PORT": self.triton_grpc_port,
            "TRITON_HTTP_PORT": self.triton_http_port,
            "TRITON_METRICS_PORT": self.triton_metrics_port,
        }
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"ports must differ, got {ports}")
        return self

    @property
    def voice_name(self) -> str:
        """The default voice's name: RVC_MODEL without `.pth`."""
        return self.rvc_model.removesuffix(".pth")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def hubert_path(self) -> Path:
        return self.assets_dir / "hubert" / "hubert_base.pt"

    @property
    def rmvpe_path(self) -> Path:
        return self.assets_dir / "rmvpe" / "rmvpe.pt"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) into ``Settings``.

    Raises ConfigError naming each offending variable and the reason.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            value = os.environ.get(where, error.get("input"))
            problems.append(f"{where}={value!r}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc
