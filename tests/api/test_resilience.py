"""Failures of the parts behind the gateway: clean errors, and service back when the part is.

These tests stop Triton and kill workers, so they run on a stack of their own (``own_stack``),
never on the one the rest of tests/api shares.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from rvc.grpc.launcher import TritonServer
from tests.api.conftest import espeak_wav, wav_bytes
from tests.stack import Stack


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample's values whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(rf"{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if match and all(f'{key}="{value}"' in (match.group(1) or "") for key, value in labels.items()):
            total += float(match.group(2))
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_triton_down_gives_503_and_service_returns_with_it(own_stack: Stack, reference_wav: bytes) -> None:
    files = {"reference_audio": ("ref.wav", reference_wav, "audio/wav")}
    own_stack.triton.stop()
    try:
        health = httpx.get(f"{own_stack.base_url}/health", timeout=30).json()
        assert health["tts_ready"] is False and health["status"] == "degraded"
        response = httpx.post(f"{own_stack.base_url}/synthesize", data={"text": "Hello."}, files=files, timeout=60)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "tts_backend_error"
        still = httpx.post(f"{own_stack.base_url}/rvc", files={"audio": ("a.wav", reference_wav, "audio/wav")}, timeout=120)
        assert still.status_code == 200  # RVC does not need Triton
    finally:
        own_stack.triton = TritonServer(own_stack.triton.config).start()
    deadline = time.monotonic() + 60
    while httpx.get(f"{own_stack.base_url}/health", timeout=30).json()["status"] != "ready":
        assert time.monotonic() < deadline, "the gateway did not see Triton come back"
        time.sleep(0.5)
    again = httpx.post(f"{own_stack.base_url}/synthesize", data={"text": "Hello."}, files=files, timeout=300)
    assert again.status_code == 200, again.text


def test_worker_killed_mid_request_fails_cleanly_and_the_next_succeeds(own_stack: Stack) -> None:
    long_speech = espeak_wav(" ".join(["This sentence keeps the worker busy for a while."] * 6))
    outcome: dict[str, httpx.Response] = {}

    def convert() -> None:
        outcome["response"] = httpx.post(
            f"{own_stack.base_url}/rvc", files={"audio": ("long.wav", long_speech, "audio/wav")},
            data={"f0_method": "harvest"}, timeout=300,
        )

    worker = threading.Thread(target=convert)
    worker.start()
    busy_pid = None
    deadline = time.monotonic() + 60
    while busy_pid is None and time.monotonic() < deadline:
        workers = httpx.get(f"{own_stack.base_url}/status").json()["rvc"]["workers"]
        busy_pid = next((w["pid"] for w in workers if w["state"] == "busy" and w["pid"]), None)
        time.sleep(0.05)
    assert busy_pid is not None, "no worker became busy"
    os.kill(busy_pid, signal.SIGKILL)
    worker.join(120)
    response = outcome["response"]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "worker_crashed"
    short = wav_bytes((0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 140)).astype(np.float32), 16000)
    following = httpx.post(f"{own_stack.base_url}/rvc", files={"audio": ("s.wav", short, "audio/wav")}, timeout=300)
    assert following.status_code == 200, following.text
    deadline = time.monotonic() + 120
    while httpx.get(f"{own_stack.base_url}/status").json()["rvc"]["workers_crashed"] < 1 or sum(
        1 for w in httpx.get(f"{own_stack.base_url}/status").json()["rvc"]["workers"] if w["state"] in ("idle", "busy")
    ) < 2:
        assert time.monotonic() < deadline, "the pool did not heal back to 2 workers"
        time.sleep(0.5)


def test_client_that_disconnects_mid_stream_cancels_its_work(own_stack: Stack, reference_wav: bytes) -> None:
    sentences = " ".join(f"Sentence number {index} of a long story." for index in range(8))
    triton_metrics = own_stack.triton.metrics_url
    before_tts = metric(httpx.get(triton_metrics).text, "nv_inference_request_success", model="spark_tts")
    before_cancelled = metric(httpx.get(f"{own_stack.base_url}/metrics").text, "voice_api_cancelled_total")
    with httpx.stream(
        "POST", f"{own_stack.base_url}/synthesize/stream", data={"text": sentences},
        files={"reference_audio": ("ref.wav", reference_wav, "audio/wav")}, timeout=300,
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())
        assert first
    # Wait for the request to be over everywhere: the gateway counted it cancelled and serves nothing,
    # no RVC job is queued or running, and no spark_tts request waits in Triton's queue. Had the
    # cancellation not reached the pipeline, its sentences would keep one of these busy.
    deadline = time.monotonic() + 120
    while True:
        gateway = httpx.get(f"{own_stack.base_url}/metrics").text
        after_cancelled = metric(gateway, "voice_api_cancelled_total")
        rvc = httpx.get(f"{own_stack.base_url}/status").json()["rvc"]
        triton_text = httpx.get(triton_metrics).text
        settled = (
            after_cancelled == before_cancelled + 1
            and metric(gateway, "voice_api_requests_in_flight") == 0
            and rvc["queue_depth"] == 0 and rvc["running"] == 0
            and metric(triton_text, "nv_inference_pending_request_count", model="spark_tts") == 0
        )
        if settled:
            break
        assert time.monotonic() < deadline, f"the cancelled request never settled: {after_cancelled=}, {rvc=}"
        time.sleep(0.2)  # polling interval
    after_tts = metric(triton_text, "nv_inference_request_success", model="spark_tts")
    assert after_tts - before_tts < 8  # the remaining sentences were never sent to Triton


@pytest.mark.slow
def test_soak_of_mixed_requests_keeps_memory_flat(own_stack: Stack, reference_wav: bytes) -> None:
    speech = espeak_wav("A short clip to convert.")
    files = {"reference_audio": ("ref.wav", reference_wav, "audio/wav")}

    def one(index: int) -> None:
        kind = index % 4
        if kind == 0:
            response = httpx.post(f"{own_stack.base_url}/tts", data={"text": "Hi."}, files=files, timeout=300)
        elif kind == 1:
            response = httpx.post(f"{own_stack.base_url}/rvc", files={"audio": ("a.wav", speech, "audio/wav")}, timeout=300)
        elif kind == 2:
            response = httpx.post(f"{own_stack.base_url}/synthesize", data={"text": "Hi."}, files=files, timeout=300)
        else:
            response = httpx.post(f"{own_stack.base_url}/synthesize", data={"text": "", "pitch_shift": "99"}, files=files)
        assert response.status_code in (200, 400), response.text

    def footprint() -> dict[str, float]:
        workers = [w["pid"] for w in httpx.get(f"{own_stack.base_url}/status").json()["rvc"]["workers"] if w["pid"]]
        return {
            "gateway": rss_mb(os.getpid()),
            "workers": sum(rss_mb(pid) for pid in workers),
            "tritonserver": sum(rss_mb(pid) for pid in own_stack.triton.group_members()),
        }

    # Four requests at a time, as a loaded service sees them (and twice as fast on two cores as one at a
    # time). Warm-up covers every request kind many times over; Triton may have been restarted by a test above.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(100)))
        warm = footprint()
        list(pool.map(one, range(200)))
        after = footprint()
    print("\nresident MB after warm-up -> after 200 requests:")
    for name in warm:
        print(f"  {name:12s} {warm[name]:8.1f} -> {after[name]:8.1f} ({(after[name] / warm[name] - 1) * 100:+.1f}%)")
    for name in warm:
        assert after[name] < warm[name] * 1.05, (name, warm[name], after[name])
