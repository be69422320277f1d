"""The Spark LLM decoded by ONNX Runtime: the engine computes logits, our code does the rest.

ONNX Runtime GenAI's int8 export was the fastest path of the bake-off (``docs/llm_engines.md``)
whose logits keep cosine >= 0.999 against float32. GenAI converts the checkpoint
(``sparktts.onnx_export``); ONNX Runtime runs the graph (``sparktts.onnx_decoder``), as a logits
engine only: a prefill runs a row's prompt, a step feeds every row the id that *our* ``RowSampler``
drew and returns every row's next scores in one run. So sampling (temperature / top-k / top-p and
seeded draws, bit for bit as the torch path's), the token budget, the control grammar, the official
token parse (``SparkVocabulary``), cancellation and the streaming chunk schedule are the torch
path's code, whatever engine computes the logits.

``OnnxBatch`` is ``sparktts.llm_batch.ContinuousBatch``'s interface (``join`` / ``step`` /
``leave``), so ``sparktts.serving.stream_batcher.StreamBatcher`` steps ONNX rows with the same decode
thread: a request that arrives while others decode joins at the next step, and the rows of a step
share one run of the graph (the weights are read once for all of them). GenAI's own generator could
not do that: it batches only sequences that start together.

The tokenizer, stop ids and vocabulary come from the official ``LLM/`` folder, read by
``sparktts.llm_folder`` without transformers (the same ids as torch's, one import less at every
python-backend stub start).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from sparktts.decode_rows import RowBatch, RowSampler, RowToken
from sparktts.generation import GenerationParams
from sparktts.llm_folder import LLMFolder, SparkTokenizer
from sparktts.llm_vocab import SparkVocabulary
from sparktts.onnx_decoder import Head, KVSlots, OnnxDecoder

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
    """An exported Spark LLM (ONNX Runtime) + the official tokenizer; ``SparkLM``'s decode API.

    ``generate`` / ``stream`` / ``generate_batch`` return generated ids only (stop id included), as
    ``SparkLM``'s do.
    """

    def __init__(self, decoder: OnnxDecoder, tokenizer: SparkTokenizer, *, stop_ids: Sequence[int], pad_id: int,
                 vocab_rows: int) -> None:
        super().__init__(tokenizer, stop_ids=stop_ids, pad_id=pad_id, vocab_rows=vocab_rows)
        self.decoder = decoder

    @classmethod
    def from_pretrained(cls, llm_dir: str | Path, onnx_dir: str | Path, *, threads: int | None = None) -> OnnxSparkLM:
        """llm_dir: the official ``LLM/`` folder (tokenizer, config); onnx_dir: its export.

        threads: the engine's intra-op threads (None: ONNX Runtime's default, one per core).
        """
        llm_dir, onnx_dir = Path(llm_dir), Path(onnx_dir)
        decoder = OnnxDecoder.load(onnx_dir, threads=threads)
        folder = LLMFolder.read(llm_dir)
        lm = cls(decoder, folder.tokenizer, stop_ids=folder.stop_ids, pad_id=folder.pad_id, vocab_rows=folder.vocab_size)
        logger.info("loaded Spark LLM %s through ONNX Runtime from %s (threads %s)", llm_dir, onnx_dir,
                    threads or "default")
        return lm

    def grammar_head(self) -> Head:
        """The head over the grammar's rows only (``restrict_vocab``), built at first use."""
        return self.decoder.rows_head(self.grammar_ids().numpy())

    def open_row(self, input_ids: Sequence[int]) -> OnnxRow:
        """One sequence, its prompt run; its first logits are ready (see ``OnnxRow``)."""
        return OnnxRow(self.decoder, input_ids)

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
    """One sequence decoded alone, id by id (teacher forcing, diagnostics)."""

    def __init__(self, decoder: OnnxDecoder, input_ids: Sequence[int]) -> None:
        self._decoder = decoder
        self._slots = decoder.new_slots()
        self._logits = decoder.prefill(self._slots, self._slots.add(len(input_ids) + 1), input_ids)

    def logits(self) -> torch.Tensor:
        """(1, V) float32 scores of the next position."""
        return torch.from_numpy(self._logits.reshape(1, -1))

    def feed(self, token: int) -> None:
        """Append the id this row drew; ``logits`` then scores the position after it."""
        self._logits = self._decoder.step(self._slots, [token])[0]


class OnnxBatch(RowBatch[OnnxSparkLM]):
    """``ContinuousBatch``'s contract over ONNX rows: join at any step, leave at any step.

    Row ``i`` of the batch is slot ``i`` of its ``KVSlots``; each row waits with the id it drew last,
    which the next step feeds. Not thread-safe: one thread owns it. restrict_vocab: rows score only
    the grammar rows (``-inf`` elsewhere), as ``SparkLM``'s restricted head does, with a head cut to
    those rows (``OnnxSparkLM.grammar_head``): the same scores on them (to float rounding), a fourteenth of
    the head's work.
    """

    _slots: KVSlots
    _rows: list[tuple[int, RowSampler]]  # (key, sampler) per slot, in batch order
    _pending: list[int]  # per slot: the id the row drew last, fed at the next step
    _head: Head | None = None  # restrict_vocab's grammar head, built at the first join (None: the full head)
    _head_ids: torch.Tensor | None = None  # its vocabulary ids

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def keys(self) -> list[int]:
        return [key for key, _sampler in self._rows]

    def join(self, key: int, input_ids: torch.Tensor, params: GenerationParams) -> RowToken:
        """Run input_ids (1, L) int64 as a new row's prompt and draw the row's first id."""
        self._check_new_row(key, params)
        prompt = input_ids.reshape(-1).tolist()
        slot = self._slots.add(len(prompt) + 1)
        try:
            logits = self.lm.decoder.prefill(self._slots, slot, prompt, self._scoring_head())
        except BaseException:
            self._slots.remove(slot)
            raise
        sampler = RowSampler(self.lm, params)
        token = self._draw([key], [sampler], logits.reshape(1, -1))[0]
        if sampler.finished:
            self._slots.remove(slot)
        else:
            self._rows.append((key, sampler))
            self._pending.append(token)
        return RowToken(key, token, sampler.finished)

    def step(self) -> list[RowToken]:
        """Every row's next id, in batch order; finished rows leave."""
        if not self._rows:
            return []
        logits = self.lm.decoder.step(self._slots, self._pending, self._head)
        keys = self.keys
        samplers = [sampler for _key, sampler in self._rows]
        tokens = self._draw(keys, samplers, logits)
        drawn = [RowToken(key, token, sampler.finished)
                 for key, token, sampler in zip(keys, tokens, samplers, strict=True)]
        self._pending = tokens
        for slot in reversed(range(len(drawn))):
            if drawn[slot].last:
                self._drop(slot)
        return drawn

    def leave(self, key: int) -> bool:
        """Drop a row (its consumer is gone); False if it is not in the batch."""
        for slot, (row_key, _sampler) in enumerate(self._rows):
            if row_key == key:
                self._drop(slot)
                return True
        return False

    def clear(self) -> None:
        self._slots = self.lm.decoder.new_slots()
        self._rows = []
        self._pending = []

    def _scoring_head(self) -> Head | None:
        """The grammar head for a restricted batch, built when its first row joins: a batch is made for
        each kind up front (``StreamBatcher``, ``generate_batch``), and most never see a restricted row."""
        if self.restrict_vocab and self._head is None:
            self._head = self.lm.grammar_head()
            self._head_ids = torch.from_numpy(self._head.rows)
        return self._head

    def _drop(self, slot: int) -> None:
        del self._rows[slot], self._pending[slot]
        self._slots.remove(slot)

    def _draw(self, keys: list[int], samplers: list[RowSampler], scores: np.ndarray) -> list[int]:
        if self._head_ids is None:
            logits = torch.from_numpy(scores)
        else:  # the grammar rows' scores into full-vocabulary rows (what the sampler and its seeds expect)
            logits = torch.full((scores.shape[0], self.lm.vocab_rows), float("-inf"))
            logits[:, self._head_ids] = torch.from_numpy(scores)
        self._observe(keys, logits)
        return [sampler.draw(logits[index : index + 1]) for index, sampler in enumerate(samplers)]
