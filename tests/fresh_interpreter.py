"""Which packages a fresh interpreter holds after running some code: the import-cost tests' one probe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(code: str, packages: tuple[str, ...]) -> list[str]:
    """The ``packages`` in sys.modules after ``code`` ran in a new interpreter (cwd: the repository root)."""
    probe = f"import json, sys\n{code}\nprint(json.dumps([name for name in {packages!r} if name in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
