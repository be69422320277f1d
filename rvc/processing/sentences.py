"""Split text into sentences the TTS can speak one at a time.

LLM TTS drops, repeats or babbles on long inputs, and the pipeline overlaps
TTS of one sentence with RVC of the previous one, so sentences are the unit
of work. Splits happen after ``. ! ? …`` and the CJK full stops, but not after
common abbreviations, initials or inside numbers; a sentence longer than
``max_chars`` is cut at the last comma-like mark, else the last space, else
hard.
"""

from __future__ import annotations

import re

__all__ = ["ABBREVIATIONS", "split_sentences"]

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf", "fig",
        "no", "vol", "inc", "ltd", "co", "corp", "dept", "est", "approx", "jan", "feb", "mar", "apr",
        "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "gen", "col",
        "capt", "lt", "sgt", "rev", "hon", "pres", "gov", "sen", "rep", "ave", "blvd", "rd",
    }
)

# Terminators: ASCII (followed by whitespace or the end) and CJK (split right after them).
_ASCII_END = re.compile(r"([.!?…]+[\"'”’)\]]*)(\s+|$)")
_CJK_END = re.compile(r"([。！？；!?]+[」』”’）)]*)")
_SOFT_BREAKS = ",;:，、；：—–"
_WHITESPACE = re.compile(r"\s+")


def split_sentences(text: str, *, max_chars: int = 200) -> list[str]:
    """Sentences of ``text`` in order, whitespace-normalised, none empty, none over ``max_chars``."""
    if max_chars < 10:
        raise ValueError(f"max_chars must be at least 10, got {max_chars}")
    normalised = _WHITESPACE.sub(" ", text).strip()
    sentences: list[str] = []
    for block in _split_cjk(normalised):
        for sentence in _split_ascii(block):
            sentences.extend(_cut_long(sentence, max_chars))
    return [sentence for sentence in sentences if _speakable(sentence)]


def _split_cjk(text: str) -> list[str]:
    parts, start = [], 0
    for match in _CJK_END.finditer(text):
        if match.group(1)[0] in "!?" and not _is_cjk(text[max(0, match.start() - 1) : match.start()]):
            continue  # ASCII ! ? after Latin text: leave to the ASCII rules
        parts.append(text[start : match.end()].strip())
        start = match.end()
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _is_cjk(char: str) -> bool:
    return bool(char) and ("\u3000" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" or "\uff00" <= char <= "\uffef")


def _split_ascii(text: str) -> list[str]:
    parts, start = [], 0
    for match in _ASCII_END.finditer(text):
        if match.group(1) == "." and not _ends_sentence(text[: match.start()], text[match.end() :]):
            continue
        parts.append(text[start : match.end(1)].strip())
        start = match.end()
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _ends_sentence(before: str, after: str) -> bool:
    """Whether a single '.' after ``before`` ends a sentence, given the text that follows."""
    word = before.rsplit(" ", 1)[-1].lstrip("(\"'“‘[").lower()
    if word in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha() and word.upper() == before[-1]:
        return False  # an initial: "J. R. R. Tolkien"
    if re.fullmatch(r"[a-z](\.[a-z])+", word):
        return False  # "e.g", "u.s.a"
    return not (after[:1].islower())  # "ends in 3 p.m. tomorrow": a lower-case continuation


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    pieces = []
    rest = sentence
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max(window.rfind(mark) for mark in _SOFT_BREAKS)
        if cut < max_chars // 3:
            cut = window.rfind(" ")
        if cut < max_chars // 3:
            cut = max_chars - 1
        pieces.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    pieces.append(rest)
    return pieces


def _speakable(sentence: str) -> bool:
    return any(char.isalnum() for char in sentence)
