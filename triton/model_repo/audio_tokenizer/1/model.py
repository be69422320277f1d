"""Triton adapter: reference clips -> BiCodec global and semantic tokens.

Logic lives in ``sparktts.serving`` (parsing, resampling, batching); this file only moves tensors.
Per request: ``reference_wav`` (1, N) float32 cut to ``reference_wav_len``, optional
``reference_sample_rate`` (16 kHz when absent) -> ``global_tokens`` (1, 32) int32 and
``semantic_tokens`` (1, T) int32. A dynamic batch is tokenized in one call.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import triton_python_backend_utils as pb_utils

from sparktts import serving

error_response = partial(serving.error_response, pb_utils)


def tokens_response(tokens: serving.Tokens) -> pb_utils.InferenceResponse:
    global_tokens, semantic_tokens = tokens
    return pb_utils.InferenceResponse([
        pb_utils.Tensor("global_tokens", serving.token_row(global_tokens)),
        pb_utils.Tensor("semantic_tokens", serving.token_row(semantic_tokens)),
    ])


def parse(request) -> tuple[np.ndarray, int]:
    def get(name: str) -> np.ndarray | None:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return None if tensor is None else tensor.as_numpy()

    return serving.parse_reference(get)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        serving.start_adapter(pb_utils)
        self.tokenizer = serving.load_codec(
            args["model_config"], with_encoder=True, with_decoder=False, instance=args
        )

    def execute(self, requests: list) -> list:
        responses = serving.answer_batch(
            requests, parse, lambda references: serving.tokenize_references(self.tokenizer, references),
            tokens_response, error_response,
        )
        serving.release_freed_memory()
        return responses
