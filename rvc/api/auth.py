"""Optional API keys: with ``API_KEYS`` set, every route but /health and /metrics needs a bearer key.

``API_KEYS`` is either comma-separated keys or the path of a file holding one
key per line (``#`` comments and blank lines ignored); unset means no check,
for loopback use. The check is an ASGI middleware, so it runs before any body
is read: ``Authorization: Bearer <key>``, compared in constant time (SHA-256
digests of both sides through ``hmac.compare_digest``, every key tried).
Accepted requests are counted per key in ``voice_api_key_requests_total``,
labelled with the first 8 hex digits of the key's SHA-256, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from rvc.api.metrics import ApiMetrics
from rvc.api.middleware import error_payload
from rvc.errors import ConfigError, VoiceError

__all__ = ["OPEN_PATHS", "ApiKeyMiddleware", "Unauthorized", "key_id", "load_api_keys"]

OPEN_PATHS = frozenset({"/health", "/health/ready", "/health/live", "/metrics"})


def _is_page(path: str) -> bool:
    """The playground page and its static files hold no secrets; the page sends the key on every API call."""
    return path == "/" or path.startswith("/static/")


class Unauthorized(VoiceError):
    status_code = 401
    code = "invalid_api_key"


def key_id(key: str) -> str:
    """The label a key is counted under: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def load_api_keys(value: str | None) -> tuple[str, ...]:
    """``API_KEYS`` -> the keys; () when unset. ConfigError for a named file that is missing or empty."""
    if value is None or not value.strip():
        return ()
    text = value.strip()
    path = Path(text).expanduser()
    looks_like_path = text.startswith(("/", "./", "../", "~"))
    if looks_like_path or path.is_file():
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"API_KEYS={text!r}: cannot read the key file ({exc})") from exc
        keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not keys:
            raise ConfigError(f"API_KEYS={text!r}: the key file holds no key (one per line)")
    else:
        keys = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(dict.fromkeys(keys))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    if scope["type"] == "websocket":  # browsers cannot set headers on a WebSocket: the key may be a query parameter
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key == "api_key" and value.strip():
                return value.strip()
    return None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, keys: tuple[str, ...], metrics: ApiMetrics) -> None:
        if not keys:
            raise ValueError("ApiKeyMiddleware needs at least one key")
        self.app = app
        self.metrics = metrics
        self._digests = [(hashlib.sha256(key.encode()).digest(), key_id(key)) for key in keys]

    def _match(self, token: str | None) -> str | None:
        given = hashlib.sha256((token or "").encode()).digest()
        found = None
        for digest, ident in self._digests:  # no early exit: the time taken says nothing about which key
            if hmac.compare_digest(given, digest) and found is None:
                found = ident
        return found if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or _is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        ident = self._match(token)
        if ident is None:
            self.metrics.auth_failures.inc()
            reason = "the API key is not valid" if token else "this server needs an API key"
            error = Unauthorized(f"{reason}: send 'Authorization: Bearer <key>' with a key from API_KEYS")
            body = json.dumps(error_payload(scope["path"], error)).encode()
            if scope["type"] == "websocket":
                await self._refuse_websocket(scope, receive, send, body)
                return
            await _send_unauthorized(send, "http.response", body)
            return
        self.metrics.key_requests.labels(ident).inc()
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """Refuse the handshake: a 401 with the JSON error where the server can send one, else a 403."""
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await _send_unauthorized(send, "websocket.http.response", body)
            return
        await send({"type": "websocket.close", "code": 1008})


async def _send_unauthorized(send: Send, message_type: str, body: bytes) -> None:
    """The 401 with its JSON body; ``message_type`` is the ASGI response's (``http.response`` or, for a
    refused WebSocket handshake, the ``websocket.http.response`` extension), which differ in nothing else."""
    await send({
        "type": f"{message_type}.start", "status": 401,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="voice-service"')],
    })
    await send({"type": f"{message_type}.body", "body": body})
