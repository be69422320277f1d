"""Spark-TTS prompt strings and the parsing of the LLM's decoded output.

The LLM sees plain strings of special-looking tokens concatenated with no separators (no chat
template, no BOS). Three templates exist (official ``cli/SparkTTS.py``):

* voice cloning with a reference transcript: ``<|task_tts|><|start_content|>{prompt_text}{text}
  <|end_content|><|start_global_token|>{32 globals}<|end_global_token|><|start_semantic_token|>
  {reference semantics}``. It ends *inside* the semantic section, so the LM continues the
  reference's semantic stream; transcript and text are joined with no space.
* voice cloning without a transcript: the same up to ``<|end_global_token|>``.
* controllable TTS: ``<|task_controllable_tts|><|start_content|>{text}<|end_content|>
  <|start_style_label|><|gender_G|><|pitch_label_P|><|speed_label_S|><|end_style_label|>``.

The text is not normalised here; the tokenizer's NFC normaliser does that, as upstream.
Parsing runs regexes over ``batch_decode(..., skip_special_tokens=True)`` text, which keeps the
bicodec tokens because the official vocabulary adds them as non-special tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

TASK_TOKENS: Mapping[str, str] = {
    "vc": "<|task_vc|>",
    "tts": "<|task_tts|>",
    "asr": "<|task_asr|>",
    "s2s": "<|task_s2s|>",
    "t2s": "<|task_t2s|>",
    "understand": "<|task_understand|>",
    "caption": "<|task_cap|>",
    "controllable_tts": "<|task_controllable_tts|>",
    "prompt_tts": "<|task_prompt_tts|>",
    "speech_edit": "<|task_edit|>",
}
GENDER: Mapping[str, int] = {"female": 0, "male": 1}
LEVEL: Mapping[str, int] = {"very_low": 0, "low": 1, "moderate": 2, "high": 3, "very_high": 4}

START_CONTENT = "<|start_content|>"
END_CONTENT = "<|end_content|>"
START_GLOBAL = "<|start_global_token|>"
END_GLOBAL = "<|end_global_token|>"
START_SEMANTIC = "<|start_semantic_token|>"
END_SEMANTIC = "<|end_semantic_token|>"
START_STYLE = "<|start_style_label|>"
END_STYLE = "<|end_style_label|>"
# The order in which the official vocabulary lists its delimiters (ids 165150..165157).
DELIMITERS: tuple[str, ...] = (
    START_GLOBAL, START_SEMANTIC, END_CONTENT, END_STYLE, START_CONTENT, START_STYLE, END_GLOBAL, END_SEMANTIC,
)

NUM_GLOBAL_CODES = 4096  # FSQ 4**6
NUM_SEMANTIC_CODES = 8192  # BiCodec VQ codebook
NUM_GLOBAL_TOKENS = 32  # speaker tokens per utterance

_SEMANTIC_RE = re.compile(r"bicodec_semantic_(\d+)")
_GLOBAL_RE = re.compile(r"bicodec_global_(\d+)")


def global_token(index: int) -> str:
    return f"<|bicodec_global_{index}|>"


def semantic_token(index: int) -> str:
    return f"<|bicodec_semantic_{index}|>"


def token_list(tokens: Any, name: str, upper: int) -> list[int]:
    """Flatten ints / numpy arrays / torch tensors of any shape into a checked list of ints."""
    if hasattr(tokens, "detach"):  # torch.Tensor without importing torch here
        tokens = tokens.detach().cpu().numpy()
    if hasattr(tokens, "reshape") and hasattr(tokens, "tolist"):  # numpy array
        values = tokens.reshape(-1).tolist()
    elif isinstance(tokens, Iterable) and not isinstance(tokens, str | bytes):
        values = list(tokens)
    else:
        raise ValueError(f"{name} must be a sequence of token ids, got {type(tokens).__name__}")
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{name} must hold integers, got {value!r}")
        index = int(value)
        if not 0 <= index < upper:
            raise ValueError(f"{name} id {index} is outside 0..{upper - 1}")
        out.append(index)
    return out


def _check_text(text: str, name: str = "text") -> None:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty: give the words to speak")


def build_clone_prompt(
    text: str,
    global_tokens: Any,
    semantic_tokens: Any | None = None,
    prompt_text: str | None = None,
) -> str:
    """Voice-cloning prompt, character for character as the official ``process_prompt``.

    global_tokens: the reference's 32 speaker tokens (any shape holding 32 ints in 0..4095).
    semantic_tokens: the reference's semantic tokens (ints in 0..8191); required, and only used,
        when ``prompt_text`` is given. As upstream, ``prompt_text=None`` selects the short template
        and any string (even empty) the transcript template.
    """
    _check_text(text)
    globals_ = token_list(global_tokens, "global_tokens", NUM_GLOBAL_CODES)
    if len(globals_) != NUM_GLOBAL_TOKENS:
        raise ValueError(f"global_tokens must hold {NUM_GLOBAL_TOKENS} ids, got {len(globals_)}")
    pieces = [TASK_TOKENS["tts"], START_CONTENT]
    if prompt_text is not None:
        if not isinstance(prompt_text, str):
            raise ValueError(f"prompt_text must be a string or None, got {type(prompt_text).__name__}")
        if semantic_tokens is None:
            raise ValueError("semantic_tokens are required when prompt_text is given")
        semantics = token_list(semantic_tokens, "semantic_tokens", NUM_SEMANTIC_CODES)
        if not semantics:
            raise ValueError("semantic_tokens is empty: the reference produced no semantic tokens")
        pieces.append(prompt_text)
    pieces += [text, END_CONTENT, START_GLOBAL, *map(global_token, globals_), END_GLOBAL]
    if prompt_text is not None:
        pieces += [START_SEMANTIC, *map(semantic_token, semantics)]
    return "".join(pieces)


def build_control_prompt(text: str, gender: str, pitch: str, speed: str) -> str:
    """Controllable-TTS ("voice creation") prompt, as the official ``process_prompt_control``.

    gender: "female" | "male"; pitch, speed: "very_low" | "low" | "moderate" | "high" | "very_high".
    """
    _check_text(text)
    if gender not in GENDER:
        raise ValueError(f"gender must be one of {sorted(GENDER)}, got {gender!r}")
    for name, level in (("pitch", pitch), ("speed", speed)):
        if level not in LEVEL:
            raise ValueError(f"{name} must be one of {list(LEVEL)}, got {level!r}")
    attributes = f"<|gender_{GENDER[gender]}|><|pitch_label_{LEVEL[pitch]}|><|speed_label_{LEVEL[speed]}|>"
    return "".join(
        [TASK_TOKENS["controllable_tts"], START_CONTENT, text, END_CONTENT, START_STYLE, attributes, END_STYLE]
    )


def parse_semantic_tokens(decoded: str) -> list[int]:
    """Every ``bicodec_semantic_N`` in the decoded text, in order (delimiters and text ignored)."""
    return [int(match) for match in _SEMANTIC_RE.findall(decoded)]


def parse_global_tokens(decoded: str) -> list[int]:
    """Every ``bicodec_global_N`` in the decoded text, in order (controllable mode: expect 32)."""
    return [int(match) for match in _GLOBAL_RE.findall(decoded)]
