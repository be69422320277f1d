"""``GenerationParams``: the LLM's decoding settings, a plain value with no torch or transformers behind it.

It lives apart from ``sparktts.llm`` (which re-exports it) because everything that only parses or
passes these settings on (``sparktts.serving``'s request parsing and pipeline, the TensorRT-LLM
adapter, the vocoder and audio tokenizer models importing ``sparktts.serving``) must not import
transformers for them: each Triton python-backend stub imports what its model imports when it starts,
and transformers' modeling stack is ~4 CPU seconds of that, paid again by every stub on each
tritonserver (re)start.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GenerationParams"]


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; defaults are the official ``SparkTTS.inference`` ones.

    seed: seeds a private ``torch.Generator`` per request (same stream as the official
        ``torch.manual_seed(seed)`` before ``generate``); None draws from torch's global RNG.
    restrict_vocab: score only grammar tokens (faster head, not exact; see ``sparktts.llm``'s docstring).
    control_grammar: decode in controllable TTS's output grammar (``sparktts.control_grammar``):
        exactly 32 global tokens, then the speech; set for control prompts by the serving pipeline.
    """

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    max_new_tokens: int = 3000
    do_sample: bool = True
    seed: int | None = None
    restrict_vocab: bool = False
    control_grammar: bool = False

    def __post_init__(self) -> None:
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 disables it), got {self.top_k!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {self.seed!r}")
