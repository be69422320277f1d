"""Sentence splitting: the unit of work for TTS and the streaming endpoints."""

from __future__ import annotations

import pytest

from rvc.processing.sentences import split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world! How are you? Fine.", ["Hello world!", "How are you?", "Fine."]),
        ("Dr. Smith met Mr. Jones at 3 p.m. today. Then they left.",
         ["Dr. Smith met Mr. Jones at 3 p.m. today.", "Then they left."]),
        ("Pi is 3.14 roughly. Yes.", ["Pi is 3.14 roughly.", "Yes."]),
        ("J. R. R. Tolkien wrote it. Really.", ["J. R. R. Tolkien wrote it.", "Really."]),
        ("Wait... what?! No way.", ["Wait...", "what?!", "No way."]),
        ('He said "stop." Then silence.', ['He said "stop."', "Then silence."]),
        ("你好。今天天气很好！我们走吧？", ["你好。", "今天天气很好！", "我们走吧？"]),
        ("こんにちは。元気ですか？", ["こんにちは。", "元気ですか？"]),
        ("Mixed text. 中文句子。More English!", ["Mixed text.", "中文句子。", "More English!"]),
        ("  lots   of\n\nwhitespace  here ", ["lots of whitespace here"]),
        ("No terminator at the end", ["No terminator at the end"]),
        ("... !!! ???", []),
        ("", []),
    ],
)
def test_splits_at_sentence_ends_only(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentence_is_cut_at_commas_first() -> None:
    text = "one two three four, five six seven eight, nine ten eleven twelve, thirteen fourteen."
    pieces = split_sentences(text, max_chars=45)
    assert all(len(piece) <= 45 for piece in pieces)
    assert pieces[0].endswith(",")
    assert " ".join(pieces) == text


def test_long_sentence_without_commas_is_cut_at_spaces() -> None:
    text = " ".join(["word"] * 60) + "."
    pieces = split_sentences(text, max_chars=50)
    assert all(len(piece) <= 50 for piece in pieces)
    assert " ".join(pieces) == text


def test_unbroken_text_is_cut_hard() -> None:
    pieces = split_sentences("x" * 95, max_chars=40)
    assert [len(piece) for piece in pieces] == [40, 40, 15]


def test_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("text", max_chars=3)
