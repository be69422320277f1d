"""Start the whole service on one machine: assets, tritonserver, then the Voice API.

``python -m rvc.launch`` is what the README's first command ends in. It
supervises both servers: it provisions assets (downloads, or generates the
demo ones when the hub cannot be reached), prepares the Triton model
repository, starts the real tritonserver through the launcher, then serves
the API in this process; SIGINT/SIGTERM stop both, and the exit code is
non-zero when a part failed. A part that is not built yet is named in the log
instead of being faked.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from rvc.assets import DEMO_NOTICE, inspect_assets
from rvc.errors import VoiceError
from rvc.grpc.launcher import TritonServer, TritonServerConfig
from rvc.logging_setup import configure_logging
from rvc.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("rvc.launch")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def provision_assets(settings: Settings, *, allow_download: bool) -> None:
    """Download the real assets when possible, else generate the demo ones; say which plainly."""
    report = inspect_assets(settings)
    if report.complete:
        logger.info("assets present (%s)", "DEMO: random weights" if report.demo else "real checkpoints")
        return
    logger.info("missing assets: %s", ", ".join(report.missing))
    tools = PROJECT_ROOT / "tools"
    if allow_download and (tools / "download_all_assets.py").is_file():
        code = subprocess.call([sys.executable, str(tools / "download_all_assets.py"), "--if-reachable"], cwd=tools)
        if code == 0 and inspect_assets(settings).complete:
            return
        logger.warning("assets could not be downloaded (exit code %s); generating demo assets", code)
    if (tools / "make_demo_assets.py").is_file():
        code = subprocess.call([sys.executable, str(tools / "make_demo_assets.py")], cwd=tools)
        if code != 0:
            logger.error("demo asset generation failed with exit code %s", code)
    report = inspect_assets(settings)
    if not report.complete:
        logger.error("still missing: %s", ", ".join(report.missing))


def prepare_repository(settings: Settings) -> Path | None:
    """Fill the Triton model repository from triton/model_repo's templates."""
    if not _module_exists("rvc.grpc.model_repository"):
        logger.error("NOT BUILT YET: the Triton model repository (issue 5); Spark-TTS will not be served")
        return None
    from rvc.grpc.model_repository import prepare_model_repository

    return prepare_model_repository(settings.triton_model_repo, model_dir=settings.spark_model_dir)


def serve_api(settings: Settings, stop: threading.Event) -> int:
    """Serve the Voice API in this thread until ``stop`` is set or uvicorn exits."""
    if not _module_exists("rvc.api.app"):
        logger.error("NOT BUILT YET: the Voice HTTP API (issue 7); nothing listens on port %s", settings.api_port)
        stop.wait()
        return 0
    import uvicorn

    from rvc.api.app import create_app

    print_usage(settings)

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None)
    )
    watcher = threading.Thread(target=lambda: (stop.wait(), setattr(server, "should_exit", True)), daemon=True)
    watcher.start()
    server.run()
    return 0 if server.started else 1


def print_usage(settings: Settings) -> None:
    url = f"http://{'localhost' if settings.api_host in ('0.0.0.0', '127.0.0.1') else settings.api_host}:{settings.api_port}"
    print(
        f"\nVoice service starting on {url}\n"
        f"  curl {url}/health\n"
        f"  curl -X POST {url}/synthesize -F text='Hello world!' -F reference_audio=@ref.wav -o out.wav\n"
        f"  API docs: {url}/docs\n",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start tritonserver and the Voice API together.")
    parser.add_argument("--no-download", action="store_true", help="never try the model hub; use demo assets")
    parser.add_argument("--no-triton", action="store_true", help="do not start tritonserver (one already runs)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    provision_assets(settings, allow_download=not args.no_download)
    if inspect_assets(settings).demo:
        logger.warning(DEMO_NOTICE)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s received; stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    triton: TritonServer | None = None
    try:
        repository = None if args.no_triton else prepare_repository(settings)
        if repository is not None:
            triton = TritonServer(
                TritonServerConfig(
                    model_repository=repository,
                    host=settings.triton_host,
                    grpc_port=settings.triton_grpc_port,
                    http_port=settings.triton_http_port,
                    metrics_port=settings.triton_metrics_port,
                    work_dir=settings.run_dir / "tritonserver",
                )
            )
            triton.start()
        return serve_api(settings, stop)
    except VoiceError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        if triton is not None:
            triton.stop()


if __name__ == "__main__":
    sys.exit(main())
