"""The WebSocket's text side: client messages checked, deltas cut into sentences as they complete.

An LLM streams its answer in deltas of a few characters; ``TextSession`` keeps what has arrived
and hands a sentence to the speaker as soon as the text after it shows it is complete (the next
sentence has begun): ``split_sentences`` decides, so abbreviations, initials and numbers are
treated as in a whole text, and the last fragment waits for more text, ``flush`` or ``close``.
The sentences leave through ``sentences()``, the async source ``ChunkStream.events`` reads.

Messages are JSON text frames (the streaming protocol): ``start`` (optional, first), ``append``,
``flush`` and ``close``. Every violation is a ``SessionError`` carrying the WebSocket close code
the route ends with, so a bad client always gets an error message and a clean close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from rvc.errors import InvalidInput, VoiceError
from rvc.processing.contract import (
    RVC_MODEL_MAX_CHARS,
    RequestOptions,
    SynthesisDefaults,
    Target,
    fields_for,
    optional_fields,
)
from rvc.processing.normalize import normalize_text
from rvc.processing.requests import VoiceDesign, voice_design
from rvc.processing.sentences import split_sentences

__all__ = [
    "CLOSE_BACKEND_DOWN",
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_UNSUPPORTED",
    "AppendMessage",
    "CloseMessage",
    "FlushMessage",
    "SessionError",
    "StartMessage",
    "TextSession",
    "close_code_for",
    "parse_message",
]

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003  # a binary frame
CLOSE_POLICY = 1008  # a bad message, a limit, the idle timeout
CLOSE_INTERNAL = 1011
CLOSE_BACKEND_DOWN = 1013  # try again later


class SessionError(VoiceError):
    """A client message the session refuses; ``close_code`` ends the socket."""

    status_code = 400

    def __init__(self, message: str, *, code: str, field: str | None = None, close_code: int = CLOSE_POLICY) -> None:
        super().__init__(message, field=field)
        self.code = code
        self.close_code = close_code


def close_code_for(error: VoiceError) -> int:
    """The close code after ``error``: the client's fault 1008, a backend down 1013, ours 1011."""
    if isinstance(error, SessionError):
        return error.close_code
    if error.status_code == 503:
        return CLOSE_BACKEND_DOWN
    return CLOSE_POLICY if error.status_code < 500 else CLOSE_INTERNAL


class _StartBody(BaseModel):
    """The ``start`` message: the contract's synthesis fields plus the voice and the output."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    type: Literal["start"]
    voice: str | None = Field(None, max_length=RVC_MODEL_MAX_CHARS)
    rvc_model: str | None = Field(None, max_length=RVC_MODEL_MAX_CHARS)
    format: Literal["pcm", "wav"] = "pcm"
    granularity: Literal["chunk"] = "chunk"


# every storable tunable, seed and sample_rate; speed is not streamable chunk by chunk, format is declared above
_START_FIELDS = {**fields_for(SynthesisDefaults), **fields_for(RequestOptions, Target.REQUEST, Target.TEXT, Target.VOICE)}
_START_FIELDS |= {name: info for name, info in fields_for(RequestOptions, Target.OUTPUT).items() if name == "sample_rate"}
_START_FIELDS.pop("granularity", None)

if TYPE_CHECKING:
    StartBody = _StartBody
else:
    StartBody = create_model("StartBody", __base__=_StartBody, __module__=__name__, **optional_fields(_START_FIELDS))


@dataclass(frozen=True)
class StartMessage:
    voice: str | None
    rvc_model: str | None
    format: Literal["pcm", "wav"]
    sample_rate: int | None
    seed: int | None
    tunables: dict[str, Any]  # the SynthesisDefaults fields the client set, by name
    normalize: bool = True  # write numbers, dates, units... out as spoken, sentence by sentence
    design: VoiceDesign | None = None  # gender/pitch/speed_level: a designed voice instead of a clip


@dataclass(frozen=True)
class AppendMessage:
    text: str


@dataclass(frozen=True)
class FlushMessage:
    pass


@dataclass(frozen=True)
class CloseMessage:
    pass


ClientMessage = StartMessage | AppendMessage | FlushMessage | CloseMessage


def _start(data: dict[str, Any]) -> StartMessage:
    if "reference_audio" in data:
        raise SessionError(
            "a reference clip cannot be sent on the socket: name a saved voice (voice, GET /voices) or store a "
            "default clip (POST /config/reference-audio)", code="invalid_input", field="reference_audio",
        )
    if "speed" in data:
        raise SessionError("speed cannot be streamed chunk by chunk: leave it out (or use /synthesize/stream with "
                           "granularity=sentence)", code="invalid_input", field="speed")
    try:
        body = StartBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise SessionError(f"start: {field}: {first['msg']}", code="invalid_input", field=field) from exc
    given = {name: value for name, value in body.model_dump().items() if value is not None}
    tunables = {name: value for name, value in given.items() if name in SynthesisDefaults.model_fields}
    try:
        design = voice_design(given)
    except InvalidInput as exc:
        raise SessionError(f"start: {exc.message}", code="invalid_input", field=exc.field) from exc
    return StartMessage(
        body.voice, body.rvc_model, body.format, given.get("sample_rate"), given.get("seed"), tunables,
        normalize=given.get("normalize", True), design=design,
    )


def parse_message(raw: str, *, max_bytes: int) -> ClientMessage:
    """One client text frame -> its message; ``SessionError`` naming what is wrong."""
    size = len(raw.encode("utf-8"))
    if size > max_bytes:
        raise SessionError(
            f"the message is {size} bytes; the limit is {max_bytes} (WS_MAX_MESSAGE_BYTES): send the text in "
            "smaller appends", code="message_too_large", field="text",
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SessionError(f"the message is not valid JSON ({exc.msg} at {exc.pos})", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise SessionError("a message is a JSON object with a type", code="invalid_message", field="type")
    kind = data.get("type")
    if kind == "start":
        return _start(data)
    if kind == "append":
        text = data.get("text")
        if not isinstance(text, str) or set(data) - {"type", "text"}:
            raise SessionError('append is {"type": "append", "text": "<string>"}', code="invalid_message", field="text")
        return AppendMessage(text)
    if kind in ("flush", "close"):
        if set(data) != {"type"}:
            raise SessionError(f"{kind} takes no other field", code="invalid_message", field="type")
        return FlushMessage() if kind == "flush" else CloseMessage()
    raise SessionError(
        f"unknown message type {kind!r}: use start, append, flush or close", code="unknown_type", field="type"
    )


class TextSession:
    """Deltas in, complete sentences out (``sentences()``), within ``max_buffered_chars`` of unspoken text."""

    def __init__(self, *, max_buffered_chars: int) -> None:
        self.max_buffered_chars = max_buffered_chars
        self.closed = False
        self.cut = 0  # sentences handed out so far
        self._buffer = ""
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued_chars = 0
        self.waiting = False  # the speaker is waiting for text: nothing is left to speak
        self.normalize = False  # the WebSocket sets it from its start message (on by default there)

    def append(self, text: str) -> None:
        if self.closed:
            raise SessionError("append after close: the session is finishing; open a new socket for more text",
                               code="closed", field="type")
        pending = len(self._buffer) + self._queued_chars + len(text)
        if pending > self.max_buffered_chars:
            raise SessionError(
                f"{pending} characters would wait to be spoken; the limit is {self.max_buffered_chars} "
                "(WS_MAX_BUFFERED_CHARS): send less text ahead of the audio", code="buffer_full", field="text",
            )
        self._buffer += text
        pieces = split_sentences(self._buffer)
        if len(pieces) < 2:
            return
        for sentence in pieces[:-1]:
            self._put(sentence)
        self._buffer = pieces[-1] + (" " if self._buffer[-1:].isspace() else "")

    def flush(self) -> None:
        """Speak what is buffered now, complete or not."""
        for sentence in split_sentences(self._buffer):
            self._put(sentence)
        self._buffer = ""

    def close(self) -> None:
        """Flush and end ``sentences()``; idempotent."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._queue.put_nowait(None)

    def _put(self, sentence: str) -> None:
        self._queued_chars += len(sentence)
        self.cut += 1
        self._queue.put_nowait(sentence)

    async def sentences(self) -> AsyncIterator[str]:
        while True:
            self.waiting = self._queue.empty()
            try:
                sentence = await self._queue.get()
            finally:
                self.waiting = False
            if sentence is None:
                return
            self._queued_chars -= len(sentence)
            # normalised after the cut: the splitter sees the text as typed (its rules know "Dr." and "3.5")
            yield await asyncio.to_thread(normalize_text, sentence) if self.normalize else sentence
