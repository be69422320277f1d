"""The tritonserver launcher, proven against the real binary with a model repository written here."""

from __future__ import annotations

import json
import os
import queue
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from rvc.errors import TritonStartError
from rvc.grpc.launcher import TritonServer, TritonServerConfig, locate_tritonserver
from tests.conftest import REPO_ROOT, free_port

ECHO_CONFIG = """
name: "echo"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [
  { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "PROBE" data_type: TYPE_STRING dims: [ 1 ] }
]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

# Imports transformers on purpose: with the wrong libpython the stub fails exactly there (docs/triton_runtime.md).
ECHO_MODEL = """
import json, os, sys
import numpy as np
import transformers
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.probe = json.dumps({"prefix": sys.prefix, "version": list(sys.version_info[:3]),
                                 "cwd": os.getcwd(), "omp": os.environ.get("OMP_NUM_THREADS"),
                                 "transformers": transformers.__version__})

    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT", data.astype(np.float32)),
                pb_utils.Tensor("PROBE", np.array([self.probe.encode()], dtype=np.object_)),
            ]))
        return responses
"""

STREAM_CONFIG = """
name: "slow_stream"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "CHUNK" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

STREAM_MODEL = """
import threading, time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def _stream(self, request):
        sender = request.get_response_sender()
        n = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
        for i in range(n):
            time.sleep(0.05)
            flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if i == n - 1 else 0
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("CHUNK", np.full(4, i, np.float32))]), flags=flags)

    def execute(self, requests):
        for request in requests:
            threading.Thread(target=self._stream, args=(request,), daemon=True).start()
        return None
"""

BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("deliberately broken model: initialize failed")
"""


def write_model(repository: Path, name: str, config: str, model: str) -> None:
    folder = repository / name / "1"
    folder.mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(textwrap.dedent(config))
    (folder / "model.py").write_text(textwrap.dedent(model))


def server_config(repository: Path, **overrides: object) -> TritonServerConfig:
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
    return TritonServerConfig(model_repository=repository, **{**ports, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model_repo")
    write_model(root, "echo", ECHO_CONFIG, ECHO_MODEL)
    write_model(root, "slow_stream", STREAM_CONFIG, STREAM_MODEL)
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[TritonServer]:
    # Started from the repo root on purpose: the cwd that breaks an unguarded stub.
    os.chdir(REPO_ROOT)
    with TritonServer(server_config(repository)) as running:
        yield running


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket LISTENing on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_locates_the_bundled_binary_and_the_stub_for_this_python() -> None:
    installation = locate_tritonserver()
    assert installation.binary.is_file() and os.access(installation.binary, os.X_OK)
    if installation.bundled:
        assert installation.stub is not None
        assert f"{sys.version_info.major}.{sys.version_info.minor}" in str(installation.stub)


def test_infer_round_trip_through_the_real_server(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    data = np.linspace(-1, 1, 1000, dtype=np.float32)
    tensor = grpcclient.InferInput("INPUT", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    result = client.infer("echo", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT"), data)
    client.close()


def test_stub_runs_in_this_venv_with_this_libpython_and_a_neutral_cwd(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput("INPUT", [1], "FP32")
    tensor.set_data_from_numpy(np.zeros(1, np.float32))
    probe = json.loads(client.infer("echo", [tensor]).as_numpy("PROBE")[0])
    client.close()
    assert probe["prefix"] == sys.prefix
    assert probe["version"] == list(sys.version_info[:3])  # not the system's libpython
    assert probe["transformers"]  # imported inside the stub: the libpython trap did not fire
    assert Path(probe["cwd"]).resolve() != REPO_ROOT
    assert not (Path(probe["cwd"]) / "triton").exists()
    assert probe["omp"] == "1"


def test_binds_loopback_only(server: TritonServer) -> None:
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
    for port in (server.config.grpc_port, server.config.http_port, server.config.metrics_port):
        addresses = listening_addresses(port)
        assert addresses and addresses <= loopback, (port, addresses)


def test_decoupled_stream_ends_with_final_flag(server: TritonServer) -> None:
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    count = grpcclient.InferInput("N", [1], "INT32")
    count.set_data_from_numpy(np.array([3], np.int32))
    client.async_stream_infer("slow_stream", [count], request_id="s1")
    chunks = []
    while True:
        result, error = results.get(timeout=30)
        assert error is None
        chunks.append(result.as_numpy("CHUNK")[0])
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    client.stop_stream()
    client.close()
    assert chunks == [0.0, 1.0, 2.0]


def test_stop_terminates_gracefully_and_leaves_nothing_behind(repository: Path) -> None:
    server = TritonServer(server_config(repository))
    with server:
        members = server.group_members()
        assert len(members) >= 3  # the server and one stub per model
        assert server.shared_memory_segments()  # the stubs' regions, under this server's prefix
    assert server.stop() == 0  # SIGTERM was enough
    assert server.group_members() == []
    assert server.shared_memory_segments() == []
    for pid in members:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_open_stream_forces_sigkill_within_the_timeout(repository: Path) -> None:
    server = TritonServer(server_config(repository, stop_timeout_s=3.0))
    server.start()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: None)  # never half-closed: blocks SIGTERM
    count = grpcclient.InferInput("N", [1], "INT32")
    count.set_data_from_numpy(np.array([1], np.int32))
    client.async_stream_infer("slow_stream", [count])
    time.sleep(0.5)
    started = time.monotonic()
    server.stop()
    elapsed = time.monotonic() - started
    try:
        client.stop_stream(cancel_requests=True)
    finally:
        client.close()
    assert elapsed < 3.0 + 8.0
    assert server.group_members() == []
    assert server.shared_memory_segments() == []
    assert not server.is_running()
    # its temp work dir keeps the log, not the copy of the python backend
    assert "tritonserver" in server.log_text() and not (server.log_path.parent / "backends").exists()


def test_early_exit_is_reported_with_the_server_log(tmp_path: Path) -> None:
    write_model(tmp_path, "broken", ECHO_CONFIG.replace('"echo"', '"broken"'), BROKEN_MODEL)
    server = TritonServer(server_config(tmp_path, startup_timeout_s=120))
    started = time.monotonic()
    with pytest.raises(TritonStartError) as caught:
        server.start()
    assert time.monotonic() - started < 60  # noticed the exit; did not wait for the timeout
    assert "deliberately broken model" in str(caught.value)
    assert server.group_members() == []
    assert server.shared_memory_segments() == []


def test_missing_repository_is_a_config_error(tmp_path: Path) -> None:
    from rvc.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        TritonServer(server_config(tmp_path / "nowhere")).start()


def test_config_rejects_clashing_ports(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must differ"):
        TritonServerConfig(model_repository=tmp_path, grpc_port=9000, http_port=9000, metrics_port=9001)
