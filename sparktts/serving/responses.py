"""Triton start-up and responses done the same way by every adapter in ``triton/model_repo``.

Triton's ``triton_python_backend_utils`` exists only inside the python backend's stub, so the
adapters pass it in; nothing here imports it, and nothing else in ``sparktts`` touches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparktts.serving.inputs import RequestCancelled, describe_error, forward_logging, token_row, waveform_row
from sparktts.serving.memory import bound_primitive_cache
from sparktts.serving.pipeline import Speech


def start_adapter(pb_utils: Any) -> None:
    """First thing in every adapter's ``initialize``: this package's log records go to Triton's log,
    and oneDNN's primitive cache is bounded before the model's first convolution or matmul
    (``sparktts.serving.memory``), so every model process gets both the same way."""
    forward_logging(pb_utils.Logger.log_info, pb_utils.Logger.log_warn, pb_utils.Logger.log_error)
    bound_primitive_cache()


def error_response(pb_utils: Any, exc: BaseException) -> Any:
    """An error response: INVALID_ARG for a ValueError (the message carries the ``invalid input:``
    prefix clients map to their invalid-input error), CANCELLED for a cancelled request, INTERNAL
    for anything else."""
    if isinstance(exc, RequestCancelled):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError("request cancelled", pb_utils.TritonError.CANCELLED))
    message, invalid = describe_error(exc)
    code = pb_utils.TritonError.INVALID_ARG if invalid else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


def waveform_response(pb_utils: Any, wav: np.ndarray) -> Any:
    """A ``waveform`` (1, T) float32 response from (T,) audio."""
    return pb_utils.InferenceResponse([pb_utils.Tensor("waveform", waveform_row(wav))])


def speech_response(pb_utils: Any, speech: Speech) -> Any:
    """``waveform`` (1, T) float32 and ``global_tokens`` (1, 32) int32 (Triton returns only the
    outputs a client asks for, so the official clients still see the waveform alone)."""
    return pb_utils.InferenceResponse([
        pb_utils.Tensor("waveform", waveform_row(speech.waveform)),
        pb_utils.Tensor("global_tokens", token_row(speech.global_tokens)),
    ])
