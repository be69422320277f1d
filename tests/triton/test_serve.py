"""``python -m rvc.grpc.serve`` (run.sh stage 3): serves a repository until SIGTERM, then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ECHO_CONFIG = """name: "echo"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

ECHO_MODEL = """import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", pb_utils.get_input_tensor_by_name(r, "INPUT")
                .as_numpy())]) for r in requests]
"""


def test_serve_runs_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    (tmp_path / "repo" / "echo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
    (tmp_path / "repo" / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
    http_port = free_port()
    command = [
        sys.executable, "-m", "rvc.grpc.serve", "--model-repository", str(tmp_path / "repo"),
        "--grpc-port", str(free_port()), "--http-port", str(http_port), "--metrics-port", str(free_port()),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_")}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/v2/models/echo/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        log = process.stdout.read().decode(errors="replace")
        process.stdout.close()
        assert "serving" in log and "Started GRPCInferenceService" in log  # the server log is forwarded
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            process.stdout.close()
