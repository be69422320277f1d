"""Prompt templates and output parsing, character for character against the official ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparktts import prompts


def test_clone_prompt_with_transcript_is_the_official_template() -> None:
    built = prompts.build_clone_prompt("Hi.", list(range(32)), [7, 8], "Ref.")
    globals_ = "".join(f"<|bicodec_global_{i}|>" for i in range(32))
    assert built == (
        "<|task_tts|><|start_content|>Ref.Hi.<|end_content|><|start_global_token|>" + globals_
        + "<|end_global_token|><|start_semantic_token|><|bicodec_semantic_7|><|bicodec_semantic_8|>"
    )


def test_clone_prompt_without_transcript_stops_after_the_globals() -> None:
    built = prompts.build_clone_prompt("Hi.", np.arange(32, dtype=np.int32).reshape(1, 1, 32), [7, 8])
    assert built.startswith("<|task_tts|><|start_content|>Hi.<|end_content|><|start_global_token|>")
    assert built.endswith("<|bicodec_global_31|><|end_global_token|>")
    assert "semantic" not in built


def test_empty_transcript_still_selects_the_transcript_template() -> None:
    # upstream tests `prompt_text is not None`, and the Triton runtime always sends a string
    built = prompts.build_clone_prompt("Hi.", torch.zeros(1, 32, dtype=torch.long), torch.tensor([[3]]), "")
    assert built.endswith("<|start_semantic_token|><|bicodec_semantic_3|>")


def test_control_prompt_is_the_official_template() -> None:
    assert prompts.build_control_prompt("Hey", "male", "very_low", "very_high") == (
        "<|task_controllable_tts|><|start_content|>Hey<|end_content|><|start_style_label|>"
        "<|gender_1|><|pitch_label_0|><|speed_label_4|><|end_style_label|>"
    )


def test_prompts_equal_the_golden_prompt_files(spark_tiny: Path, golden, tokenizer_golden) -> None:
    texts = json.loads((spark_tiny / "inputs" / "texts.json").read_text(encoding="utf-8"))
    globals_, semantic = tokenizer_golden["global_tokens"], tokenizer_golden["semantic_tokens"]
    built = {
        "b1_clone_prompt_text": prompts.build_clone_prompt(
            texts["texts"]["clone_prompt_text"], globals_, semantic, texts["prompt_text"]),
        "b2_clone_no_prompt_text": prompts.build_clone_prompt(texts["texts"]["clone_no_prompt_text"], globals_),
        "b3_control": prompts.build_control_prompt(texts["texts"]["control"], **texts["control"]),
    }
    for case, prompt in built.items():
        assert prompt == golden[case]["prompt"], case
    assert golden["b4_clone_prompt_text_greedy"]["prompt"] == built["b1_clone_prompt_text"]
    assert "\u0301" in built["b2_clone_no_prompt_text"]  # not normalised here: the tokenizer's NFC does it


def test_parsers_read_the_golden_decoded_text(golden) -> None:
    for case, data in golden.items():
        assert prompts.parse_semantic_tokens(data["decoded"]) == data["semantic_ids"][0].tolist(), case
    control = golden["b3_control"]
    assert prompts.parse_global_tokens(control["decoded"]) == control["global_ids"][0].tolist()


def test_parsers_ignore_delimiters_and_text() -> None:
    text = "<|start_semantic_token|>x<|bicodec_semantic_12|>hello<|bicodec_global_9|><|bicodec_semantic_0|>"
    assert prompts.parse_semantic_tokens(text) == [12, 0]
    assert prompts.parse_global_tokens(text) == [9]
    assert prompts.parse_semantic_tokens("") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: prompts.build_clone_prompt("  ", list(range(32))), "text is empty"),
        (lambda: prompts.build_clone_prompt("Hi", list(range(31))), "32 ids"),
        (lambda: prompts.build_clone_prompt("Hi", [4096] * 32), "outside 0..4095"),
        (lambda: prompts.build_clone_prompt("Hi", list(range(32)), None, "ref"), "semantic_tokens are required"),
        (lambda: prompts.build_clone_prompt("Hi", list(range(32)), [8192], "ref"), "outside 0..8191"),
        (lambda: prompts.build_clone_prompt("Hi", list(range(32)), [], "ref"), "semantic_tokens is empty"),
        (lambda: prompts.build_clone_prompt("Hi", [0.5] * 32), "integers"),
        (lambda: prompts.build_control_prompt("Hi", "robot", "low", "low"), "gender"),
        (lambda: prompts.build_control_prompt("Hi", "female", "loud", "low"), "pitch"),
        (lambda: prompts.build_control_prompt("Hi", "female", "low", None), "speed"),
        (lambda: prompts.build_control_prompt("", "female", "low", "low"), "text is empty"),
    ],
)
def test_bad_prompt_input_raises_value_error_naming_it(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
