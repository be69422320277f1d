"""Wake the models for requests that need them (idle unload, ``IDLE_UNLOAD_S``); installed only when it is on.

Each request to a route in ``MODEL_ROUTES`` is held in flight for its whole response (streams and
WebSockets included), so the idle timer never unloads under it. When the models were unloaded,
the request first waits for them to load, before its route runs: the wait is known before any
header goes out, so ``X-Model-Load-Seconds`` tells the client what the cold start cost it (also
on the WebSocket's accept). A load that fails answers 503 with Retry-After (a WebSocket closes
with 1013, try again later). Health, status, metrics, config and voice routes neither wake the
models nor keep them loaded: a probe every few seconds must not keep a gateway warm.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rvc.api.middleware import error_payload
from rvc.errors import VoiceError

__all__ = ["LOAD_HEADER", "MODEL_ROUTES", "IdleWakeMiddleware", "needs_models"]

LOAD_HEADER = "x-model-load-seconds"
# The routes that run Spark-TTS or RVC; everything else (health, status, voices, config) runs without them.
MODEL_ROUTES = ("/synthesize", "/tts", "/rvc", "/v1/audio/speech", "/ws/synthesize")


def needs_models(path: str) -> bool:
    return any(path == route or path.startswith(route + "/") for route in MODEL_ROUTES)


class IdleWakeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        idle = getattr(getattr(scope["app"].state, "services", None), "idle", None) if "app" in scope else None
        if scope["type"] not in ("http", "websocket") or idle is None or not needs_models(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            holding = idle.hold()
            waited = await holding.__aenter__()
        except VoiceError as exc:
            await _refuse(scope, send, exc)
            return
        try:
            await self.app(scope, receive, _with_load_header(send, waited) if waited > 0 else send)
        finally:
            await holding.__aexit__(None, None, None)


def _with_load_header(send: Send, waited_s: float) -> Send:
    value = f"{waited_s:.3f}".encode()

    async def send_with_header(message: Message) -> None:
        if message["type"] in ("http.response.start", "websocket.accept"):
            message["headers"] = [*message.get("headers", []), (LOAD_HEADER.encode(), value)]
        await send(message)

    return send_with_header


async def _refuse(scope: Scope, send: Send, error: VoiceError) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": error.message[:120]})
        return
    body = json.dumps(error_payload(scope.get("path", ""), error)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, round(error.retry_after_s))).encode()))
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
