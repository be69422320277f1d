"""``RVCClient``: talk to an RVC daemon over its Unix socket (protocol.py).

    client = RVCClient("var/run/rvc_server.sock")
    client.status().queue_depth
    result = client.convert(audio, 16000, ConversionParams(pitch_shift=3))

Each call opens its own connection, so one client may be shared by threads.
Errors the daemon raised come back as the same project exceptions (Busy with
its retry_after_s, NotFound, InvalidInput, ...); an unreachable daemon is
ModelUnavailable.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np

from rvc.errors import ModelUnavailable
from rvc.infer.params import ConversionParams, ConversionResult
from rvc.server.protocol import audio_from_payload, audio_to_payload, read_frame, write_frame
from rvc.server.status import PoolStatus
from rvc.server.wire import error_from_dict, params_to_dict

__all__ = ["RVCClient"]

_MAX_REPLY_BYTES = 1 << 31


class RVCClient:
    """Client of one daemon. ``timeout_s`` bounds each call's wait for the reply."""

    def __init__(
        self, socket_path: str | Path, *, timeout_s: float = 330.0, connect_timeout_s: float = 5.0
    ) -> None:
        self.socket_path = Path(socket_path)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    def _call(
        self, header: dict[str, Any], payload: bytes = b"", *, timeout_s: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout_s)
            try:
                sock.connect(str(self.socket_path))
            except OSError as exc:
                raise ModelUnavailable(f"RVC server not reachable at {self.socket_path}: {exc}") from exc
            sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
            try:
                write_frame(sock, header, payload)
                frame = read_frame(sock, max_payload_bytes=_MAX_REPLY_BYTES)
            except OSError as exc:
                raise ModelUnavailable(f"RVC server at {self.socket_path} failed: {exc}") from exc
        finally:
            sock.close()
        if frame is None:
            raise ModelUnavailable(f"RVC server at {self.socket_path} closed the connection without a reply")
        reply, reply_payload = frame
        if not reply.get("ok"):
            raise error_from_dict(reply.get("error") or {"message": "malformed error reply"})
        return reply, reply_payload

    def ping(self) -> dict[str, Any]:
        """{"pid", "uptime_s", "state"} of the daemon; raises ModelUnavailable when it is not there."""
        reply, _ = self._call({"op": "ping"}, timeout_s=self.connect_timeout_s)
        return reply

    def is_running(self) -> bool:
        try:
            self.ping()
        except ModelUnavailable:
            return False
        return True

    def status(self) -> PoolStatus:
        reply, _ = self._call({"op": "status"}, timeout_s=self.connect_timeout_s + 10.0)
        return PoolStatus.from_dict(reply["status"])

    def status_reply(self) -> dict[str, Any]:
        """The full status reply: pid, uptime_s, socket and status (a PoolStatus dict)."""
        reply, _ = self._call({"op": "status"}, timeout_s=self.connect_timeout_s + 10.0)
        return reply

    def convert(
        self,
        audio: np.ndarray,
        sample_rate: int,
        params: ConversionParams | None = None,
        *,
        voice: str | None = None,
        timeout_s: float | None = None,
    ) -> ConversionResult:
        """Convert (T,) float mono audio at ``sample_rate`` Hz on the daemon's pool."""
        header = {
            "op": "convert",
            "sample_rate": int(sample_rate),
            "params": params_to_dict(params if params is not None else ConversionParams()),
            "voice": voice,
            "timeout_s": timeout_s,
        }
        wait = self.timeout_s if timeout_s is None else timeout_s + 10.0
        reply, payload = self._call(header, audio_to_payload(np.asarray(audio)), timeout_s=wait)
        return ConversionResult(
            audio=audio_from_payload(payload),
            sample_rate=int(reply["sample_rate"]),
            timings={key: float(value) for key, value in reply["timings"].items()},
        )

    def load_voice(self, name: str, *, make_default: bool = False) -> dict[str, Any]:
        reply, _ = self._call({"op": "load_voice", "name": name, "make_default": make_default})
        return reply["voice"]

    def unload_voice(self, name: str) -> None:
        self._call({"op": "unload_voice", "name": name})

    def stop(self, *, drain: bool = True, timeout_s: float | None = None) -> int:
        """Ask the daemon to drain and exit; returns its pid (it exits shortly after replying)."""
        reply, _ = self._call(
            {"op": "stop", "drain": drain, "timeout_s": timeout_s}, timeout_s=self.connect_timeout_s + 10.0
        )
        return int(reply["pid"])
