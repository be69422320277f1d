"""What a test needs to know about other processes, read from /proc: descendants, liveness, listening ports.

Tests of process supervision assert on the real process table, never on
what the supervisor says about itself.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    """One process as seen at one moment; ``started`` (clock ticks since boot) tells a reused pid apart."""

    pid: int
    parent: int
    started: int
    command: str


def _record(pid: int) -> ProcessRecord | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its exit status is left to reap
    return ProcessRecord(pid=pid, parent=int(fields[1]), started=int(fields[19]), command=command)


def live_processes() -> dict[int, ProcessRecord]:
    records = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (record := _record(int(entry.name))) is not None:
            records[record.pid] = record
    return records


def descendants(root: int) -> list[ProcessRecord]:
    """Every live process below ``root`` in the process tree (children, their children, ...)."""
    table = live_processes()
    children: dict[int, list[ProcessRecord]] = {}
    for record in table.values():
        children.setdefault(record.parent, []).append(record)
    found, frontier = [], [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            found.append(child)
            frontier.append(child.pid)
    return found


def still_alive(records: list[ProcessRecord]) -> list[ProcessRecord]:
    """Those of ``records`` that still run (the same process: same pid and start time, not a zombie)."""
    alive = []
    for record in records:
        now = _record(record.pid)
        if now is not None and now.started == record.started:
            alive.append(now)
    return alive


def listening(port: int) -> bool:
    """Whether any socket on this machine listens on TCP ``port`` (IPv4 or IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def port_bindable(port: int) -> bool:
    """Whether a server could bind ``port`` on loopback now (with SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, *, poll_s: float = 0.1) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took, or fails naming ``what``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > deadline_s:
            raise AssertionError(f"{what}: not within {deadline_s:g} s")
        time.sleep(poll_s)
    return time.monotonic() - started

