"""A plain progress bar for downloads, drawn on a text stream (stderr).

No dependency: tqdm is not pinned, and a download tool that runs before the
environment is complete should need nothing extra. On a terminal the bar is
redrawn in place at most a few times a second; in a log (not a TTY) it writes
one line when a transfer starts and one when it ends, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(count: float) -> str:
    """``1536 -> '1.5 KiB'``; whole bytes below 1 KiB."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """Progress of one transfer: ``update(n)`` after each chunk, ``close()`` at the end."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        initial: int = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 30,
        min_interval_s: float = 0.2,
    ) -> None:
        self.label = label
        self.total = total
        self.done = initial
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.min_interval_s = min_interval_s
        self._interactive = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._initial = initial
        self._last_draw = 0.0
        self._closed = False
        if self.enabled and not self._interactive:
            resumed = f", resuming at {format_bytes(initial)}" if initial else ""
            size = format_bytes(total) if total is not None else "unknown size"
            self._write(f"{label}: downloading {size}{resumed}\n")
        self._draw(force=True)

    def update(self, count: int) -> None:
        self.done += count
        self._draw()

    def close(self, *, ok: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._interactive:
            self._draw(force=True)
            self._write("\n" if ok else "  (interrupted)\n")
        else:
            state = "done" if ok else "interrupted"
            self._write(f"{self.label}: {state}, {format_bytes(self.done)} ({self._rate()})\n")

    def _rate(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return f"{format_bytes((self.done - self._initial) / elapsed)}/s"

    def render(self) -> str:
        """The bar as one line, e.g. ``config.yaml [#####-----]  50% 1.0/2.0 MiB 3.1 MiB/s``."""
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            amount = f"{format_bytes(self.done)}/{format_bytes(self.total)}"
            return f"{self.label} [{bar}] {fraction:4.0%} {amount} {self._rate()}"
        return f"{self.label} {format_bytes(self.done)} {self._rate()}"

    def _draw(self, force: bool = False) -> None:
        if not self._interactive:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        self._write("\r" + self.render() + "\x1b[K")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
