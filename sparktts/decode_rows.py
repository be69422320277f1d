"""The per-row half of a decode batch, shared by every LLM engine: the row's sampler and the batch contract.

Kept apart from ``sparktts.llm`` (torch + transformers' Qwen2 model) so that an engine that only
needs logits in and ids out (``sparktts.llm_onnx``) loads without the torch model code: in a
Triton stub that import was ~3 CPU seconds of each (re)start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import torch

from sparktts.generation import GenerationParams
from sparktts.llm_vocab import SparkVocabulary
from sparktts.sampling import sample_row

__all__ = ["DecodeBatch", "LogitsHook", "RowBatch", "RowSampler", "RowToken"]


class RowSampler:
    """One row's draws through a decode loop: its generator, its grammar state, how many it drew.

    Kept per row, apart from the batch, so that a seeded row draws the same numbers in any batch,
    joined at any step (``sparktts.llm_batch``), as it would alone.
    """

    def __init__(self, lm: SparkVocabulary, params: GenerationParams) -> None:
        self.params = params
        self.generator = None if params.seed is None else torch.Generator(device=lm.device).manual_seed(params.seed)
        self.grammar = lm.control_grammar() if params.control_grammar else None
        self.drawn = 0
        self.finished = False  # it drew a stop id or its max_new_tokens-th token
        self._stop = frozenset(lm.stop_ids)

    def draw(self, logits: torch.Tensor) -> int:
        """logits: (1, V) float32, this row's scores for its next position -> the id it samples."""
        p, grammar = self.params, self.grammar
        if grammar is not None:
            logits = grammar.constrain(logits)
        token = sample_row(logits, do_sample=p.do_sample, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                           generator=self.generator)
        if grammar is not None:
            grammar.advance(token)
        self.drawn += 1
        self.finished = token in self._stop or self.drawn >= p.max_new_tokens
        return token


@dataclass(frozen=True)
class RowToken:
    """One id drawn for one row; ``last`` when the row has finished with it (and left the batch)."""

    key: int
    token: int
    last: bool


class DecodeBatch(Protocol):
    """What a decode thread steps (``ContinuousBatch`` here, ``sparktts.llm_onnx.OnnxBatch``):
    rows join with their prompt and draw their first id, each step draws every row's next id."""

    def __len__(self) -> int: ...

    def join(self, key: int, input_ids: torch.Tensor, params: GenerationParams) -> RowToken: ...

    def step(self) -> list[RowToken]: ...

    def leave(self, key: int) -> bool: ...

    def clear(self) -> None: ...


LogitsHook = Callable[[Sequence[int], torch.Tensor], None]
_LM = TypeVar("_LM")


class RowBatch(ABC, Generic[_LM]):
    """What every ``DecodeBatch`` here shares: its model, the one kind of logits projection its rows
    use (``restrict_vocab``: a step projects every row the same way) and the diagnostics hook.

    on_logits: called with the row keys and their (rows, V) float32 logits before each draw: once
    per join (its prefill) and once per step. A subclass's ``clear`` sets up its empty state, also
    at construction.
    """

    def __init__(self, lm: _LM, *, restrict_vocab: bool = False, on_logits: LogitsHook | None = None) -> None:
        self.lm = lm
        self.restrict_vocab = restrict_vocab
        self._on_logits = on_logits
        self.clear()

    @property
    @abstractmethod
    def keys(self) -> list[int]:
        """The rows decoding, in batch order."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every row and set up the empty state (also at construction)."""

    def _check_new_row(self, key: int, params: GenerationParams) -> None:
        if key in self.keys:
            raise ValueError(f"row {key} is already decoding")
        if params.restrict_vocab != self.restrict_vocab:
            raise ValueError(f"a batch with restrict_vocab={self.restrict_vocab} cannot take a row with "
                             f"restrict_vocab={params.restrict_vocab} (they need different logits projections)")

    def _observe(self, keys: Sequence[int], logits: torch.Tensor) -> None:
        if self._on_logits is not None:
            self._on_logits(keys, logits)
