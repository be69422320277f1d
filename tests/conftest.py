"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from tests.stack import Stack

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (``scripts/test.sh`` runs two workers), each test package goes to one worker.

    Packages share costly package- and module-scoped fixtures (a whole stack: tritonserver, RVC workers,
    the API); split over workers, each worker would start its own. xdist's ``loadscope`` hands out
    modules; this hands out packages (a top-level test file is its own unit). ``--dist loadgroup``
    would need a marker per test, and its node-id suffix is lost under pytest 9.
    """
    from xdist.scheduler import LoadScopeScheduling

    class PackageScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0].split("/")  # tests/<package>/<file>.py or tests/<file>.py
            return "/".join(path[:2]) if len(path) > 2 else "/".join(path)

    return PackageScheduling(config, log)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The golden parity data beside the repository (``../shared/fixtures``)."""
    if not SHARED_FIXTURES.is_dir():
        raise RuntimeError(f"golden fixtures not found at {SHARED_FIXTURES}; ../shared must sit beside the repo")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def spark_tiny(shared_fixtures: Path) -> Path:
    """The tiny Spark-TTS golden: ``model/`` (official layout, random weights), ``inputs/``, ``expected/``.

    Here because the codec, LM and Triton tests all read it.
    """
    return shared_fixtures / "spark_tts_tiny"


@pytest.fixture(scope="session")
def pipeline_tiny(shared_fixtures: Path) -> Path:
    """The tiny RVC pipeline golden, read by the model tests (HuBERT, index) and the pipeline tests."""
    return shared_fixtures / "rvc_pipeline_tiny"


@pytest.fixture(scope="session")
def tokenizer_golden(spark_tiny: Path) -> dict[str, np.ndarray]:
    """The audio tokenizer's expected intermediates, checked by the codec tests and the prompt tests."""
    with np.load(spark_tiny / "expected" / "tokenizer_path.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One torch thread for the whole run, and the previous count back at its end.

    The goldens were made single-threaded (more threads change float summation order), and the CI
    box's cores are shared with tritonserver and the RVC workers. Worker processes (spawn) and
    tritonserver are not affected: each sets its own count.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole stack (tritonserver, RVC workers, API) for one test module alone.

    For destructive tests (Triton stopped, workers killed): they break only their own stack,
    never the one a whole package of tests shares. ``running_stack`` also stops a Triton that a
    test restarted.
    """
    from tests.stack import running_stack

    with running_stack(tmp_path_factory.mktemp("own_stack")) as running:
        yield running
