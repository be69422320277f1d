"""Start the whole service on one machine: assets, tritonserver, then the Voice API.

``python -m rvc.launch`` is what the README's first command ends in. It
supervises both servers: it provisions assets (downloads, or generates the
demo ones when the hub cannot be reached), prepares the Triton model
repository, starts the real tritonserver through its supervisor, then serves
the API in this process. A tritonserver that dies is restarted with backoff
while the API keeps serving; after TRITON_RESTARTS restarts within the
window the service exits non-zero. SIGINT/SIGTERM stop both, and the exit
code is non-zero when a part failed. Killed outright (SIGKILL, the OOM
killer), it leaves nothing behind: tritonserver dies with the supervisor's
thread (children.py) and its stubs follow; the RVC workers exit when their
pipe to this process reads EOF.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from rvc.assets import DEMO_NOTICE, inspect_assets
from rvc.device import (
    check_rvc_precision,
    driver_present,
    instance_gpu_count,
    probe_torch,
    resolve_device,
    resolve_llm_dtype,
)
from rvc.errors import ConfigError, VoiceError
from rvc.grpc.launcher import TritonServerConfig
from rvc.grpc.model_repository import LLMBackend, prepare_model_repository
from rvc.grpc.supervisor import RestartPolicy, TritonSupervisor
from rvc.logging_setup import configure_logging
from rvc.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("rvc.launch")


def triton_config(settings: Settings, repository: Path) -> TritonServerConfig:
    """The tritonserver the settings place (host, ports, work dir under RUN_DIR), shared with the tests' stack
    so both start it where the clients look for it; callers replace the timeouts and device they decide."""
    return TritonServerConfig(
        model_repository=repository,
        host=settings.triton_host,
        grpc_port=settings.triton_grpc_port,
        http_port=settings.triton_http_port,
        metrics_port=settings.triton_metrics_port,
        work_dir=settings.run_dir / "tritonserver",
        explicit_model_control=settings.idle_unload_s > 0,
    )


def _run_tool(command: list[str], stop: threading.Event) -> int:
    """Run a provisioning tool; a stop request terminates it instead of orphaning it."""
    process = subprocess.Popen(command, cwd=PROJECT_ROOT / "tools")
    while process.poll() is None:
        if stop.wait(0.2):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            return 130
    return process.returncode


def provision_assets(settings: Settings, stop: threading.Event, *, allow_download: bool) -> None:
    """Download the real assets when possible, else generate the demo ones; say which plainly."""
    report = inspect_assets(settings)
    if report.complete:
        logger.info("assets present (%s)", "DEMO: random weights" if report.demo else "real checkpoints")
        return
    logger.info("missing assets: %s", ", ".join(report.missing))
    if allow_download:
        code = _run_tool([sys.executable, "download_all_assets.py", "--if-reachable"], stop)
        if code == 0 and inspect_assets(settings).complete:
            return
        logger.warning("assets could not be downloaded (exit code %s); generating demo assets", code)
    if not stop.is_set() and _run_tool([sys.executable, "make_demo_assets.py"], stop) != 0:
        logger.error("demo asset generation failed")
    report = inspect_assets(settings)
    if not report.complete:
        logger.error("still missing: %s", ", ".join(report.missing))


def serve_api(settings: Settings, stop: threading.Event) -> int:
    """Serve the Voice API in this thread until ``stop`` is set, a signal arrives, or uvicorn exits."""
    import uvicorn

    from rvc.api.app import create_app
    from rvc.api.middleware import HTTP_HEAD_BUFFER_BYTES

    print_usage(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None,
            h11_max_incomplete_event_size=HTTP_HEAD_BUFFER_BYTES,  # oversized headers reach the app's 431
        )
    )
    def exit_when_stopped() -> None:
        stop.wait()
        server.should_exit = True

    watcher = threading.Thread(target=exit_when_stopped, daemon=True)
    watcher.start()
    server.run()
    return 0 if server.started or stop.is_set() else 1


def print_usage(settings: Settings) -> None:
    url = f"http://{'localhost' if settings.api_host in ('0.0.0.0', '127.0.0.1') else settings.api_host}:{settings.api_port}"
    print(
        f"\nVoice service starting on {url}\n"
        f"  curl {url}/health\n"
        f"  curl -X POST {url}/synthesize -F text='Hello world!' -F reference_audio=@ref.wav -o out.wav\n"
        f"  API docs: {url}/docs\n",
        flush=True,
    )


@dataclass(frozen=True)
class Placement:
    """DEVICE decided: the settings with the resolved device, and how many GPUs Triton may spread over."""

    settings: Settings
    gpu_count: int
    llm_dtype: str = "float32"  # LLM_DTYPE resolved for the device (sparktts.precision.llm_dtype)
    llm_backend: LLMBackend = "python"  # LLM_BACKEND with auto resolved (settings.llm_backend, typed narrower)


def resolve_placement(settings: Settings) -> Settings:
    """Decide DEVICE once, for Triton and the RVC workers alike, and check RVC_PRECISION and the
    TensorRT-LLM engine against it; the settings returned carry the resolved device (and its defaults).
    """
    return place(settings).settings


def place(settings: Settings) -> Placement:
    """``resolve_placement`` plus the GPU count (the repository spreads instances over several GPUs).

    torch is asked in a child interpreter: this process serves the API and never imports it.
    """
    driver = driver_present()
    device: Literal["cpu", "cuda"] = "cpu"
    capability: tuple[int, int] | None = None
    gpu_count, gpu_name = 0, ""
    if settings.device == "cpu" and settings.llm_backend != "tensorrtllm":
        pass
    else:
        facts = probe_torch()
        device = resolve_device(settings.device, driver=driver, facts=facts)
        capability = facts.capability if device == "cuda" else None
        gpu_count = instance_gpu_count(device, facts)
        gpu_name = min(facts.gpus, key=lambda gpu: gpu.capability).name if device == "cuda" and facts.gpus else ""
        logger.info("torch %s (CUDA %s); models run on %s%s", facts.torch_version, facts.cuda_version, device,
                    f" ({', '.join(gpu.name for gpu in facts.gpus)})" if device == "cuda" else "")
    check_rvc_precision(settings.rvc_precision, device, capability)
    llm_dtype = resolve_llm_dtype(settings.llm_dtype, device, capability, "LLM_DTYPE", gpu_name)
    if settings.llm_backend == "tensorrtllm":
        if device != "cuda":
            raise ConfigError("LLM_BACKEND=tensorrtllm needs a GPU, and DEVICE resolved to cpu", field="LLM_BACKEND")
        engine = settings.trt_engine_dir
        if engine is None or not (engine / "config.json").is_file():
            raise ConfigError(f"TRT_ENGINE_DIR={engine}: no TensorRT-LLM engine there (build one with "
                              "triton/run.sh 1 1 in the TensorRT-LLM image)", field="TRT_ENGINE_DIR")
    resolved = settings.for_device(device)
    if resolved.llm_backend == "auto":  # for_device resolves it; this tells the type checker
        raise AssertionError("LLM_BACKEND=auto left unresolved")
    return Placement(resolved, gpu_count, llm_dtype, resolved.llm_backend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start tritonserver and the Voice API together.")
    parser.add_argument("--no-download", action="store_true", help="never try the model hub; use demo assets")
    parser.add_argument("--no-triton", action="store_true", help="do not start tritonserver (one already runs)")
    args = parser.parse_args(argv)
    try:
        placement = place(load_settings())
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = placement.settings
    configure_logging(settings.log_level)

    stop, triton_gave_up = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s received; stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    provision_assets(settings, stop, allow_download=not args.no_download)
    if inspect_assets(settings).demo:
        logger.warning(DEMO_NOTICE)
    if stop.is_set():
        return 0

    triton: TritonSupervisor | None = None

    def give_up(message: str) -> None:
        triton_gave_up.set()
        stop.set()

    try:
        if not args.no_triton:
            repository = prepare_model_repository(
                settings.triton_model_repo,
                model_dir=settings.spark_model_dir,
                # resolved above: the workers get the same device through create_app(settings)
                device="cuda" if settings.device == "cuda" else "cpu",
                llm_backend=placement.llm_backend,
                llm_restrict_vocab=settings.llm_restrict_vocab,
                trtllm_engine_dir=settings.trt_engine_dir,
                gpu_count=placement.gpu_count,
                dtype=placement.llm_dtype,
            )
            triton = TritonSupervisor(
                dataclasses.replace(
                    triton_config(settings, repository),
                    startup_timeout_s=settings.triton_startup_timeout_s,
                    cpu_only=settings.device == "cpu",
                ),
                RestartPolicy(
                    max_restarts=settings.triton_restarts,
                    window_s=settings.triton_restart_window_s,
                    backoff_s=settings.triton_restart_backoff_s,
                ),
                on_give_up=give_up,
            )
            triton.start()
        code = serve_api(settings, stop)
        if triton_gave_up.is_set():
            print(f"error: {triton.failure if triton is not None else 'tritonserver failed'}", file=sys.stderr)
            return 1
        return code
    except VoiceError as exc:
        if stop.is_set() and not triton_gave_up.is_set():  # SIGINT/SIGTERM while tritonserver loaded
            logger.info("stopped before the service was ready")
            return 0
        logger.error("%s", exc)
        return 1
    finally:
        if triton is not None:
            triton.stop()


if __name__ == "__main__":
    sys.exit(main())
