"""What importing the gateway and the pool loads, checked in fresh interpreters.

The gateway process must not carry torch, transformers or faiss (hundreds of
MiB it never uses: the models live in the workers), and a worker must be able
to set its thread limits before torch loads (rvc/server/worker.py). Both
hold only while nothing on those import paths pulls the model code in, which
is easy to break with one import: hence these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_PACKAGES = ("torch", "transformers", "faiss")


def _loaded_after(imports: str) -> list[str]:
    """The model packages in sys.modules after ``import <imports>`` in a new interpreter."""
    code = (
        f"import json, sys\nimport {imports}\n"
        f"print(json.dumps([name for name in {MODEL_PACKAGES!r} if name in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "imports",
    [
        "rvc.api.app, rvc.processing.backends, rvc.processing.services, rvc.server",  # the gateway
        "rvc.server.daemon, rvc.server.client",  # the daemon's parent and the control tool's client
        "rvc.server.worker",  # what a spawned worker imports before worker_main sets its thread limits
        "rvc.infer.params",  # the per-job value types
    ],
)
def test_importing_loads_no_model_packages(imports: str) -> None:
    assert _loaded_after(imports) == []


def test_the_worker_runtime_is_where_torch_loads() -> None:
    # The counter-check: the subprocess really can see torch when something imports it.
    assert _loaded_after("rvc.server.worker_runtime") == list(MODEL_PACKAGES)
