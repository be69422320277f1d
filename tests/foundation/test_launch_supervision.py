"""``python -m rvc.launch`` as a supervisor, run for real in a subprocess on demo assets and free ports.

A tritonserver killed under it is restarted while the API keeps answering;
one that keeps dying ends the launcher with a non-zero code and a message;
and the launcher killed with SIGKILL leaves no process behind and frees
every port. Recovery times are printed (``-s`` shows them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.processes import (
    ProcessRecord,
    descendants,
    listening,
    port_bindable,
    still_alive,
    wait_for,
)
from tests.stack import write_demo_assets

START_DEADLINE_S = 300.0  # Triton's four python stubs import torch: slow on two shared cores


@pytest.fixture(scope="module")
def demo_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_demo_assets(tmp_path_factory.mktemp("launch_assets"))


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    log_path: Path
    repository: Path
    api_port: int
    triton_ports: tuple[int, int, int]  # http, grpc, metrics
    seen: list[ProcessRecord] = field(default_factory=list)  # every process found under it: teardown's list

    def tree(self) -> list[ProcessRecord]:
        """The processes under the launcher now (remembered, so that teardown can kill any it left)."""
        records = descendants(self.process.pid)
        self.seen.extend(records)
        return records

    @property
    def triton_http(self) -> str:
        return f"http://127.0.0.1:{self.triton_ports[0]}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def triton(self) -> ProcessRecord:
        """The tritonserver the launcher runs now (exactly one)."""
        servers = [record for record in self.tree() if "bin/tritonserver" in record.command]
        assert len(servers) == 1, f"expected one tritonserver under the launcher, found {servers}"
        return servers[0]

    def triton_ready(self) -> bool:
        try:
            return httpx.get(f"{self.triton_http}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def gateway_health(self) -> dict[str, object] | None:
        try:
            body: dict[str, object] = httpx.get(f"{self.api}/health", timeout=5).json()
        except httpx.HTTPError:
            return None
        return body

    def gateway_ready(self) -> bool:
        health = self.gateway_health()
        return health is not None and health.get("tts_ready") is True and health.get("rvc_ready") is True

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the launcher exited with {self.process.returncode}:\n{self.log()[-6000:]}")
            ready = self.triton_ready() and self.gateway_ready()
            self.tree()
            return ready

        wait_for(ready, START_DEADLINE_S, "the launcher's Triton and API ready", poll_s=0.5)


@pytest.fixture
def launcher_factory(demo_assets: dict[str, Path], tmp_path: Path) -> Iterator[Callable[..., Launcher]]:
    started: list[Launcher] = []

    def start(**environment: str) -> Launcher:
        ports = (free_port(), free_port(), free_port())
        api_port = free_port()
        repository = tmp_path / "model_repo"
        env = {
            key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "TRITON_HOST", "PYTHONPATH")
        }
        env.update({
            "SPARK_MODEL_DIR": str(demo_assets["spark"]),
            "WEIGHTS_DIR": str(demo_assets["weights"]),
            "ASSETS_DIR": str(demo_assets["assets"]),
            "TRITON_MODEL_REPO": str(repository),
            "STATE_DIR": str(tmp_path / "state"),
            "VOICES_DIR": str(tmp_path / "voices"),
            "RUN_DIR": str(tmp_path / "run"),
            "API_PORT": str(api_port),
            "TRITON_HTTP_PORT": str(ports[0]),
            "TRITON_GRPC_PORT": str(ports[1]),
            "TRITON_METRICS_PORT": str(ports[2]),
            "RVC_WORKERS": "1",
            "DEVICE": "cpu",
            "TRITON_RESTART_BACKOFF_S": "0.5",
            **environment,
        })
        log_path = tmp_path / f"launcher{len(started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "rvc.launch", "--no-download"],
                cwd=tmp_path,  # never the repository root: its triton/ folder shadows packages
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        launcher = Launcher(process, log_path, repository, api_port, ports)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        launcher.tree()
        if launcher.process.poll() is None:
            launcher.process.send_signal(signal.SIGTERM)
            try:
                launcher.process.wait(60)
            except subprocess.TimeoutExpired:
                launcher.process.kill()
                launcher.process.wait()
        for record in still_alive(launcher.seen):
            os.kill(record.pid, signal.SIGKILL)


def test_triton_killed_is_restarted_and_the_launcher_killed_leaves_nothing(launcher_factory: Callable[..., Launcher]) -> None:
    launcher = launcher_factory()
    launcher.wait_ready()
    first = launcher.triton()
    first_stubs = [record for record in launcher.tree() if record.parent == first.pid]
    assert any("triton_python_backend_stub" in record.command for record in first_stubs)

    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    answered_while_down: list[dict[str, object]] = []

    def triton_back() -> bool:
        assert launcher.process.poll() is None, f"the launcher exited:\n{launcher.log()[-6000:]}"
        if not launcher.triton_ready():
            health = launcher.gateway_health()
            if health is not None:
                answered_while_down.append(health)
            return False
        return launcher.triton().pid != first.pid

    triton_s = wait_for(triton_back, START_DEADLINE_S, "tritonserver restarted and ready", poll_s=0.2)
    gateway_s = wait_for(launcher.gateway_ready, 120, "the gateway's /health tts_ready again", poll_s=0.2)
    print(f"\nrecovery after kill -9 of tritonserver: Triton ready in {triton_s:.1f} s, the gateway's /health "
          f"tts_ready {triton_s + gateway_s:.1f} s after the kill")
    assert time.monotonic() - killed_at < START_DEADLINE_S

    assert answered_while_down, "the API did not answer /health while Triton was down"
    assert still_alive(first_stubs) == []  # the dead server's stubs went with it
    log = launcher.log()
    assert "died: killed by SIGKILL" in log and "the last lines of its log" in log
    assert "restarting tritonserver now (restart 1 of at most 5" in log  # one death: no backoff
    assert "tritonserver ready again" in log

    # The same launcher, now running its second tritonserver, is killed itself (one start fewer for the
    # suite; SIGTERM is tested with the container's entry point in tests/deploy/test_start_services.py).
    assert_kill_9_leaves_nothing(launcher)


def test_triton_that_keeps_dying_ends_the_launcher_with_a_message(launcher_factory: Callable[..., Launcher]) -> None:
    launcher = launcher_factory(TRITON_RESTARTS="2", TRITON_RESTART_BACKOFF_S="0.2")
    launcher.wait_ready()
    # Broken after the first start: every restart now fails to parse the models' configurations. All of
    # them, so that a failed start loads no model first (each python stub takes seconds to import torch).
    for config in launcher.repository.glob("*/config.pbtxt"):
        config.write_text("this is { not a model configuration\n")
    tree = launcher.tree()
    os.kill(launcher.triton().pid, signal.SIGKILL)
    killed_at = time.monotonic()

    code = launcher.process.wait(START_DEADLINE_S)
    print(f"\nlauncher gave up {time.monotonic() - killed_at:.1f} s after the kill (2 restarts allowed)")
    log = launcher.log()
    assert code == 1, log[-6000:]
    assert "tritonserver restart 1 failed" in log and "tritonserver restart 2 failed" in log
    assert "error: tritonserver died again after 2 restarts within 600 s" in log
    assert "vocoder" in log  # the failed starts' Triton log names the broken model
    wait_for(lambda: still_alive(tree) == [], 30, "every process the launcher started gone after it gave up")


def assert_kill_9_leaves_nothing(launcher: Launcher) -> None:
    """kill -9 of the launcher (a supervisor's timeout, the OOM killer): nothing it started outlives it."""
    tree = launcher.tree()
    commands = " ".join(record.command for record in tree)
    assert "bin/tritonserver" in commands and "triton_python_backend_stub" in commands
    assert "multiprocessing" in commands  # the RVC worker(s)
    ports = (launcher.api_port, *launcher.triton_ports)

    launcher.process.kill()
    launcher.process.wait()
    gone_s = wait_for(lambda: still_alive(tree) == [], 30, "every process the launcher started gone after kill -9")
    free_s = wait_for(lambda: not any(listening(port) for port in ports), 30, "no listener left on the ports")
    assert all(port_bindable(port) for port in ports)
    print(f"\nafter kill -9 of the launcher: {len(tree)} processes gone in {gone_s:.1f} s, ports free "
          f"{gone_s + free_s:.1f} s after")
