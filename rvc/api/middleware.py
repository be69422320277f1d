"""ASGI middleware: a request id on every request, the request header limit and the upload size limit.

Errors answered from here use the route family's shape: OpenAI's
``{"error": {"message", "type", "param", "code"}}`` under ``/v1/``, the
service's envelope everywhere else (``error_payload``).

Request headers over ``MAX_HEADER_BYTES`` in all get 431 in the JSON
envelope. The HTTP server must let such a head through to the app
(``HTTP_HEAD_BUFFER_BYTES`` for uvicorn's h11), or it answers a plain-text
400 itself.

The size limit is enforced while the body streams in, before the multipart
parser spools it anywhere: a declared Content-Length over the limit is refused
at once, and a chunked body is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import abc
import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rvc.errors import HeaderTooLarge, PayloadTooLarge, VoiceError
from rvc.logging_setup import request_id_var

__all__ = [
    "HTTP_HEAD_BUFFER_BYTES",
    "MAX_HEADER_BYTES",
    "OPENAI_PREFIX",
    "BodyLimitMiddleware",
    "HeaderLimitMiddleware",
    "RequestIdMiddleware",
    "error_payload",
    "openai_error",
]

OPENAI_PREFIX = "/v1/"
MAX_HEADER_BYTES = 8192  # all request headers together, as nginx's default header buffer
HTTP_HEAD_BUFFER_BYTES = 65536  # what the server must accept so the app, not the server, answers 431


def openai_error(error: VoiceError) -> dict[str, Any]:
    """OpenAI's error object: 5xx are ``server_error``, 401 ``authentication_error``, other 4xx invalid requests."""
    if error.status_code >= 500:
        kind = "server_error"
    elif error.status_code == 401:
        kind = "authentication_error"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": error.message, "type": kind, "param": error.field, "code": error.code}}


def error_payload(path: str, error: VoiceError) -> dict[str, Any]:
    if path.startswith(OPENAI_PREFIX):
        return openai_error(error)
    return {"error": error.to_dict(), "request_id": request_id_var.get()}


class _HttpMiddleware(abc.ABC):
    """Hands HTTP requests to ``handle``; lifespan and WebSocket scopes pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abc.abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request: the subclass's own behaviour, which calls ``self.app`` to go on."""


class RequestIdMiddleware(_HttpMiddleware):
    """Take X-Request-ID from the client (when sane) or make one; log lines and responses carry it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and len(given) <= 64 and given.isprintable() else uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class HeaderLimitMiddleware(_HttpMiddleware):
    """Answer 431 in the route family's error shape when the request headers are over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))
        if size <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        error = HeaderTooLarge(
            f"the request headers are {size} bytes; the limit is {self.max_bytes}: send fewer or shorter headers "
            "(cookies, tokens)"
        )
        await _send_json(send, error, error_payload(scope.get("path", ""), error))


async def _send_json(send: Send, error: VoiceError, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware(_HttpMiddleware):
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        over_limit = False
        forwarded = False

        async def limited_receive() -> Message:
            # Past the limit the app is told the client left: it stops reading and unwinds.
            nonlocal seen, over_limit
            if over_limit:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over_limit = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal forwarded
            if over_limit and not forwarded:
                return  # the app's answer to the fake disconnect is replaced by the 413 below
            forwarded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over_limit:
                raise
        if over_limit and not forwarded:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(
            f"the request body is over the {self.max_bytes / 1048576:g} MB upload limit (MAX_UPLOAD_MB); "
            "send a shorter or compressed clip"
        )
        await _send_json(send, error, error_payload(scope.get("path", ""), error))
