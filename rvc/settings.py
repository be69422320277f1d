"""The service's one settings object, read from the environment.

Built by ``load_settings()`` and passed down (``create_app(settings)``), never
read at import time, so tests inject their own. A wrong value fails at start
with a ``ConfigError`` that names the environment variable, because a
pydantic traceback about a field name does not tell an operator which
variable to fix.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rvc.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# How long a start waits for tritonserver to load every model: TRITON_STARTUP_TIMEOUT_S's default and
# the launcher's (rvc.grpc.launcher.TritonServerConfig), declared once. A first start on a GPU, or
# udocker's ptrace mode on Colab, can take minutes; 180 s was seen to fall short there.
TRITON_STARTUP_TIMEOUT_DEFAULT_S = 600.0

__all__ = ["PROJECT_ROOT", "TRITON_STARTUP_TIMEOUT_DEFAULT_S", "Settings", "auto_llm_backend", "load_settings"]


class Settings(BaseSettings):
    """Service settings; every field maps to the upper-case environment variable of its name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    # --- the seed's variables -------------------------------------------------------------
    rvc_model: str = Field("SilverWolf_e300_s6600.pth", description="RVC voice file name in WEIGHTS_DIR")
    rvc_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="number of RVC worker processes; unset or 'auto': 2 on the CPU, 1 on CUDA (each worker "
        "holds its own CUDA context and models, ~1.2-1.5 GB, and two on one GPU only time-slice it)",
    )
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
    triton_startup_timeout_s: float = Field(
        TRITON_STARTUP_TIMEOUT_DEFAULT_S, gt=0, description="how long the service waits for tritonserver to load every model (a first "
        "start on a GPU, or udocker's ptrace mode on Colab, can take minutes)",
    )
    triton_restarts: int = Field(
        5, ge=0, description="how many times python -m rvc.launch restarts a tritonserver it owns that died, within "
        "TRITON_RESTART_WINDOW_S, before it gives up and exits non-zero (the API keeps serving meanwhile); 0: never",
    )
    triton_restart_window_s: float = Field(600.0, gt=0, description="the window TRITON_RESTARTS counts in")
    triton_restart_backoff_s: float = Field(
        1.0, ge=0, le=30, description="wait before the second restart within TRITON_RESTART_WINDOW_S (the first "
        "is immediate); it doubles with each further restart, up to 30 s",
    )

    # --- the LLM engine ---------------------------------------------------------------------
    llm_backend: Literal["auto", "python", "tensorrtllm", "onnxruntime"] = Field(
        "auto", description="the Spark LLM in Triton's python backend (torch), a TensorRT-LLM engine (CUDA "
        "only), or ONNX Runtime int8 on the CPU (exported by ONNX Runtime GenAI's builder once per checkpoint beside "
        "the repository; every row of a step in one run); auto: "
        "onnxruntime on the CPU when onnxruntime-genai is installed (about 3x torch's decode speed there, "
        "docs/llm_engines.md), python otherwise and on CUDA",
    )
    llm_restrict_vocab: bool = Field(
        False, description="the LLM scores only the tokens Spark's grammar can emit (speaker and speech codes, "
        "delimiters, stop: ~12.3k of 166k rows) with a head cut to them: 1.4x decode at one row, 1.3x at four on "
        "the CPU (onnxruntime); the python backend supports it too. Not exact: a step differs from the full "
        "vocabulary's whenever a text token would have been a candidate (docs/llm_engines.md)",
    )
    llm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="the python-backend Spark LLM's dtype (BiCodec and wav2vec2 stay float32): auto is "
        "float32 on the CPU, bfloat16 on GPUs of compute capability >= 8.0, float16 below (T4); bfloat16 is refused "
        "below 8.0 and float16 on the CPU (sparktts.precision)",
    )
    trt_engine_dir: Path | None = Field(
        None, description="TensorRT-LLM engine folder (triton/run.sh stage 1 writes it; needed when "
        "LLM_BACKEND=tensorrtllm; put it on a volume in containers)",
    )

    # --- assets -------------------------------------------------------------------------
    weights_dir: Path = Field(PROJECT_ROOT / "weights", description="RVC voices: <voice>.pth and .index")
    assets_dir: Path = Field(PROJECT_ROOT / "assets", description="hubert/hubert_base.pt, rmvpe/rmvpe.pt, "
                           "optionally fcpe/fcpe_c_v001.pt")
    spark_model_dir: Path = Field(
        PROJECT_ROOT / "pretrained_models" / "Spark-TTS-0.5B", description="Spark-TTS-0.5B folder"
    )
    voices_dir: Path = Field(
        PROJECT_ROOT / "var" / "voices",
        description="saved voices of the file store before the database: imported once at first start, then only read",
    )
    run_dir: Path = Field(PROJECT_ROOT / "var" / "run", description="sockets, pid files and server logs")
    state_dir: Path = Field(
        PROJECT_ROOT / "var" / "state",
        description="the SQLite storage database (unless DATABASE_URL is set); its config.json and reference.wav "
        "of the file store are imported once at first start",
    )
    database_url: str | None = Field(
        None,
        description="saved voices, stored defaults and the default reference clip: postgresql://user:password@host/db "
        "shares them between gateways; unset: SQLite in STATE_DIR (one machine)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where Triton's models and the RVC workers run; auto: CUDA when an NVIDIA driver is present "
        "(an error if torch is then a CPU build: set DEVICE=cpu to accept the CPU), decided once by rvc.device",
    )
    rvc_profile: Literal["2026", "2024"] = Field(
        "2026",
        description="RVC inference profile when neither the request, the saved voice nor POST /config names one: "
        "2026 follows the official WebUI's main (unvoiced pitch filled), 2024 its 20240604 release "
        "(README: RVC inference profiles)",
    )
    rvc_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="RVC decoder precision: auto (fp32 on the CPU; on CUDA the official WebUI main's dtype for the "
        "worker's card: fp16 above compute capability 6.1, fp32 on 6.1, GTX 16xx and cards outside its rule), "
        "fp32 (exact on CPU; on Ampere+ GPUs TF32 may apply), bf16 (opt-in, "
        "~2.3x faster decoder on CPUs with AVX-512 BF16/AMX, max deviation ~5e-3; on CUDA only with compute "
        "capability >= 8.0), fp16 (CUDA only: HuBERT and RMVPE in fp16 too, as the official half mode)",
    )

    idle_unload_s: float = Field(
        0.0, ge=0, description="after this many seconds without a model request, unload Triton's models "
        "(repository API: tritonserver runs with --model-control-mode=explicit) and stop the RVC workers; the next "
        "request loads them again and waits (X-Model-Load-Seconds says how long); 0: off",
    )

    # --- request limits -----------------------------------------------------------------
    max_text_chars: int = Field(5000, ge=1, description="longest accepted text")
    max_upload_mb: float = Field(25.0, gt=0, description="largest accepted upload")
    max_reference_seconds: float = Field(30.0, gt=0, description="longest accepted reference clip")
    max_audio_seconds: float = Field(600.0, gt=0, description="longest audio accepted by /rvc")
    rvc_queue_size: int = Field(32, ge=1, description="jobs waiting for a worker before 503 busy")
    rvc_stream_max: int = Field(16, ge=1, description="open RVC streams (chunk mode) before 503 busy")
    rvc_job_timeout_s: float = Field(300.0, gt=0)
    rvc_recycle_gpu_mb: float = Field(
        0.0, ge=0, description="replace an RVC worker whose CUDA cache holds more than this many MiB after a job "
        "(0: never; off on the CPU, where workers hold no GPU memory)",
    )

    # --- RVC streams (granularity=chunk): StreamConfig's geometry; unset = its measured default ----------
    rvc_stream_block_s: float | None = Field(
        None, gt=0, description="new input of a stream's first step, seconds (multiple of 0.01): the floor of chunk "
        "mode's first audio (unset: rvc/infer/stream_config.py's default)",
    )
    rvc_stream_steady_block_s: float | None = Field(
        None, gt=0, description="largest step, reached by doubling the first: fewer, larger steps cost less per "
        "second of audio once the first sound is out (unset: the default)",
    )
    rvc_stream_context_s: float | None = Field(
        None, gt=0, description="left context HuBERT and the synthesizer see per step (RVC's realtime GUI: 2.5 s; "
        "unset: the default)",
    )
    rvc_stream_crossfade_s: float | None = Field(None, gt=0, description="SOLA crossfade per join (unset: the default)")
    rvc_stream_search_s: float | None = Field(None, ge=0, description="SOLA search window (unset: the default)")
    stream_prefetch_lead_s: float = Field(
        1.5, ge=0, description="chunk mode: seconds of a sentence's TTS audio ahead of real time before the next "
        "sentence's TTS starts, so the streaming model decodes both together (0: at its first chunk)",
    )

    # --- long-form jobs (POST /jobs) ---------------------------------------------------------
    max_job_chars: int = Field(
        50000, ge=1, description="longest text a job accepts (about an hour of speech at 50000); the finished "
        "audio is assembled in memory when fetched",
    )
    job_concurrency: int = Field(
        1, ge=0, le=64, description="jobs this gateway runs at once, each one sentence at a time, so interactive "
        "requests keep the other workers; 0: this gateway runs none (another gateway on the database does)",
    )
    job_retention_s: float = Field(
        86400.0, gt=0, description="how long a finished, failed or cancelled job and its audio stay in the database",
    )
    job_lease_s: float = Field(
        30.0, ge=2, le=3600, description="a running job's lease, renewed every third of it: a gateway that stops "
        "renewing (it died) loses the job to another one after this long",
    )

    # --- the WebSocket /ws/synthesize ------------------------------------------------------
    ws_max_message_bytes: int = Field(
        65536, ge=64, description="largest client message (one JSON text frame); over it: error, close 1008"
    )
    ws_max_buffered_chars: int = Field(
        5000, ge=1, description="text appended but not yet spoken a session may hold; over it: error, close 1008"
    )
    ws_idle_timeout_s: float = Field(
        30.0, gt=0, description="a session with nothing to speak closes (error, 1008) after this long without a "
        "client message or audio sent",
    )

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

    @model_validator(mode="before")
    @classmethod
    def _auto_worker_count(cls, values: object) -> object:
        """RVC_WORKERS=auto (or empty) counts as unset, so ``for_device`` may pick the device's default."""
        if isinstance(values, dict):
            for key in [key for key in values if str(key).lower() == "rvc_workers"]:
                if isinstance(values[key], str) and values[key].strip().lower() in ("", "auto"):
                    del values[key]
        return values

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        ports = {
            "API_PORT": self.api_port,
            "TRITON_GRPC_PORT": self.triton_grpc_port,
            "TRITON_HTTP_PORT": self.triton_http_port,
            "TRITON_METRICS_PORT": self.triton_metrics_port,
        }
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"ports must differ, got {ports}")
        if self.llm_backend == "tensorrtllm" and self.trt_engine_dir is None:
            raise ValueError("LLM_BACKEND=tensorrtllm needs TRT_ENGINE_DIR (the engine folder triton/run.sh stage 1 "
                             "builds)")
        if self.llm_backend == "tensorrtllm" and self.llm_restrict_vocab:
            raise ValueError("LLM_RESTRICT_VOCAB needs LLM_BACKEND python or onnxruntime; TensorRT-LLM scores the "
                             "full vocabulary")
        if self.llm_backend == "tensorrtllm" and self.device == "cpu":
            raise ValueError("LLM_BACKEND=tensorrtllm needs a GPU; it cannot run with DEVICE=cpu")
        return self

    def for_device(self, device: Literal["cpu", "cuda"]) -> Settings:
        """These settings once DEVICE is resolved (``rvc.device.resolve_device``): the device fixed, so
        Triton and the workers cannot decide "auto" differently, and the device's defaults applied to
        what the environment left unset (RVC_WORKERS: 1 on CUDA).
        """
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda once resolved, got {device!r}")
        update: dict[str, object] = {"device": device}
        if device == "cuda" and "rvc_workers" not in self.model_fields_set:
            update["rvc_workers"] = 1
        if self.llm_backend == "auto":
            update["llm_backend"] = auto_llm_backend(device)
        return self.model_copy(update=update)

    @property
    def voice_name(self) -> str:
        """The default voice's name: RVC_MODEL without `.pth`."""
        return self.rvc_model.removesuffix(".pth")

    @property
    def stream_geometry(self) -> dict[str, float]:
        """The RVC_STREAM_* values that are set, by StreamConfig's field names (the rest keep its defaults)."""
        values = {
            "block": self.rvc_stream_block_s,
            "steady_block": self.rvc_stream_steady_block_s,
            "context": self.rvc_stream_context_s,
            "crossfade": self.rvc_stream_crossfade_s,
            "search": self.rvc_stream_search_s,
        }
        return {name: value for name, value in values.items() if value is not None}

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def triton_metrics_url(self) -> str:
        return f"http://{self.triton_host}:{self.triton_metrics_port}/metrics"

    @property
    def hubert_path(self) -> Path:
        """The WebUI 20240604 layout: fairseq ``hubert/hubert_base.pt``."""
        return self.assets_dir / "hubert" / "hubert_base.pt"

    @property
    def hubert_folder(self) -> Path:
        """The WebUI main layout: a transformers folder ``hubert_base/`` (config.json, pytorch_model.bin)."""
        return self.assets_dir / "hubert_base"

    @property
    def content_encoder_path(self) -> Path:
        """The HuBERT the workers load: main's folder once complete (its config.json), else hubert_base.pt.

        Both hold the same network (main converted the checkpoint), so either serves both profiles.
        """
        return self.hubert_folder if (self.hubert_folder / "config.json").is_file() else self.hubert_path

    @property
    def rmvpe_path(self) -> Path:
        return self.assets_dir / "rmvpe" / "rmvpe.pt"

    @property
    def fcpe_path(self) -> Path:
        """Optional: FCPE's weights are read from the installed torchfcpe wheel unless this file exists."""
        return self.assets_dir / "fcpe" / "fcpe_c_v001.pt"


def auto_llm_backend(device: Literal["cpu", "cuda"]) -> Literal["python", "onnxruntime"]:
    """LLM_BACKEND=auto for a resolved device: on the CPU the fastest engine whose logits hold (ONNX
    Runtime int8: about 4-5x torch's decode tokens/s at batch 1 on two cores, top-50 cosine >= 0.999
    against float32; docs/llm_engines.md), when the package that exports it (onnxruntime-genai) is
    installed; torch otherwise, and on CUDA (bfloat16/float16 there; TensorRT-LLM only when asked, it
    needs an engine built first).

    Only asks whether the package is importable: the gateway never imports an engine.
    """
    if device == "cpu" and importlib.util.find_spec("onnxruntime_genai") is not None:
        return "onnxruntime"
    return "python"


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
