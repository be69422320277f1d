"""Start, inspect and stop the RVC worker-pool daemon (rvc/server/daemon.py).

    python tools/rvc_server_control.py start --model SilverWolf_e300_s6600.pth --workers 2
    python tools/rvc_server_control.py start --foreground          # run in this terminal (Ctrl-C stops)
    python tools/rvc_server_control.py status [--json]
    python tools/rvc_server_control.py stop [--timeout 60] [--no-drain]

``start`` detaches the daemon (new session, output in RUN_DIR/rvc_server.log),
waits until its socket answers (every worker loaded and warmed up) and
prints its pid; the daemon writes RUN_DIR/rvc_server.pid. ``stop`` asks for
a graceful drain over the socket, waits, and kills the daemon's process
group if it is still there after the timeout. Settings come from the
environment (RVC_MODEL, RVC_WORKERS, WEIGHTS_DIR, ASSETS_DIR, RUN_DIR, ...)
and the options override them.

Exit codes: 0 success (start: running, also if it already was; stop: stopped
or was not running), 1 failure (start failed; stop had to kill), 2 bad
arguments or settings, 3 not running (status).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("rvc") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(REPO_ROOT))

import rvc  # noqa: E402, F401  (hides the repo's triton/ folder before torch is imported)
from rvc.errors import ModelUnavailable, VoiceError  # noqa: E402
from rvc.server.client import RVCClient  # noqa: E402
from rvc.server.daemon import DaemonPaths, build_parser, pool_config_from_args, to_argv  # noqa: E402
from rvc.server.daemon import main as daemon_main  # noqa: E402
from rvc.server.status import PoolStatus  # noqa: E402
from rvc.settings import load_settings  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3


def _paths(args: argparse.Namespace) -> DaemonPaths:
    run_dir = args.run_dir if args.run_dir is not None else load_settings().run_dir
    return DaemonPaths.under(run_dir, args.socket)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_daemon(pid: int) -> bool:
    """Guard against a recycled pid: the process must be an RVC daemon."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ")
    except OSError:
        return False
    return b"rvc.server.daemon" in command or b"rvc_server_control" in command


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def cmd_start(args: argparse.Namespace) -> int:
    try:
        config, paths = pool_config_from_args(args)
    except VoiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    client = RVCClient(paths.socket)
    if client.is_running():
        print(f"RVC server already running (pid {client.ping()['pid']}, socket {paths.socket})")
        return EXIT_OK
    args.device = config.device  # resolved once above; the daemon gets "cpu" or "cuda", never "auto"
    if args.foreground:
        return daemon_main(to_argv(args))
    paths.log_file.parent.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    with open(paths.log_file, "ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "rvc.server.daemon", *to_argv(args)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.log_file.parent,
            env=environment,
            start_new_session=True,
        )
    wait_s = args.wait_timeout if args.wait_timeout is not None else config.start_timeout_s + 60.0
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            print(
                f"RVC server failed to start (exit code {daemon.returncode}); log {paths.log_file}:",
                file=sys.stderr,
            )
            print(_log_tail(paths.log_file), file=sys.stderr)
            return EXIT_FAILED
        if client.is_running():
            print(
                f"RVC server started: pid {daemon.pid}, {config.num_workers} workers, voice "
                f"{config.default_voice}, socket {paths.socket}, log {paths.log_file}"
            )
            return EXIT_OK
        time.sleep(0.2)
    os.killpg(daemon.pid, signal.SIGKILL)
    daemon.wait(10)
    print(f"RVC server not ready after {wait_s:.0f} s; killed it. Log {paths.log_file}:", file=sys.stderr)
    print(_log_tail(paths.log_file), file=sys.stderr)
    return EXIT_FAILED


def cmd_stop(args: argparse.Namespace) -> int:
    paths = _paths(args)
    pid = _read_pid(paths.pid_file)
    client = RVCClient(paths.socket)
    try:
        pid = client.stop(drain=not args.no_drain, timeout_s=args.timeout)
    except ModelUnavailable:
        if pid is None or not _alive(pid) or not _is_our_daemon(pid):
            for path in (paths.socket, paths.pid_file):
                path.unlink(missing_ok=True)
            print("RVC server not running")
            return EXIT_OK
        print(f"RVC server (pid {pid}) does not answer on {paths.socket}; sending SIGTERM")
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, args.timeout + 10.0):
        print(f"RVC server stopped (pid {pid})")
        return EXIT_OK
    print(
        f"RVC server (pid {pid}) still running after {args.timeout + 10.0:.0f} s; killing it", file=sys.stderr
    )
    try:
        os.killpg(pid, signal.SIGKILL)  # the daemon leads its own session: this reaches its workers too
    except ProcessLookupError:
        pass
    _wait_gone(pid, 5.0)
    for path in (paths.socket, paths.pid_file):
        path.unlink(missing_ok=True)
    return EXIT_FAILED


def _table(reply: dict) -> str:
    status = PoolStatus.from_dict(reply["status"])
    voices = ", ".join(f"{v} (default)" if v == status.default_voice else v for v in status.voices)
    lines = [
        f"RVC server: {'running' if status.accepting else 'stopping'}  pid {reply['pid']}  "
        f"uptime {reply['uptime_s']:.0f} s  socket {reply['socket']}",
        f"voices:  {voices}",
        f"workers: {status.ready_workers}/{status.num_workers} ready, {status.busy_workers} busy; "
        f"crashed {status.workers_crashed}, recycled {status.workers_recycled}, "
        f"killed hung {status.workers_killed_hung}",
        f"queue:   {status.queue_depth}/{status.max_queue} waiting, {status.running} running",
        f"jobs:    submitted {status.jobs_submitted}, done {status.jobs_done}, failed {status.jobs_failed}, "
        f"cancelled {status.jobs_cancelled}, timed out {status.jobs_timed_out}, "
        f"rejected busy {status.jobs_rejected_busy}",
    ]
    if status.error:
        lines.append(f"error:   {status.error}")
    lines += [
        "",
        f"{'ID':>4} {'PID':>8}  {'STATE':<9} {'JOBS':>6} {'RSS MB':>8} {'UPTIME':>9}  {'JOB':<8} VOICES",
    ]
    for w in status.workers:
        rss = "-" if w.rss_mb is None else f"{w.rss_mb:.0f}"
        lines.append(
            f"{w.worker_id:>4} {w.pid or '-':>8}  {w.state:<9} {w.jobs_done:>6} {rss:>8} "
            f"{w.uptime_s:>8.0f}s  {w.job_id or '-':<8} {','.join(w.voices)}"
        )
    if status.stage_avg_s:
        lines += [
            "",
            "mean seconds per stage: " + "  ".join(f"{k} {v:.3f}" for k, v in status.stage_avg_s.items()),
        ]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    paths = _paths(args)
    try:
        reply = RVCClient(paths.socket).status_reply()
    except ModelUnavailable:
        print(f"RVC server not running (no answer on {paths.socket})")
        return EXIT_NOT_RUNNING
    print(json.dumps(reply, indent=2) if args.json else _table(reply))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "start", parents=[build_parser()], help="start the daemon and wait until ready"
    )
    start.add_argument("--foreground", action="store_true", help="run in this process until stopped")
    start.add_argument("--wait-timeout", type=float, help="seconds to wait for readiness")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--socket", type=Path, help="Unix socket path (default: RUN_DIR/rvc_server.sock)")
    where.add_argument("--run-dir", type=Path, help="folder of the socket and pid file (default: RUN_DIR)")
    status = commands.add_parser("status", parents=[where], help="print workers, queue, jobs and voices")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    stop = commands.add_parser("stop", parents=[where], help="drain and stop the daemon")
    stop.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to drain before killing (default 60)"
    )
    stop.add_argument("--no-drain", action="store_true", help="cancel queued jobs instead of finishing them")
    args = parser.parse_args(argv)
    try:
        return {"start": cmd_start, "status": cmd_status, "stop": cmd_stop}[args.command](args)
    except VoiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.status_code < 500 else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
