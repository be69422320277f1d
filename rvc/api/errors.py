"""One JSON error envelope for every failure the gateway returns.

``{"error": {"code", "message", "field", "status"}, "request_id"}``: the
project's ``VoiceError`` tree maps by its ``status_code``; FastAPI's own
validation errors become 400 ``invalid_input`` with the offending field
named; anything else is a bug, logged with its traceback and answered 500
without internals.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rvc.errors import InvalidInput, VoiceError
from rvc.logging_setup import request_id_var

__all__ = ["describe_validation", "error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)


def error_response(error: VoiceError) -> JSONResponse:
    headers = {"X-Request-ID": request_id_var.get()}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return JSONResponse(
        status_code=error.status_code,
        content={"error": error.to_dict(), "request_id": request_id_var.get()},
        headers=headers,
    )


# pydantic's wording, rewritten where it does not say what to send instead
_MESSAGES = {"finite_number": "must be a finite number"}


def _non_finite(value: object) -> bool:
    """NaN or an infinity, as a number or as form text ("nan", "-inf"): refused whatever the field's type."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    """One message naming each offending field once, and the first field, from FastAPI's validation errors."""
    messages: list[str] = []
    first_field: str | None = None
    for item in exc.errors():
        location = list(item.get("loc", ()))
        if item.get("type") == "json_invalid":
            position = location[-1] if location and isinstance(location[-1], int) else 0
            return f"body is not valid JSON (at character {position})", None
        named = [str(part) for part in location if part not in ("body", "query", "form", "path", "header")]
        field = ".".join(named) or None
        first_field = first_field or field
        kind = "finite_number" if _non_finite(item.get("input")) else str(item.get("type"))
        text = _MESSAGES.get(kind, str(item.get("msg")))
        messages.append(f"{field}: {text}" if field else text)
    return "; ".join(messages) or "invalid request", first_field


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoiceError)
    async def voice_error(request: Request, exc: VoiceError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = describe_validation(exc)
        return error_response(InvalidInput(message, field=field))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = VoiceError(str(exc.detail))
        error.status_code = exc.status_code
        error.code = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(VoiceError("internal error; the request id identifies it in the server log"))
