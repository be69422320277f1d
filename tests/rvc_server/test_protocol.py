"""The daemon's length-prefixed frames: round trips and every malformed case."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from rvc.server.protocol import (
    MAGIC,
    ProtocolError,
    audio_from_payload,
    audio_to_payload,
    read_frame,
    write_frame,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield left, right
    left.close()
    right.close()


def test_header_and_audio_payload_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    audio = np.random.default_rng(1).uniform(-1, 1, 40_000).astype(np.float32)
    # big enough to need several recv calls; written from a thread so sendall cannot block the reader
    writer = threading.Thread(
        target=write_frame, args=(left, {"op": "convert", "sample_rate": 16000}, audio_to_payload(audio))
    )
    writer.start()
    header, payload = read_frame(right, max_payload_bytes=1 << 20)
    writer.join()
    assert header == {"op": "convert", "sample_rate": 16000}
    back = audio_from_payload(payload)
    assert back.dtype == np.float32 and back.flags.writeable
    np.testing.assert_array_equal(back, audio)


def test_several_frames_on_one_connection_then_clean_close(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    for index in range(3):
        write_frame(left, {"n": index})
    left.close()
    assert [read_frame(right, max_payload_bytes=0)[0]["n"] for _ in range(3)] == [0, 1, 2]
    assert read_frame(right, max_payload_bytes=0) is None


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"XXXX" + struct.pack("!IQ", 2, 0) + b"{}", "magic"),
        (MAGIC + struct.pack("!IQ", 2, 10**9) + b"{}", "exceeds the limit"),
        (MAGIC + struct.pack("!IQ", 1 << 21, 0), "header of"),
        (MAGIC + struct.pack("!IQ", 5, 0) + b"nope!", "not JSON"),
        (MAGIC + struct.pack("!IQ", 2, 0) + b"[]", "JSON object"),
        (MAGIC + struct.pack("!IQ", 20, 0) + b"{", "closed after"),
    ],
)
def test_malformed_frames_raise_protocol_error(
    pair: tuple[socket.socket, socket.socket], raw: bytes, match: str
) -> None:
    left, right = pair
    left.sendall(raw)
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match=match):
        read_frame(right, max_payload_bytes=1 << 20)


def test_audio_payload_must_be_whole_samples() -> None:
    with pytest.raises(ProtocolError, match="whole float32"):
        audio_from_payload(b"\x00" * 7)
