"""The seed's test CLIs, run against the local stack: every check passes, and the CLI exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.seed_cli import run_checks
from tests.stack import Stack
from tests.test_connection import connection_checks
from tests.test_http_api import api_checks
from tests.test_pipeline import pipeline_checks
from tests.test_rvc import rvc_checks
from tests.test_tts import tts_checks


def assert_all_pass(checks: list) -> None:
    failures = [(result.name, result.detail) for result in run_checks(checks) if not result.passed]
    assert not failures, failures


def test_http_api_checks(stack: Stack) -> None:
    assert_all_pass(api_checks(stack.base_url, 120))


def test_pipeline_and_rvc_checks(stack: Stack, reference_wav: bytes) -> None:
    assert_all_pass(pipeline_checks(stack.base_url, reference_wav, 300) + rvc_checks(stack.base_url, reference_wav, 300))


def test_tts_checks_over_grpc(stack: Stack, reference_wav: bytes) -> None:
    assert_all_pass(tts_checks(stack.settings.triton_grpc_url, reference_wav, 300))


def test_connection_checks(stack: Stack) -> None:
    assert_all_pass(connection_checks("127.0.0.1", stack.settings.api_port, stack.settings.triton_grpc_port, 30))


@pytest.mark.parametrize(
    ("module", "arguments"),
    [("tests.test_http_api", []), ("tests.test_connection", ["--grpc-port", "{grpc}"])],
)
def test_cli_runs_from_the_repo_root_and_exits_zero(stack: Stack, module: str, arguments: list[str]) -> None:
    command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(stack.settings.api_port)]
    command += [argument.format(grpc=stack.settings.triton_grpc_port) for argument in arguments]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 failed" in completed.stdout


def test_cli_exits_non_zero_when_the_service_is_absent() -> None:
    from tests.conftest import free_port

    completed = subprocess.run(
        [sys.executable, "-m", "tests.test_connection", "--host", "127.0.0.1", "--port", str(free_port()),
         "--grpc-port", str(free_port()), "--timeout", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert "FAIL" in completed.stdout
