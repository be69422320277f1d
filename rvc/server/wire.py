"""Errors and conversion parameters as plain data, for pipes and sockets.

Workers and the daemon send errors as ``{"type", "message", "field",
"retry_after_s"}`` and the receiving side rebuilds the project exception of
that name. An exception from outside the tree (a bug, a torch error on odd
input) becomes a plain ``VoiceError`` whose message names the original type:
the job fails, the process that raised it lives on.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from rvc import errors
from rvc.errors import InvalidInput, VoiceError

if TYPE_CHECKING:
    from rvc.infer.converter import ConversionParams

__all__ = ["error_from_dict", "error_to_dict", "params_from_dict", "params_to_dict"]

_ERROR_TYPES: dict[str, type[VoiceError]] = {
    name: getattr(errors, name)
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), VoiceError)
}
_MAX_MESSAGE_CHARS = 2000


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` for the other side; non-project errors are labelled VoiceError."""
    if isinstance(exc, VoiceError):
        type_name = type(exc).__name__ if type(exc).__name__ in _ERROR_TYPES else _nearest_known(exc)
        message = exc.message
        field = exc.field
    else:
        type_name = "VoiceError"
        message = f"conversion failed: {type(exc).__name__}: {exc}"
        field = None
    data: dict[str, Any] = {"type": type_name, "message": message[:_MAX_MESSAGE_CHARS], "field": field}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        data["retry_after_s"] = float(retry_after)
    return data


def _nearest_known(exc: VoiceError) -> str:
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERROR_TYPES and _ERROR_TYPES[cls.__name__] is cls:
            return cls.__name__
    return "VoiceError"


def error_from_dict(data: dict[str, Any]) -> VoiceError:
    """Rebuild the project exception described by ``error_to_dict``."""
    cls = _ERROR_TYPES.get(str(data.get("type")), VoiceError)
    message = str(data.get("message", "unknown error"))
    if issubclass(cls, errors.Busy):
        return cls(message, retry_after_s=float(data.get("retry_after_s", 1.0)))
    field = data.get("field")
    return cls(message, field=None if field is None else str(field))


def params_to_dict(params: ConversionParams) -> dict[str, Any]:
    return dataclasses.asdict(params)


def params_from_dict(data: dict[str, Any] | None) -> ConversionParams:
    """ConversionParams from JSON; unknown names or wrong types are InvalidInput."""
    from rvc.infer.converter import ConversionParams

    if data is None:
        return ConversionParams()
    if not isinstance(data, dict):
        raise InvalidInput("params must be a JSON object", field="params")
    known = {f.name for f in dataclasses.fields(ConversionParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"unknown conversion parameters {unknown}; known: {sorted(known)}", field="params")
    try:
        params = ConversionParams(**data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad conversion parameters: {exc}", field="params") from exc
    params.validate()
    return params
