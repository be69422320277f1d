"""The output grammar of controllable TTS, enforced while decoding.

After a control prompt the model writes the voice it invents and then the speech:
``<|start_global_token|>`` (optional), exactly 32 ``bicodec_global`` tokens, ``<|end_global_token|>``,
``<|start_semantic_token|>``, semantic tokens, then optionally ``<|end_semantic_token|>``, and a stop
id. The official parse needs exactly 32 global tokens and crashes on any other count, the failure
Spark-TTS's users meet most often in this mode. ``ControlGrammar`` masks, at each step, the ids the
grammar does not allow next; a model that follows the grammar samples what it sampled unmasked up to
the renormalisation of the mass it put outside it (for the real checkpoint: none in practice). It
also makes random demo weights produce a voice in this mode.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import torch

from sparktts import prompts

__all__ = ["ControlGrammar", "ControlMasks"]


class _Phase(enum.Enum):
    OPEN = "open"  # before anything: the start delimiter or the first global
    GLOBALS = "globals"  # inside the 32 globals
    END_GLOBALS = "end_globals"  # the 32nd is out: <|end_global_token|>
    START_SEMANTIC = "start_semantic"  # then <|start_semantic_token|>
    SEMANTIC = "semantic"  # speech, until a stop id or <|end_semantic_token|>
    STOP = "stop"  # after <|end_semantic_token|>: only a stop id


class ControlMasks:
    """The allowed-id masks of each phase, (V,) bool on the model's device, built once per model."""

    def __init__(
        self, vocab_rows: int, token_id: Callable[[str], int], stop_ids: Iterable[int], device: torch.device
    ) -> None:
        stops = [i for i in stop_ids if 0 <= i < vocab_rows]
        globals_ = [token_id(prompts.global_token(i)) for i in range(prompts.NUM_GLOBAL_CODES)]
        semantic = [token_id(prompts.semantic_token(i)) for i in range(prompts.NUM_SEMANTIC_CODES)]

        def mask(ids: Iterable[int]) -> torch.Tensor:
            allowed = torch.zeros(vocab_rows, dtype=torch.bool)
            allowed[torch.tensor(sorted(set(ids)), dtype=torch.long)] = True
            return allowed.to(device)

        self.global_ids = frozenset(globals_)
        self.start_global = token_id(prompts.START_GLOBAL)
        self.end_semantic = token_id(prompts.END_SEMANTIC)
        self.by_phase = {
            _Phase.OPEN: mask([*globals_, self.start_global]),
            _Phase.GLOBALS: mask(globals_),
            _Phase.END_GLOBALS: mask([token_id(prompts.END_GLOBAL)]),
            _Phase.START_SEMANTIC: mask([token_id(prompts.START_SEMANTIC)]),
            _Phase.SEMANTIC: mask([*semantic, self.end_semantic, *stops]),
            _Phase.STOP: mask(stops),
        }


class ControlGrammar:
    """One row's position in the grammar: ``constrain`` its logits, then ``advance`` by the sampled id."""

    def __init__(self, masks: ControlMasks) -> None:
        self._masks = masks
        self._phase = _Phase.OPEN
        self._globals = 0

    def constrain(self, logits: torch.Tensor) -> torch.Tensor:
        """logits: (1, V) float32 -> the same with every id the grammar forbids next at -inf."""
        return logits.masked_fill(~self._masks.by_phase[self._phase], float("-inf"))

    def advance(self, token_id: int) -> None:
        phase = self._phase
        if phase in (_Phase.OPEN, _Phase.GLOBALS):
            if token_id in self._masks.global_ids:
                self._globals += 1
            self._phase = _Phase.END_GLOBALS if self._globals == prompts.NUM_GLOBAL_TOKENS else _Phase.GLOBALS
        elif phase is _Phase.END_GLOBALS:
            self._phase = _Phase.START_SEMANTIC
        elif phase is _Phase.START_SEMANTIC:
            self._phase = _Phase.SEMANTIC
        elif phase is _Phase.SEMANTIC and token_id == self._masks.end_semantic:
            self._phase = _Phase.STOP
