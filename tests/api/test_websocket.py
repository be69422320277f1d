"""/ws/synthesize on the real stack over a real socket (uvicorn, the ``websockets`` client).

Every receive has a deadline: a server that hangs fails the test instead of blocking it.
The package stack runs with WS_IDLE_TIMEOUT_S=3 (tests/api/conftest.py).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from rvc.api.app import create_app
from rvc.processing.backends import PoolVoice
from tests.api.triton_log import cancelled_chunks
from tests.conftest import free_port
from tests.stack import Stack

TEXT = "Type as you go, the words arrive in pieces. Each sentence is spoken once it is complete."
RECEIVE_S = 120.0
START = {"type": "start", "voice": "default", "skip_rvc": True}


def ws_url(stack: Stack) -> str:
    return stack.base_url.replace("http://", "ws://") + "/ws/synthesize"


@dataclass
class Session:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]

    @property
    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(base64.b64decode(m["audio"]) for m in self.of("audio")), dtype="<i2")


def read_until_closed(ws: ClientConnection, session: Session, deadline_s: float = RECEIVE_S) -> Session:
    deadline = time.monotonic() + deadline_s
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the server neither finished nor closed: {[m['type'] for m in session.messages]}"
        try:
            raw = ws.recv(timeout=remaining)
        except ConnectionClosed as closed:
            session.close_code = closed.rcvd.code if closed.rcvd is not None else None
            return session
        assert isinstance(raw, str), "the server sends JSON text frames only"
        session.messages.append(json.loads(raw))


def speak(stack: Stack, text: str, *, seed: int, deltas: int = 7, **start: Any) -> Session:
    """One whole session: start, the text in ``deltas`` pieces, close; everything the server sent."""
    with connect(ws_url(stack), open_timeout=30, close_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "voice": "default", "skip_rvc": True, "seed": seed, **start}))
        step = max(1, len(text) // deltas)
        for at in range(0, len(text), step):
            ws.send(json.dumps({"type": "append", "text": text[at : at + step]}))
        ws.send(json.dumps({"type": "close"}))
        return read_until_closed(ws, Session())


def test_a_session_streams_each_sentence_as_its_text_completes(stack: Stack) -> None:
    session = speak(stack, TEXT, seed=21)
    assert session.close_code == 1000
    assert session.messages[0]["type"] == "ready" and session.messages[0]["granularity"] == "chunk"
    assert session.messages[0]["sample_rate"] == 16000 and session.messages[0]["format"] == "pcm"
    sentences = session.of("sentence")
    assert [(s["index"], s["text"]) for s in sentences] == [
        (0, "Type as you go, the words arrive in pieces."), (1, "Each sentence is spoken once it is complete."),
    ]
    audio = session.of("audio")
    assert [m["seq"] for m in audio] == list(range(len(audio))) and len(audio) >= 3
    offsets = np.cumsum([0] + [m["samples"] for m in audio])
    assert [m["sample_offset"] for m in audio] == offsets[:-1].tolist()
    done = session.messages[-1]
    assert done["type"] == "done" and done["chunks"] == len(audio) and done["samples"] == offsets[-1]
    assert session.audio.size == done["samples"] and np.abs(session.audio).max() > 0
    assert done["duration_s"] == pytest.approx(done["samples"] / 16000, abs=1e-3)
    assert 0 < done["first_audio_s"] < done["total_s"]
    assert audio[0]["elapsed_s"] < max(m["elapsed_s"] for m in audio if m["sentence"] == 0)


def test_wav_chunks_at_a_chosen_rate(stack: Stack) -> None:
    session = speak(stack, "One short sentence here.", seed=22, format="wav", sample_rate=22050)
    assert session.close_code == 1000 and session.messages[0]["sample_rate"] == 22050
    for message in session.of("audio"):
        body = base64.b64decode(message["audio"])
        assert body[:4] == b"RIFF" and (len(body) - 44) // 2 == message["samples"]
    assert session.messages[-1]["samples"] == sum(m["samples"] for m in session.of("audio"))


def test_eight_concurrent_sessions_each_get_their_own_texts_audio(stack: Stack) -> None:
    """Seeded sampling makes each session's audio a function of its text and seed alone: eight sessions
    at once must each get what the same session gets alone (to the rounding of batched vocoding)."""
    texts = [f"Session number {word} is speaking its own words now." for word in
             ("one", "two", "three", "four", "five", "six", "seven", "eight")]
    solo = [speak(stack, text, seed=30 + index) for index, text in enumerate(texts)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda item: speak(stack, item[1], seed=30 + item[0]), enumerate(texts)))
    for index, session in enumerate(together):
        assert session.close_code == 1000, session.messages[-1]
        assert [s["text"] for s in session.of("sentence")] == [texts[index]]
        assert session.messages[-1]["samples"] == session.audio.size > 0
        alone = solo[index].audio
        assert session.audio.size == alone.size, f"session {index}: {session.audio.size} samples, alone {alone.size}"
        # Triton batches concurrent requests' vocoder and tokenizer calls: float rounding, not other content
        jump = int(np.abs(session.audio.astype(np.int32) - alone.astype(np.int32)).max())
        assert jump <= 64, f"session {index} differs from its solo run by {jump} (int16)"
    assert len({session.audio.tobytes() for session in together}) == len(texts)  # eight different audios


def expect_error(ws: ClientConnection, code: int, error_code: str) -> Session:
    session = read_until_closed(ws, Session(), deadline_s=60)
    errors = session.of("error")
    assert errors, f"no error message before the close: {session.messages}"
    assert errors[-1]["code"] == error_code and errors[-1]["message"]
    assert session.messages[-1]["type"] == "error"  # nothing after the error
    assert session.close_code == code
    return session


@pytest.mark.parametrize(
    ("frames", "close_code", "error_code"),
    [
        ([{"type": "sing"}], 1008, "unknown_type"),
        (["{not json"], 1008, "invalid_json"),
        ([b"\x00\x01binary"], 1003, "binary_frame"),
        ([{"type": "append", "text": "x" * 70000}], 1008, "message_too_large"),
        ([START, {"type": "append", "text": "word " * 800}, {"type": "append", "text": "word " * 300}], 1008,
         "buffer_full"),
        ([{"type": "start", "voice": "default", "speed": 1.5}], 1008, "invalid_input"),
        ([{"type": "start", "voice": "default", "reference_audio": "AAAA"}], 1008, "invalid_input"),
        ([{"type": "start", "voice": "default", "pitch_shift": 99}], 1008, "invalid_input"),
        ([START, {"type": "append", "text": "Hi."}, {"type": "start"}], 1008, "invalid_message"),
        ([{"type": "append", "text": "Hi."}], 1008, "invalid_input"),  # no start, no stored default clip
    ],
    ids=["unknown-type", "invalid-json", "binary", "message-over-limit", "buffer-over-limit", "speed",
         "reference-clip", "out-of-range", "late-start", "no-voice"],
)
def test_a_bad_message_gets_an_error_and_a_clean_close(
    stack: Stack, frames: list[Any], close_code: int, error_code: str
) -> None:
    with connect(ws_url(stack), open_timeout=30, close_timeout=10, max_size=None) as ws:
        for frame in frames:
            ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))
        session = expect_error(ws, close_code, error_code)
    if error_code == "invalid_input":
        assert session.of("error")[-1]["field"] in {"speed", "reference_audio", "pitch_shift"}
    if error_code == "buffer_full":
        assert session.messages[0]["type"] == "ready" and session.of("error")[-1]["field"] == "text"


def test_append_after_close_is_an_error(stack: Stack) -> None:
    with connect(ws_url(stack), open_timeout=30, close_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "voice": "default", "skip_rvc": True, "seed": 40}))
        ws.send(json.dumps({"type": "append", "text": "A sentence that takes a while to speak, long enough to be busy."}))
        ws.send(json.dumps({"type": "close"}))
        ws.send(json.dumps({"type": "append", "text": "Too late."}))
        expect_error(ws, 1008, "closed")


@pytest.mark.parametrize("send_start", [False, True], ids=["never-spoke", "after-start"])
def test_a_silent_client_is_closed_after_the_idle_timeout(stack: Stack, send_start: bool) -> None:
    assert stack.settings.ws_idle_timeout_s == 3.0
    started = time.monotonic()
    with connect(ws_url(stack), open_timeout=30, close_timeout=10) as ws:
        if send_start:
            ws.send(json.dumps({"type": "start", "voice": "default", "skip_rvc": True}))
        expect_error(ws, 1008, "idle_timeout")
    assert 3.0 <= time.monotonic() - started < 30


def test_closing_the_socket_mid_stream_stops_triton(stack: Stack) -> None:
    request_id = f"cut-ws-{time.monotonic_ns()}"
    text = "This sentence is long enough that the speech model is still generating it when the client hangs up. " * 2
    cancelled_before = stack.services.counts["cancelled"]
    with connect(ws_url(stack), open_timeout=30, close_timeout=10,
                 additional_headers={"X-Request-ID": request_id}) as ws:
        ws.send(json.dumps({"type": "start", "voice": "default", "skip_rvc": True, "seed": 41}))
        ws.send(json.dumps({"type": "append", "text": text}))
        ws.send(json.dumps({"type": "flush"}))
        deadline = time.monotonic() + RECEIVE_S
        while json.loads(ws.recv(timeout=deadline - time.monotonic()))["type"] != "audio":
            pass
    assert cancelled_chunks(stack, request_id, deadline_s=30) >= 1, stack.triton.log_text(40)
    deadline = time.monotonic() + 30
    while stack.services.counts["cancelled"] == cancelled_before:
        assert time.monotonic() < deadline, "the gateway did not record the cancelled session"
        time.sleep(0.1)


@contextmanager
def keyed_app(stack: Stack, key: str) -> Iterator[str]:
    """A second app with API_KEYS over the stack's own running services (real Triton and workers)."""
    settings = stack.settings.model_copy(update={"api_keys": key, "api_port": free_port()})
    app = create_app(settings, services=stack.services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-keyed-ws", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the keyed app did not start"
        time.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{settings.api_port}/ws/synthesize"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_api_keys_are_enforced_on_the_websocket(stack: Stack) -> None:
    key = "ws-test-key-123"
    with keyed_app(stack, key) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with pytest.raises(InvalidStatus) as refused:
                connect(url, open_timeout=30, additional_headers=headers)
            assert refused.value.response.status_code == 401
            assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
        for target, headers in ((url, {"Authorization": f"Bearer {key}"}), (f"{url}?api_key={key}", {})):
            with connect(target, open_timeout=30, close_timeout=10, additional_headers=headers) as ws:
                ws.send(json.dumps({"type": "start", "voice": "default", "skip_rvc": True}))
                assert json.loads(ws.recv(timeout=60))["type"] == "ready"


def test_the_protocol_is_documented_in_openapi_and_at_get(stack: Stack) -> None:
    schema = httpx.get(f"{stack.base_url}/openapi.json", timeout=30).json()
    assert "/ws/synthesize" in schema["info"]["description"] and '"type": "append"' in schema["info"]["description"]
    assert "/ws/synthesize" in schema["paths"]  # the documented GET beside the socket
    protocol = httpx.get(f"{stack.base_url}/ws/synthesize", timeout=30).json()["protocol"]
    for message in ("start", "append", "flush", "close", "ready", "sentence", "audio", "done", "error"):
        assert f'"type": "{message}"' in protocol, message


@pytest.mark.skipif(not hasattr(PoolVoice, "open_stream"), reason="needs PoolVoice.open_stream")
def test_a_session_through_rvc_streams_the_voices_audio(stack: Stack) -> None:
    session = speak(stack, TEXT, seed=50, skip_rvc=False)
    assert session.close_code == 1000, session.messages[-1]
    assert session.messages[0]["sample_rate"] == 40000  # the demo voice's rate
    audio = session.of("audio")
    assert len(audio) >= 2 and session.messages[-1]["samples"] == sum(m["samples"] for m in audio) == session.audio.size
    assert [m["sample_offset"] for m in audio] == np.cumsum([0] + [m["samples"] for m in audio])[:-1].tolist()


@pytest.mark.skipif(not hasattr(PoolVoice, "open_stream"), reason="needs PoolVoice.open_stream")
def test_closing_a_session_through_rvc_frees_the_workers(stack: Stack) -> None:
    with connect(ws_url(stack), open_timeout=30, close_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "voice": "default", "seed": 51}))
        ws.send(json.dumps({"type": "append", "text": TEXT * 3}))
        ws.send(json.dumps({"type": "flush"}))
        deadline = time.monotonic() + RECEIVE_S
        while json.loads(ws.recv(timeout=deadline - time.monotonic()))["type"] != "audio":
            pass
    deadline = time.monotonic() + 30
    while httpx.get(f"{stack.base_url}/status", timeout=10).json()["rvc"].get("running", 0) != 0:
        assert time.monotonic() < deadline, "an RVC stream kept a worker busy after the socket closed"
        time.sleep(0.2)


def test_numbers_are_spoken_as_words_unless_the_session_turns_normalising_off(stack: Stack) -> None:
    text = "Dr. Smith paid $3.50 at 12:30. That was 10% more."
    spoken = [m["text"] for m in speak(stack, text, seed=5).of("sentence")]
    assert spoken == ["Doctor Smith paid three dollars and fifty cents at twelve thirty.", "That was ten percent more."]
    as_typed = [m["text"] for m in speak(stack, text, seed=5, normalize=False).of("sentence")]
    assert as_typed == ["Dr. Smith paid $3.50 at 12:30.", "That was 10% more."]
