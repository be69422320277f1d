"""The service as a fleet, on real parts: PostgreSQL, one tritonserver, two gateways, nginx in front.

In order (each test leaves the fleet as the next one expects): shared state
across gateways; 16 concurrent requests through nginx, each equal to its own
sequential run, and the throughput of two gateways against one; PostgreSQL
stopped and back; tritonserver killed mid-load and restarted, the gateways
recovering without a restart (the time is measured); one gateway killed
mid-load. Measurements are printed (``pytest -s``) as ``fleet:`` lines.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fleet.fleet import TIMEOUT, Fleet, Gateway, clip_wav, running_fleet, synthesize, wait_until

pytestmark = pytest.mark.slow  # about 12 minutes on the shared 2-core box: two Triton starts dominate

SHARED = "shared"
REQUESTS = 16


def report(name: str, value: object) -> None:
    print(f"fleet: {name} = {value}", flush=True)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("fleet")) as running:
        yield running


def texts(count: int) -> list[tuple[str, int]]:
    return [(f"Request number {index} is spoken here.", 100 + index) for index in range(count)]


def run_all(base_urls: list[str], work: list[tuple[str, int]], *, clip: bytes | None = None,
            voice: str | None = SHARED, workers: int = REQUESTS) -> tuple[list[httpx.Response | Exception], float]:
    """Every request at once (``workers`` at a time), round-robin over ``base_urls``; results and seconds."""
    def one(index: int) -> httpx.Response | Exception:
        text, seed = work[index]
        try:
            return synthesize(base_urls[index % len(base_urls)], text, seed, voice=voice, clip=clip)
        except httpx.HTTPError as exc:
            return exc

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(len(work))))
    return results, time.monotonic() - start


def test_a_voice_saved_through_one_gateway_is_used_through_the_other(fleet: Fleet) -> None:
    first, second = fleet.gateways
    saved = httpx.post(f"{first.url}/voices", data={"name": SHARED, "description": "fleet"},
                       files={"reference_audio": ("shared.wav", clip_wav(seed=7), "audio/wav")}, timeout=TIMEOUT)
    assert saved.status_code == 201, saved.text
    assert SHARED in [voice["name"] for voice in httpx.get(f"{second.url}/voices", timeout=30).json()["voices"]]
    through_second = synthesize(second.url, "The shared voice speaks.", 5, voice=SHARED)
    through_first = synthesize(first.url, "The shared voice speaks.", 5, voice=SHARED)
    assert through_second.status_code == through_first.status_code == 200, through_second.text
    assert through_second.content == through_first.content  # the same clip, read from the one database


def test_concurrent_requests_through_nginx_each_match_their_sequential_run(fleet: Fleet) -> None:
    work = texts(REQUESTS)
    start = time.monotonic()
    sequential = [synthesize(fleet.nginx_url, text, seed, voice=SHARED) for text, seed in work]
    sequential_s = time.monotonic() - start
    assert all(response.status_code == 200 for response in sequential), [r.text for r in sequential][:2]

    concurrent, two_s = run_all([fleet.nginx_url], work)
    for index, (alone, together) in enumerate(zip(sequential, concurrent, strict=True)):
        assert isinstance(together, httpx.Response) and together.status_code == 200, (index, together)
        assert together.content == alone.content, f"request {index} differs from its sequential run"

    one_gateway, one_s = run_all([fleet.gateways[0].url], work)
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in one_gateway)
    report("sequential requests/s (nginx)", round(REQUESTS / sequential_s, 3))
    report("16 concurrent requests/s, two gateways (nginx)", round(REQUESTS / two_s, 3))
    report("16 concurrent requests/s, one gateway", round(REQUESTS / one_s, 3))
    report("throughput ratio two/one gateways", round(one_s / two_s, 2))


def test_postgres_stopped_gives_503_on_voice_routes_and_uploads_still_synthesise(fleet: Fleet) -> None:
    fleet.cluster.stop()
    stopped = time.monotonic()
    try:
        for gateway in fleet.gateways:
            listing = httpx.get(f"{gateway.url}/voices", timeout=60)
            assert listing.status_code == 503 and int(listing.headers["Retry-After"]) >= 1, listing.text
            assert listing.json()["error"]["code"] == "storage_unavailable"
            by_name = synthesize(gateway.url, "Saved voice, database down.", 3, voice=SHARED)
            assert by_name.status_code == 503 and "Retry-After" in by_name.headers, by_name.text
            uploaded = synthesize(gateway.url, "An uploaded clip needs no database.", 3, voice=None,
                                  clip=clip_wav(seed=3))
            assert uploaded.status_code == 200, uploaded.text
            health = gateway.health()
            assert health["status"] == "degraded" and health["storage_ready"] is False
            assert any("storage database" in problem for problem in health["problems"])
            assert httpx.get(f"{gateway.url}/health/ready", timeout=30).status_code == 503
            assert httpx.get(f"{gateway.url}/health/live", timeout=30).status_code == 200
    finally:
        fleet.cluster.start()
    restarted = time.monotonic()
    for gateway in fleet.gateways:
        recovered = wait_until(lambda g=gateway: httpx.get(f"{g.url}/voices", timeout=30).status_code == 200,
                               f"{gateway.name} reading voices again", 60.0)
        names = [voice["name"] for voice in httpx.get(f"{gateway.url}/voices", timeout=30).json()["voices"]]
        assert SHARED in names
        assert httpx.get(f"{gateway.url}/health/ready", timeout=30).status_code == 200
        report(f"{gateway.name} voices back after PostgreSQL restart (s)", round(recovered, 2))
    report("PostgreSQL down (s)", round(restarted - stopped, 1))


def _sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line.partition(":")[2].strip())


def test_triton_killed_mid_load_gives_503_then_the_gateways_recover_by_themselves(fleet: Fleet) -> None:
    first, second = fleet.gateways
    long_text = " ".join(f"Sentence number {index} of a long stream." for index in range(10))
    load = ThreadPoolExecutor(8)
    work = texts(8)
    with httpx.stream("POST", f"{first.url}/synthesize/sse", data={"text": long_text, "seed": "1", "voice": SHARED},
                      timeout=TIMEOUT) as stream:
        assert stream.status_code == 200
        events = _sse_events(stream)
        assert next(events)[0] == "start"
        assert next(events)[0] == "chunk"  # the stream is open and mid-way
        in_flight = [load.submit(synthesize, fleet.nginx_url, text, seed, voice=SHARED) for text, seed in work]
        wait_until(lambda: first.in_flight() + second.in_flight() >= 3, "requests in flight", 30.0, 0.05)
        fleet.kill_triton()
        killed = time.monotonic()
        rest = list(events)
    assert rest and rest[-1][0] == "error", rest[-3:]
    assert rest[-1][1]["error"]["status"] == 503
    outcomes = [future.result() for future in in_flight]
    load.shutdown()
    for response in outcomes:
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
    report("requests in flight at the Triton kill: ok / 503", (
        sum(r.status_code == 200 for r in outcomes), sum(r.status_code == 503 for r in outcomes)))

    for gateway in fleet.gateways:
        wait_until(lambda g=gateway: not g.health()["tts_ready"], f"{gateway.name} seeing Triton down", 30.0)
        health = gateway.health()
        assert health["status"] == "degraded" and any("Triton" in problem for problem in health["problems"])
        assert httpx.get(f"{gateway.url}/health/ready", timeout=30).status_code == 200  # still serves /rvc
        down = synthesize(gateway.url, "Triton is down.", 1, voice=SHARED)
        assert down.status_code == 503 and int(down.headers["Retry-After"]) >= 1, down.text
        converted = httpx.post(f"{gateway.url}/rvc", data={"seed": "1"},
                               files={"audio": ("speech.wav", clip_wav(seed=4), "audio/wav")}, timeout=TIMEOUT)
        assert converted.status_code == 200, converted.text
        assert httpx.get(f"{gateway.url}/voices", timeout=30).status_code == 200

    restart = time.monotonic()
    fleet.restart_triton()
    triton_ready = time.monotonic()

    def back(gateway: Gateway) -> tuple[float, float]:
        """Seconds from Triton's ready to this gateway reporting it ready, and to its first synthesis."""
        wait_until(lambda: gateway.health()["tts_ready"], f"{gateway.name} seeing Triton back", 60.0, 0.1)
        reconnected = time.monotonic() - triton_ready
        wait_until(lambda: synthesize(gateway.url, "Back again.", 2, voice=SHARED).status_code == 200,
                   f"{gateway.name} synthesising again", 120.0, 0.1)
        return reconnected, time.monotonic() - triton_ready

    with ThreadPoolExecutor(2) as pool:
        recovered = list(pool.map(back, fleet.gateways))
    for gateway in fleet.gateways:
        assert gateway.health()["status"] == "ready"
    reconnect_s = max(reconnected for reconnected, _ in recovered)
    serving_s = max(serving for _, serving in recovered)
    report("Triton down, kill to restart command (s)", round(restart - killed, 1))
    report("tritonserver restart to ready (s)", round(triton_ready - restart, 1))
    report("Triton ready to both gateways' /health ready, no gateway restart (s)", round(reconnect_s, 2))
    report("Triton ready to both gateways' first synthesis 200 (s)", round(serving_s, 2))
    assert reconnect_s < 15.0


def test_all_rvc_workers_lost_gives_503_until_the_supervisor_has_respawned(fleet: Fleet) -> None:
    gateway = fleet.gateways[0]  # one RVC worker per gateway: killing it loses them all
    workers = httpx.get(f"{gateway.url}/status", timeout=30).json()["rvc"]["workers"]
    pids = [worker["pid"] for worker in workers if worker["pid"]]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    speech = clip_wav(seed=4)
    seen: list[httpx.Response] = []

    def answered() -> bool:
        response = httpx.post(f"{gateway.url}/rvc", files={"audio": ("s.wav", speech, "audio/wav")},
                              timeout=TIMEOUT)
        seen.append(response)
        return response.status_code in (200, 503)

    wait_until(answered, "an answer after the workers were killed", 30.0, 0.05)
    if seen[-1].status_code == 200:  # a race the test cannot order: on an idle box a worker is back in ~1 s
        pytest.skip("the supervisor had respawned a worker before any request found none alive")
    assert int(seen[-1].headers["Retry-After"]) >= 1
    assert seen[-1].json()["error"]["code"] in ("model_unavailable", "worker_crashed"), seen[-1].text
    assert httpx.get(f"{gateway.url}/health/ready", timeout=30).status_code == 503
    assert not gateway.health()["rvc_ready"]
    recovered = wait_until(
        lambda: httpx.post(f"{gateway.url}/rvc", files={"audio": ("s.wav", speech, "audio/wav")},
                           timeout=TIMEOUT).status_code == 200,
        "RVC back after the respawn", 180.0, 0.5,
    )
    assert httpx.get(f"{gateway.url}/health/ready", timeout=30).status_code == 200
    report("RVC workers killed to /rvc serving again (s)", round(recovered, 1))


def test_one_gateway_killed_mid_load_loses_only_its_in_flight_requests(fleet: Fleet) -> None:
    first, second = fleet.gateways
    work = texts(REQUESTS)
    with ThreadPoolExecutor(8) as load:
        futures = [load.submit(synthesize, fleet.nginx_url, text, seed, voice=SHARED) for text, seed in work]
        wait_until(lambda: second.in_flight() >= 1, "gateway-2 busy", 60.0, 0.02)
        on_second = second.in_flight()
        second.kill()
        outcomes: list[httpx.Response | Exception] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except httpx.HTTPError as exc:
                outcomes.append(exc)
    failed = [o for o in outcomes if not (isinstance(o, httpx.Response) and o.status_code == 200)]
    for outcome in failed:  # nginx answers for the dead gateway: a clean 502, never a hang
        assert isinstance(outcome, httpx.Response) and outcome.status_code in (502, 503, 504), outcome
    report("gateway kill: in flight on it / lost / of", (on_second, len(failed), len(outcomes)))
    assert len(failed) <= on_second + 1  # +1: one may have been forwarded between the gauge read and the kill

    after = [synthesize(fleet.nginx_url, text, seed, voice=SHARED) for text, seed in texts(4)]
    assert all(response.status_code == 200 for response in after), [r.text for r in after]
    names = [voice["name"] for voice in httpx.get(f"{fleet.nginx_url}/voices", timeout=30).json()["voices"]]
    assert SHARED in names and first.health()["storage_ready"]
