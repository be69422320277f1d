"""The TensorRT-LLM alternative for the LLM step: request tensors for the ``tensorrt_llm`` model and
token parsing with the tokenizer alone (no SparkLM in that process)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sparktts import prompts
from sparktts.llm import GenerationParams


def semantic_lookup(tokenizer) -> Callable[[int], int | None]:
    """One generated id -> its semantic code or None, from the tokenizer's vocabulary (for the
    TensorRT-LLM path, which has no SparkLM; SparkLM.semantic_index does the same).
    """
    ids = tokenizer.convert_tokens_to_ids([prompts.semantic_token(i) for i in range(prompts.NUM_SEMANTIC_CODES)])
    unknown = tokenizer.unk_token_id
    table = {int(token_id): code for code, token_id in enumerate(ids) if token_id is not None and token_id != unknown}
    if len(table) != prompts.NUM_SEMANTIC_CODES:
        raise ValueError(f"the LLM tokenizer lacks {prompts.NUM_SEMANTIC_CODES - len(table)} bicodec semantic tokens")
    return table.get


def tokenizer_semantic_ids(tokenizer) -> Callable[[Sequence[int]], list[int]]:
    """The official parse (decode with skip_special_tokens, then regex), for the TensorRT-LLM path."""
    return lambda ids: prompts.parse_semantic_tokens(tokenizer.decode(list(ids), skip_special_tokens=True))


def tensorrt_llm_inputs(
    input_ids: Sequence[int], params: GenerationParams, *, end_id: int, pad_id: int, streaming: bool
) -> dict[str, np.ndarray]:
    """The ``tensorrt_llm`` model's inputs for one prompt (batch dimension 1), as the official BLS
    sends them, plus the request's seed when it has one.
    """
    ids = np.asarray(list(input_ids), dtype=np.int32).reshape(1, -1)
    inputs = {
        "input_ids": ids,
        "input_lengths": np.array([[ids.shape[1]]], dtype=np.int32),
        "request_output_len": np.array([[params.max_new_tokens]], dtype=np.int32),
        "end_id": np.array([[end_id]], dtype=np.int32),
        "pad_id": np.array([[pad_id]], dtype=np.int32),
        "streaming": np.array([[streaming]], dtype=np.bool_),
        "runtime_top_k": np.array([[params.top_k if params.do_sample else 1]], dtype=np.int32),
        "runtime_top_p": np.array([[params.top_p]], dtype=np.float32),
        "temperature": np.array([[params.temperature]], dtype=np.float32),
    }
    if params.seed is not None:
        inputs["random_seed"] = np.array([[params.seed]], dtype=np.uint64)
    return inputs


def generated_ids(output_ids: np.ndarray, sequence_length: np.ndarray) -> list[int]:
    """One ``tensorrt_llm`` response -> its new ids: ``output_ids`` (1, beams, T) int32 cut to the
    first beam's ``sequence_length`` (1, beams), as the official BLS reads it (the input is excluded
    by ``exclude_input_in_output``; streaming responses carry only the newest ids)."""
    ids = np.asarray(output_ids).reshape(np.shape(output_ids)[0], -1, np.shape(output_ids)[-1])
    return ids[0, 0, : int(np.asarray(sequence_length).reshape(-1)[0])].tolist()
