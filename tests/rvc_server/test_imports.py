"""What importing the gateway and the pool loads, checked in fresh interpreters.

The gateway process must not carry torch, transformers or faiss (hundreds of
MiB it never uses: the models live in the workers), and a worker must be able
to set its thread limits before torch loads (rvc/server/worker.py). Both
hold only while nothing on those import paths pulls the model code in, which
is easy to break with one import: hence these tests.
"""

from __future__ import annotations

import pytest

from tests.fresh_interpreter import loaded_after

MODEL_PACKAGES = ("torch", "transformers", "faiss")


def _loaded_after(imports: str) -> list[str]:
    """The model packages in sys.modules after ``import <imports>`` in a new interpreter."""
    return loaded_after(f"import {imports}", MODEL_PACKAGES)


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
