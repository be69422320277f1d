"""Idle unload on the real stack: Triton's models unloaded through the repository API, the RVC
workers stopped, /health ``idle``, and the next request loads everything again and succeeds,
with its wait in ``X-Model-Load-Seconds``.

A stack of its own: its tritonserver runs in explicit model-control mode (``IDLE_UNLOAD_S`` set),
and these tests take its models away.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from rvc.grpc.model_control import TritonModelControl
from tests.stack import Stack, running_stack

IDLE_S = 2.0
TIMEOUT = 300


@pytest.fixture(scope="module")
def idle_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("idle_stack"), idle_unload_s=IDLE_S, rvc_workers=1) as running:
        yield running


def triton_states(stack: Stack) -> dict[str, str]:
    async def read() -> dict[str, str]:
        control = TritonModelControl(stack.settings.triton_grpc_url)
        try:
            return await control.states()
        finally:
            await control.close()

    return asyncio.run(read())


def wait_for_status(stack: Stack, wanted: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        health = httpx.get(f"{stack.base_url}/health", timeout=30).json()
        if health["status"] == wanted:
            return health
        assert time.monotonic() < deadline, f"/health never said {wanted!r}: {health}"
        time.sleep(0.2)


def wait_for_unloaded(stack: Stack, timeout_s: float = 60.0) -> dict:
    """/status once the unload has finished (Triton's models gone, the workers stopped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = httpx.get(f"{stack.base_url}/status", timeout=30).json()
        if status["idle_unload"]["state"] == "idle":
            return status
        assert time.monotonic() < deadline, f"the unload did not finish: {status['idle_unload']}"
        time.sleep(0.2)


def speak(stack: Stack, text: str = "Hello there.") -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/v1/audio/speech",
        json={"model": "tts-1", "input": text, "voice": "default", "response_format": "wav"}, timeout=TIMEOUT,
    )


def test_idle_gateway_unloads_triton_models_and_stops_workers_and_health_says_idle(idle_stack: Stack) -> None:
    assert all(state == "READY" for state in triton_states(idle_stack).values())
    health = wait_for_status(idle_stack, "idle")
    assert health["healthy"] is True and health["tts_ready"] is False and health["rvc_ready"] is False
    assert any("IDLE_UNLOAD_S" in problem for problem in health["problems"])
    # a load balancer keeps an idle gateway: its next request is what wakes it
    assert httpx.get(f"{idle_stack.base_url}/health/ready", timeout=30).status_code == 200
    status = wait_for_unloaded(idle_stack)  # /health says idle from the unload's start
    assert status["idle_unload"]["unloads"] >= 1
    states = triton_states(idle_stack)
    assert states and not any(state == "READY" for state in states.values()), states
    assert "error" in status["rvc"]  # no pool, no worker process
    assert idle_stack.services.voice.ready() is False


def test_request_after_idle_unload_loads_models_succeeds_and_reports_its_wait(idle_stack: Stack) -> None:
    wait_for_status(idle_stack, "idle")
    response = speak(idle_stack)
    assert response.status_code == 200, response.text
    waited = float(response.headers["x-model-load-seconds"])
    assert waited > 0
    assert all(state == "READY" for state in triton_states(idle_stack).values())
    warm = speak(idle_stack)
    assert warm.status_code == 200 and "x-model-load-seconds" not in warm.headers
    status = httpx.get(f"{idle_stack.base_url}/status", timeout=30).json()
    assert status["idle_unload"]["loads"] >= 1 and status["idle_unload"]["last_load_s"] > 0


def test_health_and_status_probes_neither_wake_nor_keep_the_models(idle_stack: Stack) -> None:
    wait_for_status(idle_stack, "idle")
    for _ in range(3):
        for path in ("/health", "/health/ready", "/status", "/metrics", "/config"):
            assert httpx.get(f"{idle_stack.base_url}{path}", timeout=30).status_code == 200
    assert httpx.get(f"{idle_stack.base_url}/health", timeout=30).json()["status"] == "idle"


def test_requests_arriving_while_the_idle_timer_fires_wait_and_succeed(idle_stack: Stack) -> None:
    """Requests sent around the moment the timer fires: before, during and after the unload."""
    assert speak(idle_stack).status_code == 200  # warm, and the idle clock starts now
    outcomes: list[httpx.Response] = []
    lock = threading.Lock()

    def late_request(delay_s: float) -> None:
        time.sleep(delay_s)
        response = speak(idle_stack, "Are you awake?")
        with lock:
            outcomes.append(response)

    threads = [threading.Thread(target=late_request, args=(IDLE_S + offset,)) for offset in (-0.3, 0.2, 0.6, 1.0, 1.5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(outcomes) == len(threads)
    for response in outcomes:
        assert response.status_code == 200, response.text
    assert httpx.get(f"{idle_stack.base_url}/health", timeout=30).json()["status"] in ("ready", "idle")
