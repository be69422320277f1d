"""Shared parts of the seed's test CLIs (``python -m tests.test_http_api`` and friends).

Each CLI runs named checks against a running service and prints a pass/fail
table; the exit code is non-zero when a check failed. The pytest suite runs
the same checks against the local stack (tests/api/test_seed_clis.py).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "Check",
    "CheckResult",
    "base_parser",
    "clip_cli",
    "decode_wav",
    "load_or_make_reference",
    "parse_multipart",
    "parse_sse",
    "print_table",
    "run_checks",
]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], str]  # returns a short detail; raises on failure


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float


def run_checks(checks: list[Check], *, verbose: bool = False) -> list[CheckResult]:
    results = []
    for check in checks:
        started = time.perf_counter()
        try:
            detail, passed = check.run(), True
        except Exception as exc:  # a CLI reports every failure as a row, whatever it is
            detail, passed = f"{type(exc).__name__}: {exc}", False
            if verbose:
                traceback.print_exc()
        results.append(CheckResult(check.name, passed, detail, time.perf_counter() - started))
    return results


def print_table(title: str, results: list[CheckResult]) -> int:
    """Print the table; return the exit code (0 when every check passed)."""
    width = max((len(result.name) for result in results), default=10)
    print(f"\n{title}\n{'-' * (width + 60)}")
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.name:<{width}}  {result.seconds:7.2f}s  {result.detail[:200]}")
    failed = sum(not result.passed for result in results)
    print(f"{'-' * (width + 60)}\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def base_parser(description: str, *, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failed checks")
    return parser


def clip_cli(
    argv: list[str] | None,
    *,
    description: str,
    port: int,
    clip_option: str,
    clip_help: str,
    address: str,
    title: str,
    checks: Callable[[str, bytes, float], list[Check]],
) -> int:
    """``main`` of the CLIs that send one clip to one server, so that their options and table stay alike.

    address: a format string with ``{host}`` and ``{port}`` (``http://{host}:{port}`` for the API,
    ``{host}:{port}`` for gRPC); ``checks`` gets it, the clip's bytes and the per-request timeout.
    """
    parser = base_parser(description, port=port)
    parser.add_argument(clip_option, dest="clip", metavar=clip_option.removeprefix("--").upper(),
                        help=f"{clip_help} (default: espeak-ng speech or a synthetic tone)")
    args = parser.parse_args(argv)
    target = address.format(host=args.host, port=args.port)
    results = run_checks(checks(target, load_or_make_reference(args.clip), args.timeout), verbose=args.verbose)
    return print_table(f"{title} at {target}", results)


def load_or_make_reference(path: str | None) -> bytes:
    """The clip to use: a file when given, else espeak-ng speech, else a voiced synthetic tone."""
    if path:
        return Path(path).read_bytes()
    if shutil.which("espeak-ng"):
        return subprocess.run(
            ["espeak-ng", "-v", "en-us", "--stdout", "This is a reference voice for the test."],
            check=True, capture_output=True,
        ).stdout
    return synthetic_reference()


def synthetic_reference() -> bytes:
    """A 3 s voiced buzz at 16 kHz (WAV bytes): a reference clip for machines without espeak-ng or a file."""
    rate = 16000
    t = np.arange(rate * 3) / rate
    wave = 0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def decode_wav(body: bytes) -> tuple[np.ndarray, int]:
    wav, rate = sf.read(io.BytesIO(body), dtype="float32")
    return wav, rate


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/mixed body into (headers, payload) parts, honouring Content-Length."""
    boundary = content_type.split("boundary=", 1)[1].strip()
    delimiter = f"--{boundary}".encode()
    parts = []
    position = body.index(delimiter)
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            break
        header_end = body.index(b"\r\n\r\n", position)
        headers = {}
        for line in body[position + 2 : header_end].decode().split("\r\n"):
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        start = header_end + 4
        payload = body[start : start + int(headers["content-length"])]
        parts.append((headers, payload))
        position = body.index(delimiter, start + len(payload))
    return parts


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    events: list[tuple[str, str]] = []
    data: list[str] = []
    event = "message"
    for line in text.splitlines():
        if not line:
            if data:
                events.append((event, "\n".join(data)))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        events.append((event, "\n".join(data)))
    return events
