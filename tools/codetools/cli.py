"""Small helpers shared by the CLI scripts: logging, output, error exit codes."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path


def run_cli(main: Callable[[], str | None]) -> int:
    """Run a CLI body: print what it returns; ToolError, bad regexes and missing paths exit with 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        text = main()
    except (ValueError, FileNotFoundError, re.error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if text:
        try:
            print(text)
        except BrokenPipeError:
            # Output piped into `head` and the reader left: not an error for a report tool.
            sys.stdout = open(os.devnull, "w")  # keeps interpreter shutdown quiet
    return 0


def emit(text: str, output: str | None) -> str:
    """Return ``text`` for printing, or write it to ``output`` and return a one-line note."""
    if output is None:
        return text
    target = Path(output)
    target.write_text(text + "\n", encoding="utf-8")
    return f"wrote {len(text.splitlines())} lines to {target}"


def split_extensions(value: str | None) -> list[str] | None:
    """``"py,js"`` -> ``["py", "js"]``; None keeps all extensions."""
    if not value:
        return None
    return [part.strip().lstrip(".") for part in value.split(",") if part.strip()]
