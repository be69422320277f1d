"""The whole service on loopback for tests and the seed's CLIs: demo assets, tritonserver, workers, API.

``running_stack(root)`` writes tiny demo assets under ``root``, prepares the
Triton model repository, starts the real tritonserver, then serves the real
app with uvicorn on a free port in a background thread (the RVC pool's
workers are real processes). It yields a ``Stack`` and stops everything on
exit, leaving no process behind.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
import uvicorn
from fastapi import FastAPI

from rvc.api.app import create_app
from rvc.assets import mark_demo
from rvc.grpc.launcher import TritonServer
from rvc.launch import triton_config
from rvc.settings import Settings, load_settings
from tests.conftest import free_port

if TYPE_CHECKING:
    from rvc.processing.services import VoiceServices

VOICE = "SilverWolf_e300_s6600"


@dataclass
class Stack:
    settings: Settings
    triton: TritonServer
    base_url: str
    app: FastAPI

    @property
    def services(self) -> VoiceServices:
        """The app's services, for tests that look inside the running gateway."""
        services: VoiceServices = self.app.state.services
        return services


def write_demo_assets(root: Path, *, ends_speech: bool = True) -> dict[str, Path]:
    """Tiny random-weight assets in the official layouts, through the generators users' tools call.

    ``ends_speech=False``: a Spark-TTS LLM that speaks every sentence to its token budget (benchmarks).
    """
    from rvc.infer.demo_assets import write_demo_rvc_assets
    from sparktts.demo import write_demo_model

    spark = root / "Spark-TTS-0.5B"
    weights, assets = root / "weights", root / "assets"
    if not (spark / "config.yaml").is_file():
        write_demo_model(spark, seed=0, ends_speech=ends_speech)
    if not (weights / f"{VOICE}.pth").is_file():
        write_demo_rvc_assets(weights, assets, voice_name=VOICE, seed=0)
    for folder in (spark, weights, assets / "hubert", assets / "rmvpe"):
        mark_demo(folder)
    return {"spark": spark, "weights": weights, "assets": assets}


def stack_settings(root: Path, paths: dict[str, Path], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "spark_model_dir": paths["spark"],
        "weights_dir": paths["weights"],
        "assets_dir": paths["assets"],
        "triton_model_repo": root / "model_repo",
        "state_dir": root / "state",
        "voices_dir": root / "voices",
        "run_dir": root / "run",
        "api_port": free_port(),
        "triton_grpc_port": free_port(),
        "triton_http_port": free_port(),
        "triton_metrics_port": free_port(),
        "rvc_workers": 2,
        "device": "cpu",
    }
    values.update(overrides)
    return load_settings(**values)


def start_triton(settings: Settings, *, mode: Literal["offline", "streaming"] = "offline") -> TritonServer:
    from rvc.grpc.model_repository import prepare_model_repository

    repository = prepare_model_repository(settings.triton_model_repo, model_dir=settings.spark_model_dir, mode=mode)
    server = TritonServer(dataclasses.replace(triton_config(settings, repository), stop_timeout_s=10))
    return server.start()


@contextmanager
def serve_app(settings: Settings, *, ready_timeout_s: float = 240.0) -> Iterator[tuple[FastAPI, str]]:
    """The real app under uvicorn on 127.0.0.1:<api_port>, in a thread; waits for /health to answer."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{settings.api_port}"
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            if not thread.is_alive():
                raise RuntimeError("the API server exited during start-up")
            try:
                health = httpx.get(f"{base_url}/health", timeout=5).json()
                if health.get("rvc_ready") and health.get("tts_ready"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready within {ready_timeout_s:g} s")
            time.sleep(0.25)
        yield app, base_url
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@contextmanager
def running_stack(root: Path, **overrides: object) -> Iterator[Stack]:
    paths = write_demo_assets(root / "assets_root")
    settings = stack_settings(root, paths, **overrides)
    stack: Stack | None = None
    triton = start_triton(settings)
    try:
        with serve_app(settings) as (app, base_url):
            stack = Stack(settings, triton, base_url, app)
            yield stack
    finally:
        # A test may have restarted Triton: stop the one the stack holds now, and the first one.
        if stack is not None:
            stack.triton.stop()
        triton.stop()
