"""Every endpoint and header of the Voice API, on the real stack with demo assets."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import numpy as np
import soundfile as sf

from tests.api.conftest import decode, espeak_wav, parse_multipart, parse_sse
from tests.stack import Stack

TIMEOUT = 300
TEXT = "Hello there. How are you today?"


def post(stack: Stack, path: str, reference: bytes | None, **fields: object) -> httpx.Response:
    files = {"reference_audio": ("ref.wav", reference, "audio/wav")} if reference is not None else None
    data = {name: str(value) for name, value in fields.items()}
    return httpx.post(f"{stack.base_url}{path}", data=data, files=files, timeout=TIMEOUT)


def test_health_is_ready_and_says_demo_assets_plainly(stack: Stack) -> None:
    health = httpx.get(f"{stack.base_url}/health").json()
    assert health["healthy"] is True and health["status"] == "ready"
    assert health["tts_ready"] is True and health["rvc_ready"] is True
    assert health["demo_assets"] is True
    assert any("demo assets (random weights)" in problem for problem in health["problems"])


def test_status_reports_models_workers_counts_and_triton(stack: Stack) -> None:
    status = httpx.get(f"{stack.base_url}/status").json()
    assert status["status"] == "ready"
    assert status["triton"]["address"] == stack.settings.triton_grpc_url
    assert status["rvc"]["num_workers"] == 2
    assert sum(1 for worker in status["rvc"]["workers"] if worker["pid"]) == 2
    assert "SilverWolf_e300_s6600" in status["rvc"]["voices"]
    assert status["models"]["rvc_default_voice"] == "SilverWolf_e300_s6600.pth"
    assert status["uptime_s"] >= 0 and {"requests", "succeeded", "failed"} <= set(status["requests"])
    assert "demo assets (random weights)" in status["assets"]["notice"]


def test_status_and_health_say_where_each_part_runs_and_in_which_dtype(stack: Stack) -> None:
    for route in ("/status", "/health"):
        parts = {part["part"]: part for part in httpx.get(f"{stack.base_url}{route}").json()["placement"]}
        assert parts["gateway"] == {"part": "gateway", "device": "cpu", "dtype": None}  # no torch in the gateway
        triton = {name: part for name, part in parts.items() if name.startswith("triton.")}
        assert {"triton.audio_tokenizer", "triton.vocoder", "triton.spark_tts"} <= set(triton)
        workers = {name: part for name, part in parts.items() if name.startswith("rvc.worker.")}
        assert len(workers) == 2  # each worker's own word, from its Ready
        for part in (*triton.values(), *workers.values()):
            assert (part["device"], part["dtype"]) == ("cpu", "float32"), part
    workers = httpx.get(f"{stack.base_url}/status").json()["rvc"]["workers"]
    assert all((worker["device"], worker["precision"]) == ("cpu", "fp32") for worker in workers)


def test_synthesize_returns_wav_with_every_seed_header(stack: Stack, reference_wav: bytes) -> None:
    response = post(stack, "/synthesize", reference_wav, text=TEXT, seed=7)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    wav, rate = decode(response.content)
    assert rate == int(response.headers["X-Sample-Rate"]) == 40000  # the demo voice's rate
    assert abs(len(wav) / rate - float(response.headers["X-Audio-Duration"])) < 1e-3
    assert int(response.headers["X-Sentences"]) == 2
    for name in ("X-TTS-Time", "X-RVC-Time", "X-Total-Time"):
        assert float(response.headers[name]) > 0
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    assert "X-Request-ID" in response.headers


def test_skip_rvc_and_tts_return_16k_spark_audio(stack: Stack, reference_wav: bytes) -> None:
    skipped = post(stack, "/synthesize", reference_wav, text="Just the TTS voice.", skip_rvc="true", seed=3)
    tts = post(stack, "/tts", reference_wav, text="Just the TTS voice.", seed=3)
    for response in (skipped, tts):
        assert response.status_code == 200, response.text
        assert response.headers["X-Sample-Rate"] == "16000"
        assert float(response.headers["X-RVC-Time"]) == 0.0
    np.testing.assert_array_equal(decode(skipped.content)[0], decode(tts.content)[0])


def test_rvc_converts_uploaded_audio(stack: Stack) -> None:
    """With FCPE, whose real weights the workers read from the installed torchfcpe wheel."""
    speech = espeak_wav("Convert me into the target voice.")
    response = httpx.post(
        f"{stack.base_url}/rvc", files={"audio": ("in.wav", speech, "audio/wav")},
        data={"pitch_shift": "12", "f0_method": "fcpe"}, timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    wav, rate = decode(response.content)
    source, source_rate = sf.read(io.BytesIO(speech))
    assert rate == 40000
    assert abs(len(wav) / rate - len(source) / source_rate) < 0.05
    assert float(response.headers["X-RVC-Time"]) > 0


def test_rvc_profile_is_chosen_per_request_and_status_says_which_converts(stack: Stack) -> None:
    status = httpx.get(f"{stack.base_url}/status").json()
    assert status["rvc_profile"] == {"converts": "2026", "source": "RVC_PROFILE", "setting": "2026"}
    assert status["rvc"]["profile"] == "2026"
    speech = espeak_wav("Convert me with each profile.")

    def convert(**fields: str) -> np.ndarray:
        response = httpx.post(f"{stack.base_url}/rvc", files={"audio": ("in.wav", speech, "audio/wav")},
                              data={"f0_method": "pm", "seed": "5", **fields}, timeout=TIMEOUT)  # fmt: skip
        assert response.status_code == 200, response.text
        return decode(response.content)[0]

    default, new, old = convert(), convert(rvc_profile="2026"), convert(rvc_profile="2024")
    np.testing.assert_array_equal(default, new)
    assert default.shape == old.shape and not np.array_equal(default, old)


def test_stream_sends_one_wav_part_per_sentence_in_order(stack: Stack, reference_wav: bytes) -> None:
    text = "First sentence here. Second one follows! And a third?"
    response = post(stack, "/synthesize/stream", reference_wav, text=text, seed=11)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
    parts = parse_multipart(response.content, response.headers["content-type"])
    assert [headers["x-sentence-index"] for headers, _ in parts] == ["0", "1", "2"]
    for headers, payload in parts:
        assert headers["content-type"] == "audio/wav"
        assert float(headers["x-tts-time"]) > 0 and float(headers["x-rvc-time"]) > 0
        wav, rate = decode(payload)
        assert rate == 40000 and len(wav) > 0


def test_stream_parts_equal_the_whole_synthesis(stack: Stack, reference_wav: bytes) -> None:
    text = "One. Two."
    whole = post(stack, "/synthesize", reference_wav, text=text, seed=5, skip_rvc="true")
    streamed = post(stack, "/synthesize/stream", reference_wav, text=text, seed=5, skip_rvc="true")
    parts = parse_multipart(streamed.content, streamed.headers["content-type"])
    pieces = [decode(payload)[0] for _, payload in parts]
    overlap = int(16000 * 0.010) * (len(pieces) - 1)  # the 10 ms crossfades of the joined file
    assert len(decode(whole.content)[0]) == sum(len(piece) for piece in pieces) - overlap


def test_sse_sends_start_chunks_and_end(stack: Stack, reference_wav: bytes) -> None:
    response = post(stack, "/synthesize/sse", reference_wav, text="Alpha speaks. Beta answers.", seed=2)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names == ["start", "chunk", "chunk", "end"]
    start = json.loads(events[0][1])
    assert start["sentences"] == ["Alpha speaks.", "Beta answers."]
    for index, (_, data) in enumerate(events[1:3]):
        chunk = json.loads(data)
        assert chunk["index"] == index and chunk["text"] == start["sentences"][index]
        wav, rate = decode(base64.b64decode(chunk["audio"]))
        assert rate == chunk["sample_rate"] == 40000
        assert abs(len(wav) / rate - chunk["duration"]) < 1e-3
        assert chunk["tts_time"] > 0 and chunk["rvc_time"] > 0
    assert json.loads(events[-1][1])["sentences"] == 2


def test_every_synthesis_response_says_it_runs_on_demo_assets(stack: Stack, reference_wav: bytes) -> None:
    """Whole files, sentence parts and chunk parts: a client hearing noise is told why, whatever it asked for."""
    responses = [
        post(stack, "/synthesize", reference_wav, text="One.", seed=1, skip_rvc="true"),
        post(stack, "/synthesize/stream", reference_wav, text="One.", seed=1, skip_rvc="true"),
        post(stack, "/synthesize/stream", reference_wav, text="One.", seed=1, skip_rvc="true", granularity="chunk",
             format="pcm"),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["X-Demo-Assets"] == "random weights: output is noise until real assets are installed"


def test_config_defaults_and_stored_reference_round_trip(stack: Stack, reference_wav: bytes) -> None:
    base = stack.base_url
    original = httpx.get(f"{base}/config").json()
    assert original["defaults"]["f0_method"] == "rmvpe"
    updated = httpx.post(f"{base}/config", json={"pitch_shift": 5, "f0_method": "pm"}).json()
    assert updated["defaults"]["pitch_shift"] == 5 and updated["defaults"]["f0_method"] == "pm"
    assert updated["defaults"]["index_rate"] == original["defaults"]["index_rate"]
    try:
        no_reference = post(stack, "/synthesize", None, text="Hello.")
        if not original["reference_audio"]["stored"]:
            assert no_reference.status_code == 400
            assert "reference_audio" in no_reference.json()["error"]["message"]
        stored = httpx.post(
            f"{base}/config/reference-audio", files={"reference_audio": ("ref.wav", reference_wav, "audio/wav")}
        ).json()
        assert stored["reference_audio"]["stored"] is True and stored["reference_audio"]["duration_s"] > 1
        with_stored = post(stack, "/synthesize", None, text="Hello.", seed=1)
        with_upload = post(stack, "/synthesize", reference_wav, text="Hello.", seed=1)
        assert with_stored.status_code == 200, with_stored.text
        np.testing.assert_allclose(decode(with_stored.content)[0], decode(with_upload.content)[0], atol=1e-3)
        cleared = httpx.delete(f"{base}/config/reference-audio").json()
        assert cleared["reference_audio"]["stored"] is False
    finally:
        httpx.post(f"{base}/config", json={"pitch_shift": 0, "f0_method": "rmvpe"})


def test_stored_config_survives_a_new_store(stack: Stack) -> None:
    from rvc.processing.defaults_store import DefaultsStore
    from rvc.storage import open_storage

    httpx.post(f"{stack.base_url}/config", json={"protect": 0.2})
    database = open_storage(stack.settings.database_url, state_dir=stack.settings.state_dir, voices_dir=None)
    try:
        assert DefaultsStore(database).get().protect == 0.2  # what a restarted gateway reads
    finally:
        httpx.post(f"{stack.base_url}/config", json={"protect": 0.33})
        database.close()


def test_metrics_are_prometheus_text(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'voice_api_requests_total{route="/synthesize",status="200"}' in response.text
    assert "voice_api_stage_seconds_bucket" in response.text


def test_openapi_documents_every_route(stack: Stack) -> None:
    spec = httpx.get(f"{stack.base_url}/openapi.json").json()
    for path in ("/synthesize", "/synthesize/stream", "/synthesize/sse", "/tts", "/rvc", "/health", "/status",
                 "/config", "/config/reference-audio", "/metrics"):
        assert path in spec["paths"], path
    form = spec["paths"]["/synthesize"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["$ref"] or form["schema"]
    assert httpx.get(f"{stack.base_url}/docs").status_code == 200


def test_one_request_keeps_every_worker_converting(stack: Stack, reference_wav: bytes) -> None:
    """Sentences overlap: up to workers + 1 in flight, so both workers convert this request at once."""
    pool = stack.services.voice.pool
    assert stack.services.pipeline.lookahead == stack.settings.rvc_workers + 1 == 3
    most_running, done = 0, threading.Event()

    def watch() -> None:
        nonlocal most_running
        while not done.is_set():
            most_running = max(most_running, pool.status().running)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        text = "One goes first. Two comes next. Three follows on. Four ends it."
        response = post(stack, "/synthesize/stream", reference_wav, text=text, seed=21)
    finally:
        done.set()
        watcher.join()
    assert response.status_code == 200, response.text
    assert most_running == 2


def spark_tts_counts(stack: Stack) -> tuple[int, int]:
    """(inferences, executions) of Triton's spark_tts model: fewer executions = batched requests."""
    url = f"http://{stack.settings.triton_host}:{stack.settings.triton_http_port}/v2/models/spark_tts/stats"
    stats = httpx.get(url, timeout=10).json()["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_a_requests_later_sentences_reach_triton_in_one_batch(stack: Stack, reference_wav: bytes) -> None:
    """The first sentence is spoken alone; the two after it arrive together and are decoded as one batch."""
    inferences, executions = spark_tts_counts(stack)
    text = "One goes first. Two comes next. Three follows on."
    response = post(stack, "/synthesize", reference_wav, text=text, seed=33)
    assert response.status_code == 200, response.text
    assert response.headers["X-Sentences"] == "3"
    after = spark_tts_counts(stack)
    assert (after[0] - inferences, after[1] - executions) == (3, 2)  # retries are off on demo assets
