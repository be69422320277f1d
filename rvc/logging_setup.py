"""Logging for the service: one format, and a request id on every line of a request.

The id lives in a context variable, so it follows a request across awaits and
into threads started with ``contextvars.copy_context()``; lines logged outside
a request show ``-``.
"""

from __future__ import annotations

import contextvars
import logging
import sys

__all__ = ["configure_logging", "request_id_var"]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_FORMAT = "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "_voice_service", False):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_RequestIdFilter())
    handler._voice_service = True  # type: ignore[attr-defined]  # a marker, so a second call (even after a reload) finds its handler
    root.addHandler(handler)
