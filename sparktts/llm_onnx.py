"""The Spark LLM decoded by ONNX Runtime GenAI: the engine computes logits, our code does the rest.

ONNX Runtime GenAI int8 was the fastest engine of the bake-off (``docs/llm_engines.md``) whose
logits keep cosine >= 0.999 against float32. It is used here as a logits engine only: each
sequence has its own ``og.Generator`` (its KV cache), ``append_tokens`` feeds it the prompt or the
id that *our* ``RowSampler`` drew, and ``get_logits`` returns the next position's scores. So
sampling (temperature / top-k / top-p and seeded draws, bit for bit as the torch path's), the
token budget, the control grammar, the official token parse (``SparkVocabulary``), cancellation
and the streaming chunk schedule are the torch path's code, whatever engine computes the logits.

``OnnxBatch`` is ``sparktts.llm_batch.ContinuousBatch``'s interface (``join`` / ``step`` /
``leave``) over one generator per row, so ``sparktts.serving.stream_batcher.StreamBatcher`` steps ONNX rows with
the same decode thread: a request that arrives while others decode joins at the next step. The
rows of a step run one after the other on the engine's threads (ONNX Runtime GenAI batches only
sequences that start together in one generator, which a late request cannot).

The model folder comes from ``sparktts.onnx_export.export_llm`` (converted once per checkpoint);
the tokenizer, stop ids and vocabulary come from the official ``LLM/`` folder, read by
``sparktts.llm_folder`` without transformers (the same ids as torch's, one import less at every
python-backend stub start).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparktts.decode_rows import RowBatch, RowSampler, RowToken
from sparktts.errors import CheckpointError
from sparktts.generation import GenerationParams
from sparktts.llm_folder import LLMFolder, SparkTokenizer
from sparktts.llm_vocab import SparkVocabulary

logger = logging.getLogger(__name__)

__all__ = ["OnnxBatch", "OnnxSparkLM", "threads_for_the_engine"]


def threads_for_the_engine() -> int:
    """Give this process's torch threads to the engine: returns torch's count and leaves torch one.

    Between engine runs a decoding process only samples (top-k over one row of scores), yet torch's
    OpenMP workers spin-wait after each op and hold the cores the engine's threads need next. Measured
    at full size on 2 cores (2 engine threads): sampling 24 -> 2 ms per step, decode 16 -> 28 tokens/s
    at batch 1 (the same as ``OMP_WAIT_POLICY=PASSIVE``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


class OnnxSparkLM(SparkVocabulary):
    """An exported Spark LLM (ONNX Runtime GenAI) + the official tokenizer; ``SparkLM``'s decode API.

    ``generate`` / ``stream`` / ``generate_batch`` return generated ids only (stop id included), as
    ``SparkLM``'s do.
    """

    def __init__(self, model: Any, tokenizer: SparkTokenizer, *, stop_ids: Sequence[int], pad_id: int, vocab_rows: int) -> None:
        super().__init__(tokenizer, stop_ids=stop_ids, pad_id=pad_id, vocab_rows=vocab_rows)
        self.model = model

    @classmethod
    def from_pretrained(cls, llm_dir: str | Path, onnx_dir: str | Path, *, threads: int | None = None) -> OnnxSparkLM:
        """llm_dir: the official ``LLM/`` folder (tokenizer, config); onnx_dir: its export.

        threads: the engine's intra-op threads (None: ONNX Runtime's default, one per core).
        """
        import onnxruntime_genai as og

        llm_dir, onnx_dir = Path(llm_dir), Path(onnx_dir)
        if not (onnx_dir / "genai_config.json").is_file():
            raise CheckpointError(f"{onnx_dir} holds no ONNX Runtime GenAI model (genai_config.json)")
        folder = LLMFolder.read(llm_dir)
        config = og.Config(str(onnx_dir))
        if threads is not None:
            options = {"intra_op_num_threads": int(threads), "inter_op_num_threads": 1}
            config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        model = og.Model(config)
        lm = cls(model, folder.tokenizer, stop_ids=folder.stop_ids, pad_id=folder.pad_id, vocab_rows=folder.vocab_size)
        logger.info("loaded Spark LLM %s through ONNX Runtime GenAI from %s (threads %s)", llm_dir, onnx_dir,
                    threads or "default")
        return lm

    def open_row(self, input_ids: Sequence[int], max_new_tokens: int) -> OnnxRow:
        """A generator holding the prompt; its first logits are ready (see ``OnnxRow``)."""
        return OnnxRow(self.model, input_ids, max_new_tokens)

    # ------------------------------------------------------------------ SparkLM's decode API
    def stream(self, prompt: str, params: GenerationParams) -> Iterator[int]:
        """Yield generated ids one by one (the stop id last, if reached), as ``SparkLM.stream``."""
        batch = OnnxBatch(self, restrict_vocab=params.restrict_vocab)
        first = batch.join(0, self.encode(prompt), params)
        yield first.token
        while len(batch):
            yield batch.step()[0].token

    def generate(self, prompt: str, params: GenerationParams) -> list[int]:
        return list(self.stream(prompt, params))

    def generate_batch(
        self, prompts_: Sequence[str], params: GenerationParams | Sequence[GenerationParams]
    ) -> list[list[int]]:
        """Decode several prompts step by step together; each row draws as it would alone."""
        if isinstance(params, GenerationParams):
            params = [params] * len(prompts_)
        if len(params) != len(prompts_):
            raise ValueError(f"got {len(params)} GenerationParams for {len(prompts_)} prompts")
        outputs: list[list[int]] = [[] for _ in prompts_]
        batches = {restrict: OnnxBatch(self, restrict_vocab=restrict) for restrict in (False, True)}
        for row, (prompt, row_params) in enumerate(zip(prompts_, params, strict=True)):
            outputs[row].append(batches[row_params.restrict_vocab].join(row, self.encode(prompt), row_params).token)
        for batch in batches.values():
            while len(batch):
                for drawn in batch.step():
                    outputs[drawn.key].append(drawn.token)
        return outputs


class OnnxRow:
    """One sequence's ``og.Generator``: prefilled with the prompt, then fed one drawn id per step.

    Its KV buffer holds ``len(prompt) + max_new_tokens`` positions (allocated up front by the
    engine), exactly what the budget can use: the last drawn id is never fed back.
    """

    def __init__(self, model: Any, input_ids: Sequence[int], max_new_tokens: int) -> None:
        import onnxruntime_genai as og

        prompt = np.asarray(input_ids, dtype=np.int32).reshape(1, -1)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=prompt.shape[1] + max_new_tokens, batch_size=1)
        self._generator = og.Generator(model, params)
        self._generator.append_tokens(prompt)

    def logits(self) -> torch.Tensor:
        """(1, V) float32 scores of the next position (a copy the engine does not reuse)."""
        return torch.from_numpy(np.array(self._generator.get_logits(), dtype=np.float32).reshape(1, -1))

    def feed(self, token: int) -> None:
        """Append the id this row drew; ``logits`` then scores the position after it."""
        self._generator.append_tokens(np.array([[token]], dtype=np.int32))


class OnnxBatch(RowBatch[OnnxSparkLM]):
    """``ContinuousBatch``'s contract over ONNX rows: join at any step, leave at any step.

    Not thread-safe: one thread owns it. restrict_vocab: rows score only the grammar rows
    (``-inf`` elsewhere), as ``SparkLM``'s restricted head does; the engine still computes the
    full head.
    """

    _rows: dict[int, tuple[OnnxRow, RowSampler]]  # insertion order = batch order
    _outside: torch.Tensor | None = None  # the vocabulary rows outside the grammar, built at first use

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def keys(self) -> list[int]:
        return list(self._rows)

    def join(self, key: int, input_ids: torch.Tensor, params: GenerationParams) -> RowToken:
        """Prefill input_ids (1, L) int64 in a new generator and draw the row's first id."""
        self._check_new_row(key, params)
        row = self.lm.open_row(input_ids.reshape(-1).tolist(), params.max_new_tokens)
        sampler = RowSampler(self.lm, params)
        token = self._draw([key], [(row, sampler)])[0]
        if not sampler.finished:
            row.feed(token)
            self._rows[key] = (row, sampler)
        return RowToken(key, token, sampler.finished)

    def step(self) -> list[RowToken]:
        """Every row's next id, in batch order; finished rows leave."""
        if not self._rows:
            return []
        keys = list(self._rows)
        entries = list(self._rows.values())
        tokens = self._draw(keys, entries)
        drawn = [RowToken(key, token, sampler.finished)
                 for key, token, (_row, sampler) in zip(keys, tokens, entries, strict=True)]
        for item, (row, _sampler) in zip(drawn, entries, strict=True):
            if item.last:
                del self._rows[item.key]
            else:
                row.feed(item.token)
        return drawn

    def leave(self, key: int) -> bool:
        """Drop a row (its consumer is gone); False if it is not in the batch."""
        return self._rows.pop(key, None) is not None

    def clear(self) -> None:
        self._rows = {}

    def _draw(self, keys: list[int], entries: list[tuple[OnnxRow, RowSampler]]) -> list[int]:
        logits = torch.cat([row.logits() for row, _sampler in entries])
        if self.restrict_vocab:
            logits = logits.masked_fill(self._outside_grammar(), float("-inf"))
        self._observe(keys, logits)
        return [sampler.draw(logits[index : index + 1]) for index, (_row, sampler) in enumerate(entries)]

    def _outside_grammar(self) -> torch.Tensor:
        if self._outside is None:
            outside = torch.ones(self.lm.vocab_rows, dtype=torch.bool)
            outside[self.lm.grammar_ids()] = False
            self._outside = outside
        return self._outside
