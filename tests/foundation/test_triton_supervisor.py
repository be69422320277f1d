"""TritonSupervisor and the parent-death signal, in this process, on the real binary with the echo model."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from rvc.errors import TritonStartError
from rvc.grpc.launcher import TritonServer
from rvc.grpc.supervisor import RestartPolicy, SupervisorState, TritonSupervisor, describe_exit
from tests.foundation.test_launcher import ECHO_CONFIG, ECHO_MODEL, server_config, write_model
from tests.processes import wait_for


@pytest.fixture(scope="module")
def echo_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("echo_repo")
    write_model(root, "echo", ECHO_CONFIG, ECHO_MODEL)
    return root


def test_first_restart_is_immediate_then_backoff_doubles_up_to_its_cap_and_bad_policies_are_refused() -> None:
    policy = RestartPolicy(max_restarts=5, window_s=60, backoff_s=1.0, backoff_max_s=5.0)
    assert [policy.delay_s(recent) for recent in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ValueError, match="backoff_s <= backoff_max_s"):
        RestartPolicy(backoff_s=10, backoff_max_s=5)
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(1) == "exit code 1"


def test_server_dies_with_the_thread_that_started_it(echo_repository: Path) -> None:
    server = TritonServer(server_config(echo_repository))
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()  # the thread ended: the kernel sends the server its parent-death signal
    try:
        assert server.pid is not None
        assert server.wait(60) == -signal.SIGKILL
    finally:
        server.stop()
    assert server.group_members() == []  # its stub followed it
    assert server.shared_memory_segments() == []


def test_cancelled_start_stops_the_server_at_once(echo_repository: Path) -> None:
    server = TritonServer(server_config(echo_repository))
    cancel = threading.Event()
    cancel.set()  # a stop requested while the models load
    with pytest.raises(TritonStartError, match="cancelled"):
        server.start(cancel=cancel)
    assert not server.is_running() and server.group_members() == []


def test_supervisor_restarts_a_killed_server_then_stops_it(echo_repository: Path, tmp_path: Path) -> None:
    gave_up: list[str] = []
    supervisor = TritonSupervisor(
        server_config(echo_repository, work_dir=tmp_path / "triton"),
        RestartPolicy(max_restarts=1, backoff_s=0.1),
        on_give_up=gave_up.append,
    ).start()
    try:
        first = supervisor.server
        assert first is not None and first.pid is not None and supervisor.state is SupervisorState.READY
        os.kill(first.pid, signal.SIGKILL)

        def restarted() -> bool:
            current = supervisor.server
            return supervisor.state is SupervisorState.READY and current is not None and current is not first

        wait_for(restarted, 180, "the supervisor restarted tritonserver")
        assert supervisor.restarts == 1 and first.group_members() == []
        assert (tmp_path / "triton" / "tritonserver.previous.log").is_file()  # the dead server's log is kept

        second = supervisor.server
        assert second is not None and second.pid is not None
        os.kill(second.pid, signal.SIGKILL)  # the one restart allowed is spent: the supervisor gives up
        wait_for(lambda: bool(gave_up) and supervisor.state is SupervisorState.GAVE_UP, 60, "the supervisor gave up")
        assert "died again after 1 restarts" in gave_up[0]
    finally:
        supervisor.stop()
    assert supervisor.server is None or not supervisor.server.is_running()
