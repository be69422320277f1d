"""Daemon mode: one ``RVCServer`` served over a Unix socket (protocol.py).

    python -m rvc.server.daemon --model SilverWolf_e300_s6600.pth --workers 2 [--socket PATH]

The socket is bound only once every worker is ready, so "the socket accepts
connections" means "ready"; the pid file is written at the same moment. The
socket is created with mode 0600: anyone who can connect can stop the server.
SIGTERM/SIGINT or a "stop" request drain the pool and exit 0; the socket and
pid file are removed on the way out. ``tools/rvc_server_control.py`` starts,
watches and stops this process; ``client.RVCClient`` talks to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvc.device import decide_device
from rvc.errors import ConfigError, InvalidInput, VoiceError
from rvc.logging_setup import configure_logging
from rvc.server.config import PoolConfig
from rvc.server.pool import RVCServer
from rvc.server.protocol import audio_from_payload, audio_to_payload, read_frame, write_frame
from rvc.server.wire import error_to_dict, params_from_dict
from rvc.settings import load_settings

__all__ = ["DaemonPaths", "RVCDaemon", "build_parser", "main", "pool_config_from_args", "to_argv"]

logger = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_MAX_PAYLOAD_BYTES = 1 << 30


@dataclass(frozen=True)
class DaemonPaths:
    """Where a daemon listens and leaves its traces (all under the run dir by default)."""

    socket: Path
    pid_file: Path
    log_file: Path

    @classmethod
    def under(cls, run_dir: Path, socket_path: Path | None = None) -> DaemonPaths:
        run_dir = Path(run_dir)
        return cls(
            socket=Path(socket_path) if socket_path else run_dir / "rvc_server.sock",
            pid_file=run_dir / "rvc_server.pid",
            log_file=run_dir / "rvc_server.log",
        )


class _Handler(socketserver.BaseRequestHandler):
    server: _SocketServer

    def handle(self) -> None:
        daemon = self.server.daemon
        while True:
            try:
                frame = read_frame(self.request, max_payload_bytes=_MAX_PAYLOAD_BYTES)
            except VoiceError as exc:
                self._reply({"ok": False, "error": error_to_dict(exc)})
                return
            except OSError:
                return
            if frame is None:
                return
            header, payload = frame
            try:
                reply, reply_payload = daemon.dispatch(header, payload)
            except VoiceError as exc:
                reply, reply_payload = {"ok": False, "error": error_to_dict(exc)}, b""
            except Exception as exc:  # a bug must cost one request, not the daemon
                logger.exception("request %s failed", header.get("op"))
                reply, reply_payload = {"ok": False, "error": error_to_dict(exc)}, b""
            if not self._reply(reply, reply_payload):
                return

    def _reply(self, header: dict[str, Any], payload: bytes = b"") -> bool:
        try:
            write_frame(self.request, header, payload)
        except OSError:
            return False
        return True


class _SocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: str, daemon: RVCDaemon) -> None:
        self.daemon = daemon
        super().__init__(path, _Handler)


class RVCDaemon:
    """Serves ``server`` (already started) on ``paths.socket`` until stopped."""

    def __init__(self, server: RVCServer, paths: DaemonPaths) -> None:
        self.server = server
        self.paths = paths
        self._socket_server: _SocketServer | None = None
        self._stopping = threading.Event()
        self._started = time.time()

    def dispatch(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        """Answer one request (see protocol.py); raises project errors for the handler to send."""
        op = header.get("op")
        if op == "ping":
            return {
                "ok": True,
                "pid": os.getpid(),
                "uptime_s": time.time() - self._started,
                "state": self.server.state,
            }, b""
        if op == "status":
            return {
                "ok": True,
                "pid": os.getpid(),
                "uptime_s": time.time() - self._started,
                "socket": str(self.paths.socket),
                "status": self.server.status().to_dict(),
            }, b""
        if op == "convert":
            return self._convert(header, payload)
        if op == "load_voice":
            info = self.server.load_voice(
                str(header.get("name")), make_default=bool(header.get("make_default"))
            )
            return {"ok": True, "voice": info}, b""
        if op == "unload_voice":
            self.server.unload_voice(str(header.get("name")))
            return {"ok": True}, b""
        if op == "stop":
            timeout = header.get("timeout_s")
            self.request_stop(
                drain=bool(header.get("drain", True)), timeout=None if timeout is None else float(timeout)
            )
            return {"ok": True, "pid": os.getpid()}, b""
        raise InvalidInput(
            f"unknown op {op!r}; expected ping, status, convert, load_voice, unload_voice, stop", field="op"
        )

    def _convert(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        sample_rate = header.get("sample_rate")
        if not isinstance(sample_rate, int):
            raise InvalidInput("convert needs an integer sample_rate", field="sample_rate")
        timeout = header.get("timeout_s")
        handle = self.server.submit(
            audio_from_payload(payload),
            sample_rate,
            params_from_dict(header.get("params")),
            voice=header.get("voice"),
            timeout_s=None if timeout is None else float(timeout),
        )
        result = handle.result()
        reply = {
            "ok": True,
            "job_id": handle.job_id,
            "sample_rate": int(result.sample_rate),
            "num_samples": int(result.audio.size),
            "timings": result.timings,
        }
        return reply, audio_to_payload(result.audio)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Drain the pool and stop serving, from a background thread (safe in signal handlers)."""
        if self._stopping.is_set():
            return
        self._stopping.set()

        def stop() -> None:
            logger.info("stopping RVC daemon (drain=%s)", drain)
            self.server.shutdown(drain=drain, timeout=timeout)
            if self._socket_server is not None:
                self._socket_server.shutdown()

        threading.Thread(target=stop, name="rvc-daemon-stop", daemon=False).start()

    def serve_forever(self) -> None:
        """Bind the socket, write the pid file, serve until stopped, clean up."""
        self._socket_server = _bind(self.paths.socket, self)
        if self._stopping.is_set():  # stopped while the workers were starting
            self._socket_server.server_close()
            self.paths.socket.unlink(missing_ok=True)
            return
        try:
            os.chmod(self.paths.socket, 0o600)
            self.paths.pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")
            logger.info("RVC daemon pid %d listening on %s", os.getpid(), self.paths.socket)
            self._socket_server.serve_forever(poll_interval=0.2)
        finally:
            self._socket_server.server_close()
            if not self._stopping.is_set():
                self.server.shutdown(drain=False)
            for path in (self.paths.socket, self.paths.pid_file):
                path.unlink(missing_ok=True)
            logger.info("RVC daemon stopped")


def _bind(path: Path, daemon: RVCDaemon) -> _SocketServer:
    if len(str(path).encode()) > _MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {path} is longer than {_MAX_SOCKET_PATH} bytes; choose a shorter one")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: left by a daemon that was killed
        else:
            raise ConfigError(f"another RVC server is already listening on {path}")
        finally:
            probe.close()
    return _SocketServer(str(path), daemon)


def build_parser() -> argparse.ArgumentParser:
    """Options of the daemon; the control tool's ``start`` takes the same ones."""
    parser = argparse.ArgumentParser(add_help=False)
    add = parser.add_argument
    add("--model", help="default voice: a .pth name in WEIGHTS_DIR (default: RVC_MODEL)")
    add("--workers", type=int, help="worker processes (default: RVC_WORKERS)")
    add("--voice", action="append", dest="voices", help="another voice to load at start (repeatable)")
    add("--socket", type=Path, help="Unix socket path (default: RUN_DIR/rvc_server.sock)")
    add("--run-dir", type=Path, help="folder for socket, pid and log files (default: RUN_DIR)")
    add("--weights-dir", type=Path, help="voice folder (default: WEIGHTS_DIR)")
    add("--assets-dir", type=Path, help="folder with hubert/, rmvpe/ and optionally fcpe/ (default: ASSETS_DIR)")
    add("--queue-size", type=int, help="jobs waiting before 'busy' (default: RVC_QUEUE_SIZE)")
    add("--job-timeout", type=float, help="seconds per job (default: RVC_JOB_TIMEOUT_S)")
    add("--max-jobs-per-worker", type=int, help="recycle a worker after this many jobs (0: never)")
    add("--max-rss-mb", type=float, help="recycle a worker above this resident memory (0: never)")
    add("--max-gpu-mb", type=float, help="recycle a worker above this CUDA cache (default: RVC_RECYCLE_GPU_MB)")
    add("--device", choices=("auto", "cpu", "cuda"), help="where models run (default: DEVICE)")
    add("--no-warmup", action="store_true", help="skip the warm-up conversion")
    add("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="(default: LOG_LEVEL)")
    return parser


def to_argv(args: argparse.Namespace) -> list[str]:
    """The daemon command line that repeats ``args`` (paths made absolute, for a process with another cwd)."""
    argv: list[str] = []
    for action in build_parser()._actions:
        value = getattr(args, action.dest, None)
        if value is None or value is False or not action.option_strings:
            continue
        flag = action.option_strings[0]
        if value is True:
            argv.append(flag)
            continue
        for item in value if isinstance(value, list) else [value]:
            argv += [flag, str(Path(item).resolve()) if isinstance(item, Path) else str(item)]
    return argv


def pool_config_from_args(args: argparse.Namespace) -> tuple[PoolConfig, DaemonPaths]:
    """Settings from the environment, overridden by the command line."""
    overrides = {
        "weights_dir": args.weights_dir,
        "assets_dir": args.assets_dir,
        "run_dir": args.run_dir,
        "rvc_model": args.model,
        "rvc_workers": args.workers,
        "rvc_queue_size": args.queue_size,
        "rvc_job_timeout_s": args.job_timeout,
        "device": args.device,
        "log_level": args.log_level,
        "rvc_recycle_gpu_mb": args.max_gpu_mb,
    }
    if args.model is not None and not args.model.endswith(".pth"):
        overrides["rvc_model"] = f"{args.model}.pth"
    settings = load_settings(**{key: value for key, value in overrides.items() if value is not None})
    # "auto" decided here, once, by the service's rule: the workers then get "cpu" or "cuda"
    settings = settings.for_device(decide_device(settings.device, settings.rvc_precision))
    pool: dict[str, Any] = {"warmup": not args.no_warmup, "extra_voices": tuple(args.voices or ())}
    if args.max_jobs_per_worker is not None:
        pool["max_jobs_per_worker"] = args.max_jobs_per_worker
    if args.max_rss_mb is not None:
        pool["max_rss_mb"] = args.max_rss_mb
    try:
        config = PoolConfig.from_settings(settings, **pool)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return config, DaemonPaths.under(settings.run_dir, args.socket)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon in this process until it is stopped; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m rvc.server.daemon",
        parents=[build_parser()],
        description="Serve an RVC worker pool on a Unix socket.",
    )
    args = parser.parse_args(argv)
    try:
        config, paths = pool_config_from_args(args)
    except ConfigError as exc:
        parser.error(exc.message)
    configure_logging(config.log_level)
    server = RVCServer(config)
    daemon = RVCDaemon(server, paths)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.request_stop())
    try:
        server.start()
        daemon.serve_forever()
    except VoiceError as exc:
        server.shutdown(drain=False)
        if daemon.stopping:
            return 0
        logger.error("RVC daemon failed: %s", exc.message)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
