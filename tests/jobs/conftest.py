"""One tritonserver for the jobs tests, and gateways (the real app, real workers) started on it as a test needs.

Restart-resume needs a gateway stopped and another started on the same
database with Triton left running, so this folder starts Triton once and
serves apps itself (``tests.stack.serve_app``) instead of using a whole
``running_stack`` per gateway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rvc.settings import Settings
from tests.conftest import free_port
from tests.stack import serve_app, stack_settings, start_triton, write_demo_assets

TIMEOUT = 120.0
# Five sentences: long enough to stop a gateway in the middle, short enough for a CPU test.
LONG_TEXT = (
    "The first sentence opens the story. The second one follows it closely. A third sentence keeps going. "
    "Here is the fourth of them. And the fifth closes it."
)
LONG_SENTENCES = 5


@pytest.fixture(scope="package")
def triton_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a running tritonserver on demo assets; each gateway copies them with its own port and state."""
    root = tmp_path_factory.mktemp("jobs")
    paths = write_demo_assets(root / "assets_root")
    settings = stack_settings(root, paths, rvc_workers=1, job_lease_s=3.0)
    triton = start_triton(settings)
    try:
        yield settings
    finally:
        triton.stop()


def gateway_settings(base: Settings, state_dir: Path, **overrides: Any) -> Settings:
    return base.model_copy(update={"api_port": free_port(), "state_dir": state_dir, **overrides})


@pytest.fixture(scope="package")
def gateway(triton_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway shared by the tests that only submit and read jobs; its base URL."""
    settings = gateway_settings(triton_settings, tmp_path_factory.mktemp("shared_state"))
    with serve_app(settings) as (_, base_url):
        yield base_url


def submit(base_url: str, text: str, **fields: object) -> httpx.Response:
    data = {"voice": "default", **{name: str(value) for name, value in fields.items()}, "text": text}
    return httpx.post(f"{base_url}/jobs", data=data, timeout=TIMEOUT)


def job(base_url: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/jobs/{job_id}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(base_url: str, job_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = job(base_url, job_id)
        if until(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not get there within {timeout_s:g} s: {status}")
        time.sleep(0.2)


def finished(status: dict[str, Any]) -> bool:
    return status["state"] in ("done", "failed", "cancelled")
