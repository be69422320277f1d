"""The seed's test CLIs, run against the local stack: every check passes, and the CLI exits 0."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import test_pipeline, test_rvc, test_tts
from tests.conftest import REPO_ROOT, free_port
from tests.seed_cli import run_checks, synthetic_reference
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
    completed = subprocess.run(
        [sys.executable, "-m", "tests.test_connection", "--host", "127.0.0.1", "--port", str(free_port()),
         "--grpc-port", str(free_port()), "--timeout", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1
    assert "FAIL" in completed.stdout


@pytest.mark.parametrize(
    ("main", "clip_option", "title"),
    [(test_rvc.main, "--input", "RVC at http://127.0.0.1:"), (test_pipeline.main, "--reference", "TTS+RVC pipeline at http://127.0.0.1:"),
     (test_tts.main, "--reference", "Spark-TTS on Triton at 127.0.0.1:")],
)
def test_clip_clis_read_the_given_clip_and_exit_non_zero_when_the_service_is_absent(
    main: Callable[[list[str]], int], clip_option: str, title: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(synthetic_reference())
    port = str(free_port())
    assert main(["--host", "127.0.0.1", "--port", port, "--timeout", "2", clip_option, str(clip)]) == 1
    assert f"{title}{port}" in capsys.readouterr().out
