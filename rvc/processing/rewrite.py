"""Ordered regex rewrites, the engine of the text normalisers (``normalize_en``, ``normalize_zh``).

Most rules rewrite numbers; on text without a digit they cannot match, so
they are skipped (``needs_digits``): a sentence of plain words runs only the
few abbreviation and symbol rules, which keeps normalisation off the
interactive path's latency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Replacement", "Rule", "apply_rules", "rule"]

Replacement = str | Callable[[re.Match[str]], str]
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Rule:
    """Every match of ``pattern`` replaced by ``replacement``; ``needs_digits``: skipped on text without digits."""

    pattern: re.Pattern[str]
    replacement: Replacement
    needs_digits: bool = True


def rule(pattern: str, replacement: Replacement, *, needs_digits: bool = True) -> Rule:
    return Rule(re.compile(pattern), replacement, needs_digits)


def apply_rules(rules: Iterable[Rule], text: str) -> str:
    """``text`` through ``rules`` in order, each seeing what the earlier ones wrote.

    A rule's output is words, never digits, so a text without digits keeps
    none and the check is made once.
    """
    has_digits = _DIGIT.search(text) is not None
    for step in rules:
        if has_digits or not step.needs_digits:
            text = step.pattern.sub(step.replacement, text)
    return text
