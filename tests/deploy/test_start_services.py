"""scripts/start_services.sh, the container's entry point, run directly: failures exit non-zero, SIGTERM is clean."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port

SCRIPT = REPO_ROOT / "scripts" / "start_services.sh"


@pytest.fixture
def service_env(asset_dirs: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(asset_dirs)
    env.update(PYTHON=sys.executable, API_PORT=str(free_port()), TRITON_GRPC_PORT=str(free_port()),
               TRITON_HTTP_PORT=str(free_port()), TRITON_METRICS_PORT=str(free_port()), RVC_WORKERS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_ENDPOINT="http://127.0.0.1:9")
    return env


def run_script(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_script_is_executable_bash() -> None:
    assert SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_missing_interpreter_fails_with_a_message(service_env: dict[str, str], tmp_path: Path) -> None:
    service_env["PYTHON"] = str(tmp_path / "no-such-python")
    result = run_script(service_env, cwd=tmp_path)
    assert result.returncode == 1 and "no Python interpreter" in result.stderr


def test_wrong_python_version_is_refused(service_env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\ncase \"$1\" in -V) echo 'Python 3.10.12';; esac\nexit 1\n")
    fake.chmod(0o755)
    service_env["PYTHON"] = str(fake)
    result = run_script(service_env, cwd=tmp_path)
    assert result.returncode == 1 and "needs Python 3.11" in result.stderr and "3.10.12" in result.stderr


def test_invalid_setting_stops_startup_with_a_non_zero_code(service_env: dict[str, str], tmp_path: Path) -> None:
    service_env["RVC_WORKERS"] = "0"
    result = run_script(service_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "RVC_WORKERS" in result.stderr


@pytest.fixture
def started(service_env: dict[str, str], tmp_path: Path, demo_assets: None) -> Iterator[subprocess.Popen[str]]:
    """The whole service (tritonserver + API on demo assets) started through the script."""
    process = subprocess.Popen(["bash", str(SCRIPT), "--no-download"], env=service_env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def read_until_serving(process: subprocess.Popen[str], deadline_s: float = 400) -> str:
    """Collect output until the API serves; fail with the log if the service exits first."""
    assert process.stdout is not None
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before serving:\n{''.join(seen)}")
        seen.append(line)
        if "Application startup complete" in line:
            return "".join(seen)
    pytest.fail("not serving in time:\n" + "".join(seen))


def test_sigterm_stops_api_and_tritonserver_cleanly(started: subprocess.Popen[str],
                                                     service_env: dict[str, str]) -> None:
    log = read_until_serving(started)
    assert "start_services: tritonserver:" in log
    triton_pid = int(re.search(r"tritonserver ready on \S+ \(pid (\d+)\)", log).group(1))
    health = httpx.get(f"http://127.0.0.1:{service_env['API_PORT']}/health", timeout=30).json()
    assert health["tts_ready"] and health["rvc_ready"] and health["demo_assets"]

    started.send_signal(signal.SIGTERM)  # exec: the supervisor itself receives it
    remaining, _ = started.communicate(timeout=120)

    assert started.returncode == 0, log + remaining
    assert "signal 15 received; stopping" in remaining
    with pytest.raises(ProcessLookupError):
        os.kill(triton_pid, 0)
    assert not [p for p in Path("/dev/shm").glob(f"voice_triton_{started.pid}_*")]
