"""Fixtures for the code-tool tests: the toyshop package written into a temp folder.

``tools/`` is appended (not prepended) to ``sys.path`` so ``import codetools``
works without letting the CLI script names shadow installed modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.toyshop import write_toyshop

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / "tools"
if str(TOOLS_DIR) not in sys.path:
    sys.path.append(str(TOOLS_DIR))


@pytest.fixture(scope="session")
def toyshop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only toyshop package folder shared by the analysis tests."""
    return write_toyshop(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def toyshop_copy(tmp_path: Path) -> Path:
    """A private toyshop that a test may rewrite (rename, replace)."""
    return write_toyshop(tmp_path / "own")


@pytest.fixture
def run_tool(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``tools/<name>.py`` as a subprocess from a neutral working directory."""

    def run(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        return subprocess.run(
            [sys.executable, str(TOOLS_DIR / f"{name}.py"), *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
