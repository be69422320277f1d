"""The TensorRT-LLM alternative for the LLM step: request tensors for the ``tensorrt_llm`` model,
token parsing with the tokenizer alone (no SparkLM in that process), and ``TensorRTLLM``, which
puts them together behind an injected request executor (BLS in Triton, a plain callable in tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sparktts import prompts
from sparktts.generation import GenerationParams


def semantic_lookup(tokenizer: Any, *, kind: str = "semantic") -> Callable[[int], int | None]:
    """One generated id -> its semantic (``kind="global"``: global) code or None, from the tokenizer's
    vocabulary (for the TensorRT-LLM path, which has no SparkLM; SparkLM.semantic_index does the same).
    """
    name, count = ((prompts.semantic_token, prompts.NUM_SEMANTIC_CODES) if kind == "semantic"
                   else (prompts.global_token, prompts.NUM_GLOBAL_CODES))
    ids = tokenizer.convert_tokens_to_ids([name(i) for i in range(count)])
    unknown = tokenizer.unk_token_id
    table = {int(token_id): code for code, token_id in enumerate(ids) if token_id is not None and token_id != unknown}
    if len(table) != count:
        raise ValueError(f"the LLM tokenizer lacks {count - len(table)} bicodec {kind} tokens")
    return table.get


def tokenizer_semantic_ids(tokenizer: Any, *, kind: str = "semantic") -> Callable[[Sequence[int]], list[int]]:
    """The official parse (decode with skip_special_tokens, then regex), for the TensorRT-LLM path."""
    parse = prompts.parse_semantic_tokens if kind == "semantic" else prompts.parse_global_tokens
    return lambda ids: parse(tokenizer.decode(list(ids), skip_special_tokens=True))


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


# One call to the ``tensorrt_llm`` model: (its input tensors, use the decoupled API) -> each
# response's output tensors ({"output_ids", "sequence_length"}), empty final responses left out.
# In Triton it is a BLS request; an error response is raised as an exception.
RequestExecutor = Callable[[dict[str, np.ndarray], bool], Iterable[dict[str, np.ndarray]]]


class TensorRTLLM:
    """The LLM step through the ``tensorrt_llm`` model: the ``generate`` / ``stream`` /
    ``semantic_ids`` / ``semantic_index`` parts ``SpeechPipeline`` takes, with only the tokenizer
    in this process.

    ``execute`` sends one request (see ``RequestExecutor``); ``decoupled`` says whether the
    ``tensorrt_llm`` model is decoupled, which makes even a non-streaming request go through the
    decoupled API (Triton refuses the plain one there). A batch's prompts run as concurrent
    requests (``workers`` at a time): TensorRT-LLM batches them in flight.
    """

    def __init__(self, tokenizer: Any, execute: RequestExecutor, *, decoupled: bool, workers: int = 4) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.tokenizer = tokenizer
        self.end_id = int(tokenizer.eos_token_id)
        self.pad_id = self.end_id if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
        self.semantic_ids = tokenizer_semantic_ids(tokenizer)
        self.semantic_index = semantic_lookup(tokenizer)
        # Controllable TTS without the grammar (TensorRT-LLM samples freely): the official parse, which
        # fails the request when the LLM writes other than 32 global tokens.
        self.global_ids = tokenizer_semantic_ids(tokenizer, kind="global")
        self.global_index = semantic_lookup(tokenizer, kind="global")
        self._execute, self._decoupled = execute, decoupled
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trtllm")

    @classmethod
    def from_pretrained(cls, llm_dir: str, execute: RequestExecutor, *, decoupled: bool, workers: int = 4) -> TensorRTLLM:
        """llm_dir: the checkpoint's ``LLM`` folder (only its tokenizer is read)."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(llm_dir), execute, decoupled=decoupled, workers=workers)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def inputs(self, prompt: str, params: GenerationParams, streaming: bool) -> dict[str, np.ndarray]:
        ids = self.tokenizer([prompt])["input_ids"][0]
        return tensorrt_llm_inputs(ids, params, end_id=self.end_id, pad_id=self.pad_id, streaming=streaming)

    def _ids(self, prompt: str, params: GenerationParams, streaming: bool) -> Iterator[int]:
        for outputs in self._execute(self.inputs(prompt, params, streaming), self._decoupled or streaming):
            yield from generated_ids(outputs["output_ids"], outputs["sequence_length"])

    def generate_one(self, prompt: str, params: GenerationParams) -> list[int]:
        return list(self._ids(prompt, params, False))

    def generate(self, prompts_: list[str], params: list[GenerationParams]) -> list[list[int]]:
        """Generated ids per prompt (stop id included), in order; the first failure is raised."""
        if len(prompts_) != len(params):
            raise ValueError(f"got {len(params)} GenerationParams for {len(prompts_)} prompts")
        return list(self._pool.map(self.generate_one, prompts_, params))

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[int]:
        """Ids as ``tensorrt_llm`` streams them (each response carries only its newest ids)."""
        return self._ids(prompt, params, True)
