"""granularity=chunk on the real stack: /synthesize/stream, /synthesize/sse and /v1/audio/speech.

Chunks come from Triton's streaming model (spark_tts_decoupled) through the request's voice stream:
the pass-through stream when RVC is skipped (a product path), the pool's RVC stream otherwise
(those tests run once PoolVoice.open_stream exists). Every request has a deadline (httpx timeouts).
"""

from __future__ import annotations

import base64
import io
import json
import time

import av
import httpx
import numpy as np
import pytest

from rvc.processing.backends import PoolVoice
from rvc.server import RVCServer
from tests.api.conftest import decode, parse_multipart, parse_sse
from tests.api.triton_log import cancelled_chunks
from tests.processes import wait_for
from tests.stack import Stack

TEXT = "The first sentence is spoken while it is still being generated. The second one follows right after it."
LONG = (
    "This sentence is long enough that the speech model is still generating it when the client hangs up, "
    "which is what the cancellation must stop, along with every sentence behind it. " * 3
)
TIMEOUT = httpx.Timeout(240.0)
needs_rvc_streams = pytest.mark.skipif(
    not hasattr(PoolVoice, "open_stream"), reason="needs PoolVoice.open_stream (the pool's RVC stream jobs)"
)


def post(stack: Stack, path: str, **fields: object) -> httpx.Response:
    data = {"voice": "default", **{name: str(value) for name, value in fields.items()}}
    return httpx.post(f"{stack.base_url}{path}", data=data, timeout=TIMEOUT)


def check_parts(parts: list[tuple[dict[str, str], bytes]], *, rate: int) -> int:
    """Indexes, offsets and sizes agree; returns the total samples."""
    offset = 0
    for index, (headers, body) in enumerate(parts):
        assert int(headers["x-chunk-index"]) == index
        assert int(headers["x-sample-offset"]) == offset
        assert int(headers["x-sample-rate"]) == rate
        samples = int(headers["x-samples"])
        assert len(body) == 2 * samples  # pcm: s16le mono
        offset += samples
    return offset


def test_chunk_multipart_parts_concatenate_to_the_output(stack: Stack) -> None:
    response = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk", skip_rvc="true", seed=11, format="pcm")
    assert response.status_code == 200, response.text
    assert response.headers["X-Granularity"] == "chunk"
    parts = parse_multipart(response.content, response.headers["content-type"])
    assert len(parts) >= 3  # a sentence arrives as several chunks, not one file
    total = check_parts(parts, rate=16000)
    audio = np.frombuffer(b"".join(body for _, body in parts), dtype="<i2")
    assert audio.size == total > 16000 * 0.3 and np.abs(audio).max() > 0
    assert {int(headers["x-sentence-index"]) for headers, _ in parts} == {0, 1}
    elapsed = [float(headers["x-elapsed"]) for headers, _ in parts]
    assert elapsed == sorted(elapsed)
    # the first chunk of the first sentence left before that sentence was done
    first_sentence = [e for (headers, _), e in zip(parts, elapsed, strict=True) if headers["x-sentence-index"] == "0"]
    assert elapsed[0] < first_sentence[-1]


def test_chunk_mode_equals_the_whole_sentence_mode_text_in_length(stack: Stack) -> None:
    """Same seed, same text: the chunked TTS stream speaks the same number of samples as the offline one."""
    chunked = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk", skip_rvc="true", seed=12, format="pcm")
    whole = post(stack, "/synthesize/stream", text=TEXT, skip_rvc="true", seed=12, format="pcm")
    chunk_parts = parse_multipart(chunked.content, chunked.headers["content-type"])
    sentence_parts = parse_multipart(whole.content, whole.headers["content-type"])
    per_sentence: dict[int, int] = {}
    for headers, _ in chunk_parts:
        per_sentence[int(headers["x-sentence-index"])] = per_sentence.get(int(headers["x-sentence-index"]), 0) + int(
            headers["x-samples"]
        )
    assert sum(per_sentence.values()) == sum(len(body) // 2 for _, body in sentence_parts)


def test_chunk_sse_events_match_the_end_totals_with_wav_chunks_at_24k(stack: Stack) -> None:
    response = post(
        stack, "/synthesize/sse", text=TEXT, granularity="chunk", skip_rvc="true", seed=13, format="wav",
        sample_rate=24000,
    )
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[0][0] == "start" and json.loads(events[0][1])["granularity"] == "chunk"
    chunks = [json.loads(data) for name, data in events if name == "chunk"]
    name, end = events[-1][0], json.loads(events[-1][1])
    assert name == "end", events[-1]
    offset = 0
    for index, chunk in enumerate(chunks):
        assert chunk["index"] == index and chunk["sample_offset"] == offset and chunk["sample_rate"] == 24000
        assert set(chunk["timings"]) == {"tts_s", "rvc_s"} and chunk["format"] == "wav"
        wav, rate = decode(base64.b64decode(chunk["audio"]))
        assert rate == 24000 and wav.size == chunk["samples"]
        offset += chunk["samples"]
    assert end["chunks"] == len(chunks) and end["samples"] == offset
    assert end["duration_s"] == pytest.approx(offset / 24000, abs=1e-3)
    assert 0 < end["first_audio_s"] < end["total_s"]


def test_chunk_mp3_bodies_concatenate_to_one_valid_file(stack: Stack) -> None:
    response = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk", skip_rvc="true", seed=14, format="mp3")
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.content, response.headers["content-type"])
    samples = sum(int(headers["x-samples"]) for headers, _ in parts)
    rate = int(parts[0][0]["x-sample-rate"])
    with av.open(io.BytesIO(b"".join(body for _, body in parts))) as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(decoded - samples) <= 2 * 1152 + 1105  # the encoder's padding and priming, at most
    assert rate == 16000


def test_speed_is_refused_in_chunk_mode_naming_the_field(stack: Stack) -> None:
    response = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk", skip_rvc="true", speed=1.5)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "speed" and "granularity=sentence" in error["message"]


def test_bad_granularity_is_a_400_naming_it(stack: Stack) -> None:
    response = post(stack, "/synthesize/sse", text=TEXT, granularity="word")
    assert response.status_code == 400 and response.json()["error"]["field"] == "granularity"


@pytest.mark.skipif(hasattr(PoolVoice, "open_stream"), reason="the pool streams: chunk mode goes through RVC")
def test_chunk_through_rvc_without_pool_streams_is_a_400_naming_granularity(stack: Stack) -> None:
    response = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "granularity"


@needs_rvc_streams
def test_chunk_mode_through_rvc_streams_the_voice_rate(stack: Stack) -> None:
    response = post(stack, "/synthesize/stream", text=TEXT, granularity="chunk", seed=15, format="pcm")
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.content, response.headers["content-type"])
    total = check_parts(parts, rate=40000)  # the demo voice's rate
    assert total > 40000 * 0.3 and len(parts) >= 2


@needs_rvc_streams
def test_chunk_sse_through_rvc_matches_end(stack: Stack) -> None:
    response = post(stack, "/synthesize/sse", text=TEXT, granularity="chunk", seed=16, format="pcm")
    events = parse_sse(response.text)
    chunks = [json.loads(data) for name, data in events if name == "chunk"]
    end = json.loads(events[-1][1])
    assert events[-1][0] == "end" and end["samples"] == sum(chunk["samples"] for chunk in chunks)
    assert sum(len(base64.b64decode(chunk["audio"])) // 2 for chunk in chunks) == end["samples"]


def test_openai_stream_format_sse_streams_chunks_of_one_file(stack: Stack) -> None:
    body = {"model": "tts-1", "voice": "default", "input": TEXT, "response_format": "wav", "stream_format": "sse",
            "skip_rvc": True, "seed": 17}
    response = httpx.post(f"{stack.base_url}/v1/audio/speech", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["X-Granularity"] == "chunk"
    events = [json.loads(data) for _, data in parse_sse(response.text)]
    deltas = [base64.b64decode(event["audio"]) for event in events if event["type"] == "speech.audio.delta"]
    assert events[-1]["type"] == "speech.audio.done" and len(deltas) >= 3
    header_bytes = 44
    samples = (sum(len(delta) for delta in deltas) - header_bytes) // 2
    assert samples > 16000 * 0.3


def test_openai_explicit_sentence_granularity_keeps_sentence_mode(stack: Stack) -> None:
    body = {"model": "tts-1", "voice": "default", "input": TEXT, "response_format": "pcm", "stream_format": "audio",
            "skip_rvc": True, "seed": 18, "granularity": "sentence"}
    response = httpx.post(f"{stack.base_url}/v1/audio/speech", json=body, timeout=TIMEOUT)
    assert response.status_code == 200 and response.headers["X-Granularity"] == "sentence"
    speed = httpx.post(f"{stack.base_url}/v1/audio/speech", json={**body, "granularity": "chunk", "speed": 2.0},
                       timeout=TIMEOUT)
    assert speed.status_code == 400 and speed.json()["error"]["param"] == "speed"


def test_a_client_that_disconnects_mid_stream_stops_triton(stack: Stack) -> None:
    request_id = f"cut-http-{time.monotonic_ns()}"
    cancelled_before = stack.services.counts["cancelled"]
    data = {"voice": "default", "text": LONG, "granularity": "chunk", "skip_rvc": "true", "seed": "19", "format": "pcm"}
    with httpx.Client(timeout=TIMEOUT) as client, client.stream(
        "POST", f"{stack.base_url}/synthesize/stream", data=data, headers={"X-Request-ID": request_id}
    ) as response:
        assert response.status_code == 200
        received = b""
        for piece in response.iter_bytes():
            received += piece
            if received.count(b"X-Chunk-Index") >= 1:
                break  # hang up after the first chunk
    sent = cancelled_chunks(stack, request_id, deadline_s=30)
    assert sent >= 1, stack.triton.log_text(40)
    deadline = time.monotonic() + 30
    while stack.services.counts["cancelled"] == cancelled_before:
        assert time.monotonic() < deadline, "the gateway did not record the cancelled request"
        time.sleep(0.1)


def _pool(stack: Stack) -> RVCServer:
    voice = stack.services.voice
    assert isinstance(voice, PoolVoice)
    return voice.pool


@needs_rvc_streams
def test_chunk_mode_converts_each_sentence_on_an_rvc_stream_of_its_own(stack: Stack) -> None:
    """Sentences convert side by side (one stream each, on any free worker), and still arrive in order."""
    pool = _pool(stack)
    opened = pool.status().streams_opened
    response = post(stack, "/synthesize/sse", text=TEXT, granularity="chunk", seed=20, format="pcm")
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    chunks = [json.loads(data) for name, data in events if name == "chunk"]
    sentences = [chunk["sentence"] for chunk in chunks]
    assert sentences == sorted(sentences) and set(sentences) == {0, 1}  # TEXT is two sentences
    offsets = [chunk["sample_offset"] for chunk in chunks]
    assert offsets == list(np.cumsum([0] + [chunk["samples"] for chunk in chunks])[:-1])
    assert names[-1] == "end"
    assert pool.status().streams_opened - opened == 2
    wait_for(lambda: pool.status().open_streams == 0, 30, "both sentences' streams to close")


@needs_rvc_streams
def test_a_client_that_disconnects_mid_stream_frees_its_rvc_streams(stack: Stack) -> None:
    pool = _pool(stack)
    failed_before = pool.status().streams_failed
    data = {"voice": "default", "text": LONG, "granularity": "chunk", "seed": "21", "format": "pcm"}
    with httpx.Client(timeout=TIMEOUT) as client, client.stream(
        "POST", f"{stack.base_url}/synthesize/stream", data=data
    ) as response:
        assert response.status_code == 200
        received = b""
        for piece in response.iter_bytes():
            received += piece
            if b"X-Chunk-Index" in received:
                assert pool.status().open_streams >= 1
                break  # hang up after the first chunk, mid-sentence
    wait_for(lambda: pool.status().open_streams == 0, 30, "the request's RVC streams to be closed")
    assert pool.status().streams_failed == failed_before  # closed on purpose, not failed
