"""Code-analysis library behind the developer CLIs in ``tools/``.

The CLIs (``tools/analyze.py``, ``deps.py``, ``schema.py``, ``patterns.py``,
``complexity.py``, ``refactor.py``, ``replace.py``) are thin argparse shells;
everything they compute lives here so tests can call it directly. The
standard ``ast`` module does the parsing; grimp builds import graphs, radon
measures complexity, rope renames and moves symbols, vulture finds dead code.
Functions return data or text and never print.
"""

from __future__ import annotations


class ToolError(ValueError):
    """A user-facing failure (unknown or ambiguous symbol, path outside any package).

    The CLIs print it as ``error: ...`` and exit with status 2.
    """
