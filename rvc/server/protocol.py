"""The daemon's wire format on its Unix socket: length-prefixed frames.

One frame = 16-byte prefix, JSON header, raw payload::

    b"RVC1" | header length (uint32, big-endian) | payload length (uint64, big-endian)
    header: UTF-8 JSON object, e.g. {"op": "convert", "sample_rate": 16000, "params": {...}}
    payload: audio as little-endian float32 samples (empty for most ops)

A connection carries any number of request/response pairs in turn. Replies
are ``{"ok": true, ...}`` or ``{"ok": false, "error": {"type", "message",
"field", ...}}`` (see wire.py), so the client can raise the same project
exception the server raised.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import numpy as np

from rvc.errors import InvalidInput

__all__ = [
    "MAGIC",
    "MAX_HEADER_BYTES",
    "ProtocolError",
    "audio_from_payload",
    "audio_to_payload",
    "read_frame",
    "write_frame",
]

MAGIC = b"RVC1"
_PREFIX = struct.Struct("!4sIQ")
MAX_HEADER_BYTES = 1 << 20
AUDIO_DTYPE = np.dtype("<f4")


class ProtocolError(InvalidInput):
    """A frame that does not follow the format (wrong magic, oversized, cut short, bad JSON)."""

    code = "protocol_error"


def write_frame(sock: socket.socket, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    """Send one frame (header JSON + payload) in full."""
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    sock.sendall(_PREFIX.pack(MAGIC, len(body), len(payload)) + body)
    if len(payload):
        sock.sendall(payload)


def _read_exactly(sock: socket.socket, size: int, *, at_start: bool = False) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:], size - received)
        if count == 0:
            if at_start and received == 0:
                return None
            raise ProtocolError(f"connection closed after {received} of {size} bytes")
        received += count
    return bytes(buffer)


def read_frame(sock: socket.socket, *, max_payload_bytes: int) -> tuple[dict[str, Any], bytes] | None:
    """Receive one frame; None when the peer closed the connection between frames."""
    prefix = _read_exactly(sock, _PREFIX.size, at_start=True)
    if prefix is None:
        return None
    magic, header_size, payload_size = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"not an RVC frame (magic {magic!r})")
    if header_size > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {header_size} bytes exceeds {MAX_HEADER_BYTES}")
    if payload_size > max_payload_bytes:
        raise ProtocolError(f"payload of {payload_size} bytes exceeds the limit of {max_payload_bytes}")
    raw_header = _read_exactly(sock, header_size) if header_size else b"{}"
    try:
        header = json.loads(raw_header or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    payload = _read_exactly(sock, payload_size) if payload_size else b""
    return header, payload or b""


def audio_to_payload(audio: np.ndarray) -> bytes:
    """(T,) audio -> little-endian float32 bytes."""
    return np.ascontiguousarray(audio, dtype=AUDIO_DTYPE).reshape(-1).tobytes()


def audio_from_payload(payload: bytes) -> np.ndarray:
    """Little-endian float32 bytes -> (T,) native float32 (a copy, writable)."""
    if len(payload) % AUDIO_DTYPE.itemsize:
        raise ProtocolError(f"audio payload of {len(payload)} bytes is not whole float32 samples")
    return np.frombuffer(payload, dtype=AUDIO_DTYPE).astype(np.float32)
