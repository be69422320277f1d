"""``/ws/synthesize``: text in as it is written, audio chunks out on the same socket.

The protocol (JSON text frames) is in ``WS_PROTOCOL`` below, which the app description and
``GET /ws/synthesize`` publish. The socket is served by three tasks: a reader that only moves
frames into a queue (so a timeout never cancels a half-read frame), the control loop that checks
each message into the ``TextSession`` (rvc.processing.text_session), and the sender that runs the
chunk pipeline through ``stream_sentences``, the loop every streaming response runs. Any failure
ends in an ``error`` message and a close with the protocol's code; the client going away, or any
failure, closes the pipeline's stream, which cancels the Triton request and the RVC stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketState

from rvc.api.streaming import RequestTracker, stream_sentences
from rvc.errors import VoiceError
from rvc.logging_setup import request_id_var
from rvc.processing.chunk_output import RenderedChunk, rendered_events
from rvc.processing.chunk_pipeline import ChunkJob, ChunkStream, SentenceStart
from rvc.processing.contract import SynthesisOverrides
from rvc.processing.formats import OutputSpec
from rvc.processing.requests import VoiceFields, resolve_voice
from rvc.processing.services import VoiceServices
from rvc.processing.text_session import (
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED,
    AppendMessage,
    ClientMessage,
    CloseMessage,
    FlushMessage,
    SessionError,
    StartMessage,
    TextSession,
    close_code_for,
    parse_message,
)

__all__ = ["WS_PROTOCOL", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["websocket"])

WS_PROTOCOL = """
### WebSocket `/ws/synthesize`: type as you go

Text frames holding JSON. Client to server:
- `{"type": "start", ...}` optional and first: any synthesis field (`voice`, `rvc_model`, `reference_text`,
  `pitch_shift`, `f0_method`, `index_rate`, `filter_radius`, `rms_mix_rate`, `protect`, `skip_rvc`,
  `temperature`, `top_k`, `top_p`, `seed`), `format` (`pcm` default, or `wav`) and `sample_rate`. No reference
  clip on the socket: use a saved voice or the stored default clip.
- `{"type": "append", "text": "..."}` text deltas; each sentence is spoken as soon as it is complete.
- `{"type": "flush"}` speak what is buffered now. `{"type": "close"}` flush, finish, `done`, close 1000.

Server to client:
- `{"type": "ready", "sample_rate", "format", "granularity": "chunk", "demo_assets"}`
- `{"type": "sentence", "index", "text"}` when a sentence starts
- `{"type": "audio", "seq", "sentence", "sample_offset", "samples", "sample_rate", "format", "elapsed_s",
  "audio"}` per chunk (base64; `pcm` is s16le mono, `wav` a small file per chunk)
- `{"type": "done", "chunks", "samples", "duration_s", "first_audio_s", "total_s"}`
- `{"type": "error", "code", "message", "field"}` then a close: 1003 binary frame, 1008 bad message, limit
  (WS_MAX_MESSAGE_BYTES, WS_MAX_BUFFERED_CHARS) or idle (WS_IDLE_TIMEOUT_S), 1011 internal, 1013 backend down.

Closing the socket cancels all work. With API_KEYS set, send `Authorization: Bearer <key>` (browsers, which
cannot set headers on a WebSocket: the query parameter `api_key`).
"""


@router.get("/ws/synthesize", summary="The WebSocket text-to-speech protocol (connect with ws:// to this path)",
            description=WS_PROTOCOL)
async def ws_protocol() -> dict[str, str]:
    return {"protocol": WS_PROTOCOL.strip()}


class _Socket:
    """Sends one JSON message at a time and remembers when the session last saw activity."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.lock = asyncio.Lock()
        self.last_activity = time.monotonic()

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            await self.websocket.send_text(json.dumps(payload))
        self.last_activity = time.monotonic()

    async def close(self, code: int, payload: dict[str, Any] | None = None) -> None:
        """Send ``payload`` (an error) and close; a client already gone is not an error."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            if payload is not None:
                await self.send(payload)
            if self.websocket.application_state != WebSocketState.DISCONNECTED:
                await self.websocket.close(code)


def _error_payload(error: VoiceError) -> dict[str, Any]:
    return {"type": "error", "code": error.code, "message": error.message, "field": error.field}


async def _read_frames(websocket: WebSocket, frames: asyncio.Queue[Message]) -> None:
    while True:
        message = await websocket.receive()
        await frames.put(message)
        if message["type"] == "websocket.disconnect":
            return


class _Session:
    def __init__(self, websocket: WebSocket, services: VoiceServices, tracker: RequestTracker) -> None:
        self.services = services
        self.settings = services.settings
        self.tracker = tracker
        self.socket = _Socket(websocket)
        self.text = TextSession(max_buffered_chars=self.settings.ws_max_buffered_chars)
        self.frames: asyncio.Queue[Message] = asyncio.Queue()
        self.started = False

    def _idle(self) -> bool:
        return not self.started or self.text.waiting

    async def next_message(self) -> ClientMessage:
        """The next client message; ``SessionError`` for a bad one or a silent idle client."""
        idle_s = self.settings.ws_idle_timeout_s
        while True:
            remaining = idle_s - (time.monotonic() - self.socket.last_activity)
            try:
                frame = await asyncio.wait_for(self.frames.get(), timeout=max(remaining, 0.05))
            except TimeoutError:
                if time.monotonic() - self.socket.last_activity >= idle_s and self._idle():
                    raise SessionError(
                        f"no message for {idle_s:g} s (WS_IDLE_TIMEOUT_S) with nothing left to speak: closing",
                        code="idle_timeout",
                    ) from None
                continue
            if frame["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(frame.get("code", 1000))
            self.socket.last_activity = time.monotonic()
            if frame.get("text") is None:
                raise SessionError("binary frames are not part of the protocol: send JSON text frames",
                                   code="binary_frame", close_code=CLOSE_UNSUPPORTED)
            return parse_message(frame["text"], max_bytes=self.settings.ws_max_message_bytes)

    def apply(self, message: ClientMessage) -> None:
        if isinstance(message, StartMessage):
            raise SessionError("start must be the first message, and only one", code="invalid_message", field="type")
        if isinstance(message, AppendMessage):
            self.text.append(message.text)
        elif isinstance(message, FlushMessage):
            self.text.flush()
        elif isinstance(message, CloseMessage):
            self.text.close()

    async def control(self) -> None:
        while True:
            self.apply(await self.next_message())

    async def open(self, first: ClientMessage) -> tuple[ChunkStream, OutputSpec]:
        start = first if isinstance(first, StartMessage) else StartMessage(None, None, "pcm", None, None, {})
        fields = VoiceFields(
            overrides=SynthesisOverrides.model_construct(**start.tunables), voice=start.voice,
            rvc_model=start.rvc_model, seed=start.seed, design=start.design,
        )
        voice = await resolve_voice(fields, self.services)
        self.text.normalize = start.normalize
        output = OutputSpec(format=start.format, sample_rate=start.sample_rate)
        job = ChunkJob(voice.speaker, voice.settings, voice.rvc_model, start.seed, self.tracker.started)
        return await self.services.chunks.open(job), output

    async def speak(self, stream: ChunkStream, output: OutputSpec) -> None:
        """Run the pipeline through ``stream_sentences`` and send every item; close 1000 after ``done``."""
        totals = {"chunks": 0, "samples": 0}
        first_audio: float | None = None
        rate = output.output_rate(stream.sample_rate)

        async def render(event: RenderedChunk | SentenceStart) -> dict[str, Any]:
            nonlocal first_audio
            if isinstance(event, SentenceStart):
                return {"type": "sentence", "index": event.index, "text": event.text}
            if first_audio is None and event.samples:
                first_audio = time.perf_counter() - self.tracker.started
            totals["chunks"] += 1
            totals["samples"] += event.samples
            return {
                "type": "audio", "seq": event.index, "sentence": event.sentence, "sample_offset": event.sample_offset,
                "samples": event.samples, "sample_rate": event.sample_rate, "format": output.format,
                "elapsed_s": round(event.elapsed_s, 4), "audio": base64.b64encode(event.body).decode("ascii"),
            }

        async def done() -> dict[str, Any]:
            return {
                "type": "done", "chunks": totals["chunks"], "samples": totals["samples"],
                "duration_s": round(totals["samples"] / rate, 4),
                "first_audio_s": None if first_audio is None else round(first_audio, 4),
                "total_s": round(time.perf_counter() - self.tracker.started, 4),
            }

        events: AsyncGenerator[RenderedChunk | SentenceStart, None] = rendered_events(
            stream, self.text.sentences(), output
        )
        failures: list[VoiceError] = []

        def failed(error: VoiceError) -> dict[str, Any]:
            failures.append(error)
            return _error_payload(error)

        items = stream_sentences(self.tracker, events, render, end=done, on_error=failed)
        try:
            async for payload in items:
                await self.socket.send(payload)
        finally:
            await items.aclose()
        await self.socket.close(close_code_for(failures[0]) if failures else CLOSE_NORMAL)

    async def run(self, websocket: WebSocket) -> None:
        reader = asyncio.ensure_future(_read_frames(websocket, self.frames))
        tasks: list[asyncio.Future[None]] = [reader]
        try:
            first = await self.next_message()
            try:
                stream, output = await self.open(first)
            except VoiceError as error:
                self.tracker.finish(error.status_code)
                raise
            async with stream:
                self.started = True
                await self.socket.send({
                    "type": "ready", "sample_rate": output.output_rate(stream.sample_rate), "format": output.format,
                    "granularity": "chunk", "demo_assets": self.services.assets.demo,
                })
                if not isinstance(first, StartMessage):
                    self.apply(first)
                speaker = asyncio.ensure_future(self.speak(stream, output))
                control = asyncio.ensure_future(self.control())
                tasks += [speaker, control]
                await asyncio.wait({speaker, control}, return_when=asyncio.FIRST_COMPLETED)
                if control.done():
                    speaker.cancel()
                    await asyncio.gather(speaker, return_exceptions=True)
                    control.result()  # raises the violation, or the client's disconnect
                speaker.result()
        except SessionError as error:
            self.tracker.finish(error.status_code)
            await self.socket.close(error.close_code, _error_payload(error))
        except WebSocketDisconnect:
            self.tracker.finish(499, cancelled=True)
        except VoiceError as error:
            await self.socket.close(close_code_for(error), _error_payload(error))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@router.websocket("/ws/synthesize")
async def ws_synthesize(websocket: WebSocket) -> None:
    given = websocket.headers.get("x-request-id", "")
    request_id_var.set(given if given and len(given) <= 64 and given.isprintable() else uuid.uuid4().hex[:16])
    await websocket.accept()
    services: VoiceServices = websocket.app.state.services
    session = _Session(websocket, services, RequestTracker(websocket, "/ws/synthesize"))
    await session.run(websocket)
