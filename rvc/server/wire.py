"""Errors and conversion parameters as plain data, for pipes and sockets.

Workers report a failure as an ``ErrorReport`` (a frozen dataclass carried
by the pipe messages in messages.py); the daemon sends the same fields as a
JSON object ``{"type", "message", "field", "retry_after_s"}``. The receiving
side rebuilds the project exception of that name. An exception from outside
the tree (a bug, a torch error on odd input) becomes a plain ``VoiceError``
whose message names the original type: the job fails, the process that
raised it lives on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rvc import errors
from rvc.errors import InvalidInput, VoiceError
from rvc.infer.params import ConversionParams

__all__ = ["ErrorReport", "error_from_dict", "error_to_dict", "params_from_dict", "params_to_dict"]

_ERROR_TYPES: dict[str, type[VoiceError]] = {
    name: getattr(errors, name)
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), VoiceError)
}
_MAX_MESSAGE_CHARS = 2000


def _nearest_known(exc: VoiceError) -> str:
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERROR_TYPES and _ERROR_TYPES[cls.__name__] is cls:
            return cls.__name__
    return "VoiceError"


@dataclass(frozen=True)
class ErrorReport:
    """A project exception as data: its class name in ``rvc.errors``, message, field, retry hint."""

    type: str
    message: str
    field: str | None = None
    retry_after_s: float | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorReport:
        """Describe ``exc`` for the other side; non-project errors are labelled VoiceError."""
        if isinstance(exc, VoiceError):
            type_name = type(exc).__name__ if type(exc).__name__ in _ERROR_TYPES else _nearest_known(exc)
            message, field = exc.message, exc.field
        else:
            type_name = "VoiceError"
            message, field = f"conversion failed: {type(exc).__name__}: {exc}", None
        retry_after = getattr(exc, "retry_after_s", None)
        return cls(
            type=type_name,
            message=message[:_MAX_MESSAGE_CHARS],
            field=field,
            retry_after_s=None if retry_after is None else float(retry_after),
        )

    def to_exception(self) -> VoiceError:
        """The project exception this report describes."""
        cls = _ERROR_TYPES.get(self.type, VoiceError)
        if issubclass(cls, errors.Busy):
            return cls(self.message, retry_after_s=1.0 if self.retry_after_s is None else self.retry_after_s)
        return cls(self.message, field=self.field)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "message": self.message, "field": self.field}
        if self.retry_after_s is not None:
            data["retry_after_s"] = self.retry_after_s
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorReport:
        field = data.get("field")
        retry_after = data.get("retry_after_s")
        return cls(
            type=str(data.get("type")),
            message=str(data.get("message", "unknown error")),
            field=None if field is None else str(field),
            retry_after_s=None if retry_after is None else float(retry_after),
        )


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """``exc`` as the daemon's JSON error object."""
    return ErrorReport.from_exception(exc).to_dict()


def error_from_dict(data: dict[str, Any]) -> VoiceError:
    """Rebuild the project exception described by ``error_to_dict``."""
    return ErrorReport.from_dict(data).to_exception()


def params_to_dict(params: ConversionParams) -> dict[str, Any]:
    return dataclasses.asdict(params)


def params_from_dict(data: dict[str, Any] | None) -> ConversionParams:
    """ConversionParams from JSON; unknown names are InvalidInput.

    Ranges are not checked here: the daemon hands the result to ``RVCServer.submit``, which
    validates every job once where it enters the pool.
    """
    if data is None:
        return ConversionParams()
    if not isinstance(data, dict):
        raise InvalidInput("params must be a JSON object", field="params")
    known = {f.name for f in dataclasses.fields(ConversionParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"unknown conversion parameters {unknown}; known: {sorted(known)}", field="params")
    return ConversionParams(**data)
