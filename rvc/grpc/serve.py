"""Run tritonserver on the prepared model repository until SIGINT/SIGTERM (triton/run.sh stage 3).

    python -m rvc.grpc.serve                       # TRITON_MODEL_REPO, TRITON_*_PORT from the settings
    python -m rvc.grpc.serve --model-repository var/model_repo --grpc-port 8001

It goes through ``rvc.grpc.launcher.TritonServer`` so that the stub finds this virtualenv, runs
in a neutral directory and binds to TRITON_HOST only; stopping escalates to SIGKILL when an open
stream keeps the server alive. The server's log is copied to stderr while it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from rvc.errors import VoiceError
from rvc.grpc.launcher import TritonServer, TritonServerConfig
from rvc.settings import load_settings

logger = logging.getLogger("rvc.grpc.serve")


def build_config(argv: list[str] | None = None) -> TritonServerConfig:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", type=Path, default=settings.triton_model_repo)
    parser.add_argument("--host", default=settings.triton_host)
    parser.add_argument("--grpc-port", type=int, default=settings.triton_grpc_port)
    parser.add_argument("--http-port", type=int, default=settings.triton_http_port)
    parser.add_argument("--metrics-port", type=int, default=settings.triton_metrics_port)
    parser.add_argument("--startup-timeout", type=float, default=settings.triton_startup_timeout_s,
                        help="seconds to wait for all models (default: TRITON_STARTUP_TIMEOUT_S)")
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument(
        "--explicit-model-control", action=argparse.BooleanOptionalAction, default=settings.idle_unload_s > 0,
        help="--model-control-mode=explicit (every model loaded at start), so that gateways with IDLE_UNLOAD_S may "
        "unload and load the models (default: on when IDLE_UNLOAD_S is set here)",
    )
    args = parser.parse_args(argv)
    return TritonServerConfig(
        model_repository=args.model_repository,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        startup_timeout_s=args.startup_timeout,
        log_verbose=args.log_verbose,
        explicit_model_control=args.explicit_model_control,
    )


def _follow(server: TritonServer, done: threading.Event) -> None:
    """Copy the server's log file to stderr as it grows, and once more after ``done`` is set."""
    position = 0

    def drain() -> None:
        nonlocal position
        try:
            with open(server.log_path, "rb") as log:
                log.seek(position)
                data = log.read()
        except (OSError, RuntimeError):  # not started yet
            return
        position += len(data)
        if data:
            sys.stderr.write(data.decode(errors="replace"))
            sys.stderr.flush()

    while not done.wait(0.5):
        drain()
    drain()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(argv)
    except VoiceError as exc:
        logger.error("%s", exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = TritonServer(config)
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(server, done), daemon=True)
    try:
        follower.start()
        server.start()
        logger.info("serving %s on grpc %s, http %s (Ctrl-C stops)", config.model_repository, server.grpc_url, server.http_url)
        while not stop.wait(1.0):
            if not server.is_running():
                logger.error("tritonserver exited on its own")
                return 1
        return 0
    except VoiceError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        server.stop()
        done.set()
        follower.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
