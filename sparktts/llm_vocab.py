"""The tokenizer side of the Spark LLM, shared by every engine that decodes it.

Prompt encoding, the official token parse (decode with ``skip_special_tokens=True``, then the
``bicodec_*`` regex), per-id code lookups for streaming, the grammar rows and the control grammar
depend on the tokenizer and the vocabulary size only, not on the engine that computes the logits.
``SparkLM`` (torch) and ``OnnxSparkLM`` (ONNX Runtime, ``sparktts.llm_onnx``) both build on
``SparkVocabulary``, so a row sampled by either goes through the same ``RowSampler`` and the same
parse. The tokenizer is any ``sparktts.llm_folder.SparkTokenizer``: transformers' for ``SparkLM``,
``tokenizer.json`` through ``tokenizers`` alone for the ONNX engine (no transformers import).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sparktts import prompts
from sparktts.control_grammar import ControlGrammar, ControlMasks
from sparktts.errors import CheckpointError
from sparktts.llm_folder import SparkTokenizer


class SparkVocabulary:
    """Tokenizer + stop/pad ids + vocabulary size; the engine subclasses add the logits."""

    def __init__(
        self, tokenizer: SparkTokenizer, *, stop_ids: Sequence[int], pad_id: int, vocab_rows: int
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = tuple(stop_ids)
        self.pad_id = pad_id
        self.vocab_rows = vocab_rows
        unknown = [name for name in (prompts.semantic_token(0), prompts.semantic_token(prompts.NUM_SEMANTIC_CODES - 1),
                                     prompts.global_token(0), prompts.global_token(prompts.NUM_GLOBAL_CODES - 1),
                                     prompts.TASK_TOKENS["tts"], *prompts.DELIMITERS)
                   if tokenizer.convert_tokens_to_ids(name) in (None, tokenizer.unk_token_id)]
        if unknown:
            raise CheckpointError(f"the LLM tokenizer lacks Spark-TTS tokens {unknown}: not a Spark-TTS LLM folder")
        self._semantic_first = self._contiguous_ids(prompts.semantic_token, prompts.NUM_SEMANTIC_CODES)
        self._global_first = self._contiguous_ids(prompts.global_token, prompts.NUM_GLOBAL_CODES)
        self._grammar_rows: torch.Tensor | None = None
        self._control_masks: ControlMasks | None = None

    @property
    def device(self) -> torch.device:
        """Where the logits rows live (the control grammar's masks go there); engines override it."""
        return torch.device("cpu")

    def _contiguous_ids(self, name_of: Callable[[int], str], count: int) -> int | None:
        """Id of token 0 if the ``count`` tokens have consecutive ids (the official layout), else None."""
        first = self.tokenizer.convert_tokens_to_ids(name_of(0))
        last = self.tokenizer.convert_tokens_to_ids(name_of(count - 1))
        if isinstance(first, int) and isinstance(last, int) and last - first == count - 1:
            return first
        return None

    # ------------------------------------------------------------------ token helpers
    def encode(self, prompt: str) -> torch.Tensor:
        """prompt -> (1, L) int64 ids, as ``tokenizer([prompt], return_tensors="pt")["input_ids"]``."""
        return torch.tensor([self.tokenizer.encode(prompt)], dtype=torch.long)

    def _text(self, generated_ids: Sequence[int]) -> str:
        """The text the official parse reads: decoded with ``skip_special_tokens=True``."""
        text = self.tokenizer.decode(list(generated_ids), skip_special_tokens=True)
        return text if isinstance(text, str) else "".join(text)  # one id list decodes to one str

    def semantic_ids(self, generated_ids: Sequence[int]) -> list[int]:
        """Official parse: decode with ``skip_special_tokens=True`` then regex ``bicodec_semantic_N``."""
        return prompts.parse_semantic_tokens(self._text(generated_ids))

    def global_ids(self, generated_ids: Sequence[int]) -> list[int]:
        return prompts.parse_global_tokens(self._text(generated_ids))

    def semantic_index(self, token_id: int) -> int | None:
        """Semantic code of one token id, or None (a lookup for streaming; same as the regex per token)."""
        return self._code_of(token_id, self._semantic_first, prompts.NUM_SEMANTIC_CODES, prompts.parse_semantic_tokens)

    def global_index(self, token_id: int) -> int | None:
        """Global (speaker) code of one token id, or None."""
        return self._code_of(token_id, self._global_first, prompts.NUM_GLOBAL_CODES, prompts.parse_global_tokens)

    def _code_of(
        self, token_id: int, first: int | None, count: int, parse: Callable[[str], list[int]]
    ) -> int | None:
        if first is not None:
            code = token_id - first
            return code if 0 <= code < count else None
        token = self.tokenizer.convert_ids_to_tokens(token_id)  # one id -> one token (or None)
        found = parse(token if isinstance(token, str) else "")
        return found[0] if found else None

    def grammar_ids(self) -> torch.Tensor:
        """Sorted (N,) int64 ids the Spark grammar can emit: bicodec tokens, delimiters, stop ids."""
        if self._grammar_rows is None:
            names = [prompts.global_token(i) for i in range(prompts.NUM_GLOBAL_CODES)]
            names += [prompts.semantic_token(i) for i in range(prompts.NUM_SEMANTIC_CODES)]
            names += list(prompts.DELIMITERS)
            ids = set(self.stop_ids)
            unk = self.tokenizer.unk_token_id
            converted = self.tokenizer.convert_tokens_to_ids(names)  # a list of tokens -> a list of ids
            for token_id in [converted] if converted is None or isinstance(converted, int) else converted:
                if token_id is not None and token_id != unk:
                    ids.add(int(token_id))
            self._grammar_rows = torch.tensor(sorted(i for i in ids if 0 <= i < self.vocab_rows), dtype=torch.long)
        return self._grammar_rows

    def control_grammar(self) -> ControlGrammar:
        """A fresh grammar state for one control-mode row (the masks are built on first use)."""
        if self._control_masks is None:
            def token_id(name: str) -> int:
                found = self.tokenizer.convert_tokens_to_ids(name)
                if not isinstance(found, int) or found == self.tokenizer.unk_token_id:
                    raise CheckpointError(f"the LLM tokenizer lacks {name}, which controllable TTS emits")
                return found

            self._control_masks = ControlMasks(self.vocab_rows, token_id, self.stop_ids, self.device)
        return ControlGrammar(self._control_masks)

    def encode_batch(self, prompts_: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), both (B, L) int64, left-padded: what ``generate_batch`` decodes."""
        encoded = [self.encode(p)[0] for p in prompts_]
        width = max(e.numel() for e in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - ids.numel() :] = ids
            attention_mask[row, width - ids.numel() :] = 1
        return input_ids, attention_mask
