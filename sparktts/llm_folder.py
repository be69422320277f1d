"""The official ``LLM/`` folder's tokenizer, stop / pad ids and vocabulary size, read without transformers.

An LLM engine other than torch (``sparktts.llm_onnx``) needs from that folder only what the decode
code asks of a tokenizer (``SparkTokenizer``) and three numbers, yet transformers' ``AutoTokenizer``
/ ``AutoConfig`` / ``GenerationConfig`` cost a process that loads nothing else of transformers its
whole import, on every python-backend stub start, a restart after a crash included
(``bench/bench_triton_restart.py`` prints each stub's CPU). ``LLMFolder.read`` gets the same ids from
``tokenizer.json`` through ``tokenizers`` (the Rust tokenizer transformers itself wraps) and from the
JSON configs, following the rules transformers applies to them; the torch ``SparkLM`` keeps
transformers' tokenizer, which is a ``SparkTokenizer`` as it is.

A folder with only the slow tokenizer files (``vocab.json`` / ``merges.txt``, no ``tokenizer.json``)
is refused with a ``CheckpointError`` rather than handed to transformers: the official checkpoint and
every folder ``sparktts.demo`` writes ship ``tokenizer.json``, and a silent fallback would bring back
the import this module exists to avoid, on a path no test would then cover.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sparktts.errors import CheckpointError

__all__ = ["JsonTokenizer", "LLMFolder", "SparkTokenizer", "special_ids"]

# Qwen2Tokenizer's own unk / pad token, used when no tokenizer file names one (Spark's LLM is Qwen2).
_QWEN2_DEFAULT_TOKEN = "<|endoftext|>"


class SparkTokenizer(Protocol):
    """What the Spark decode code asks of a tokenizer, in transformers' names, so that a
    ``PreTrainedTokenizerBase`` is one as it is and ``JsonTokenizer`` is the light other one.

    Unknown tokens convert to ``unk_token_id`` (None when the tokenizer has no unk token), unknown
    ids to None.
    """

    @property
    def unk_token_id(self) -> int | None: ...

    @property
    def pad_token_id(self) -> int | None: ...

    def encode(self, text: str, /) -> list[int]: ...

    def decode(self, token_ids: list[int], /, skip_special_tokens: bool = ...) -> str | list[str]: ...

    def convert_tokens_to_ids(self, tokens: str | list[str], /) -> int | None | Sequence[int | None]: ...

    def convert_ids_to_tokens(self, ids: int, /) -> str | None | Sequence[str]: ...


def _id_tuple(value: int | Sequence[int] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def special_ids(generation_config: Any, model_config: Any, tokenizer: SparkTokenizer) -> tuple[tuple[int, ...], int]:
    """(stop ids, pad id) as ``generate`` reads them: the generation config first, then the model config.

    The configs are anything with ``eos_token_id`` / ``pad_token_id`` attributes: transformers'
    ``GenerationConfig`` and ``PretrainedConfig``, or ``LLMFolder``'s ``TokenIds``.
    """
    stop_ids = _id_tuple(generation_config.eos_token_id) or _id_tuple(model_config.eos_token_id)
    pad = generation_config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop_ids or (0,))[0]
    return stop_ids, int(pad[0] if isinstance(pad, list | tuple) else pad)


@dataclass(frozen=True)
class TokenIds:
    """The ``eos_token_id`` / ``pad_token_id`` entries of a ``config.json`` or ``generation_config.json``."""

    eos_token_id: int | list[int] | None = None
    pad_token_id: int | list[int] | None = None

    @classmethod
    def of(cls, entries: dict[str, Any]) -> TokenIds:
        return cls(eos_token_id=entries.get("eos_token_id"), pad_token_id=entries.get("pad_token_id"))


class JsonTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` package: transformers' ids without transformers.

    transformers' fast tokenizers encode, decode and look tokens up with this same Rust object, so
    the ids, the decoded text and the added tokens (Spark's ``<|bicodec_*|>`` and delimiters) are
    theirs; ``tests/sparktts_lm/test_llm_folder.py`` holds them to ``AutoTokenizer``'s.
    """

    def __init__(self, backend: Any, *, unk_token: str | None, pad_token: str | None) -> None:
        self._backend = backend  # tokenizers.Tokenizer
        self._unk_token = unk_token
        self._pad_token = pad_token

    @classmethod
    def from_folder(cls, llm_dir: str | Path) -> JsonTokenizer:
        """llm_dir: the official ``LLM/`` folder (``tokenizer.json``, ``tokenizer_config.json``, ...)."""
        from tokenizers import Tokenizer

        llm_dir = Path(llm_dir)
        path = llm_dir / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(
                f"Spark LLM folder {llm_dir} has no tokenizer.json, the fast tokenizer the official folder ships and "
                "the only one this engine reads (write it with transformers: "
                "AutoTokenizer.from_pretrained(folder).save_pretrained(folder))"
            )
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
            raise CheckpointError(f"cannot read the Spark LLM tokenizer {path}: {exc}") from exc
        named = _named_special_tokens(llm_dir)
        return cls(backend, unk_token=named.get("unk_token", _QWEN2_DEFAULT_TOKEN),
                   pad_token=named.get("pad_token", _QWEN2_DEFAULT_TOKEN))

    @property
    def unk_token_id(self) -> int | None:
        return None if self._unk_token is None else self._backend.token_to_id(self._unk_token)

    @property
    def pad_token_id(self) -> int | None:
        return None if self._pad_token is None else self._token_id(self._pad_token)

    def encode(self, text: str, /) -> list[int]:
        """text -> ids, special tokens added as transformers' ``encode`` adds them (none for Qwen2)."""
        return list(self._backend.encode(text).ids)

    def decode(self, token_ids: list[int], /, skip_special_tokens: bool = False) -> str:
        return str(self._backend.decode(list(token_ids), skip_special_tokens=skip_special_tokens))

    def convert_tokens_to_ids(self, tokens: str | list[str], /) -> int | None | list[int | None]:
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int, /) -> str | None:
        return self._backend.id_to_token(int(ids))

    def _token_id(self, token: str) -> int | None:
        found = self._backend.token_to_id(token)
        return self.unk_token_id if found is None else int(found)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} holds {type(value).__name__}, not a JSON object")
    return value


def _token_name(value: Any) -> str | None:
    """A special-token entry of a tokenizer file: a string, an ``AddedToken`` dict or null."""
    if isinstance(value, dict):
        return str(value["content"])
    return None if value is None else str(value)


def _named_special_tokens(llm_dir: Path) -> dict[str, str | None]:
    """``unk_token`` / ``pad_token`` as transformers resolves them: ``tokenizer_config.json``, and
    ``special_tokens_map.json`` over it only for an old-style config without ``added_tokens_decoder``."""
    config_path, map_path = llm_dir / "tokenizer_config.json", llm_dir / "special_tokens_map.json"
    entries = _read_json(config_path) if config_path.is_file() else {}
    if "added_tokens_decoder" not in entries and map_path.is_file():
        entries = {**entries, **_read_json(map_path)}
    return {key: _token_name(entries[key]) for key in ("unk_token", "pad_token") if key in entries}


@dataclass(frozen=True)
class LLMFolder:
    """What an engine needs of the official ``LLM/`` folder besides the weights.

    stop_ids / pad_id: as ``special_ids`` reads them (``generation_config.json`` first, then
    ``config.json``, as transformers' ``GenerationConfig.from_model_config`` when the former is
    absent); vocab_size: ``config.json``'s, the rows of the LM head.
    """

    tokenizer: JsonTokenizer
    stop_ids: tuple[int, ...]
    pad_id: int
    vocab_size: int

    @classmethod
    def read(cls, llm_dir: str | Path) -> LLMFolder:
        llm_dir = Path(llm_dir)
        if not (llm_dir / "config.json").is_file():
            raise CheckpointError(f"Spark LLM folder {llm_dir} has no config.json")
        model_config = _read_json(llm_dir / "config.json")
        vocab_size = model_config.get("vocab_size")
        if not isinstance(vocab_size, int) or vocab_size <= 0:
            raise CheckpointError(f"{llm_dir / 'config.json'} has no positive integer vocab_size (got {vocab_size!r})")
        generation_path = llm_dir / "generation_config.json"
        generation_config = _read_json(generation_path) if generation_path.is_file() else model_config
        tokenizer = JsonTokenizer.from_folder(llm_dir)
        stop_ids, pad_id = special_ids(TokenIds.of(generation_config), TokenIds.of(model_config), tokenizer)
        return cls(tokenizer=tokenizer, stop_ids=stop_ids, pad_id=pad_id, vocab_size=vocab_size)
