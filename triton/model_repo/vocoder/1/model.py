"""Triton adapter: BiCodec global + semantic tokens -> 16 kHz waveform.

Logic lives in ``sparktts.serving``; this file only moves tensors. Per request:
``global_tokens`` (1, 32) int32 and ``semantic_tokens`` (1, T) int32 -> ``waveform`` (1, 320 * T)
float32. Each request of a dynamic batch is decoded alone, so its samples never depend on the
others (``sparktts.serving.vocode_batch`` says why).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import triton_python_backend_utils as pb_utils

from sparktts import serving

error_response = partial(serving.error_response, pb_utils)
waveform_response = partial(serving.waveform_response, pb_utils)


def parse(request) -> tuple[np.ndarray, np.ndarray]:
    return serving.check_tokens(
        pb_utils.get_input_tensor_by_name(request, "global_tokens").as_numpy(),
        pb_utils.get_input_tensor_by_name(request, "semantic_tokens").as_numpy(),
    )


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        serving.start_adapter(pb_utils)
        self.tokenizer = serving.load_codec(
            args["model_config"], with_encoder=False, with_decoder=True, instance=args
        )

    def execute(self, requests: list) -> list:
        responses = serving.answer_batch(
            requests, parse, lambda items: serving.vocode_batch(self.tokenizer, items), waveform_response, error_response,
        )
        serving.release_freed_memory()
        return responses
