"""Text as it is spoken: numbers, money, dates, times, units, abbreviations and symbols become words.

Spark-TTS's LLM reads digits and symbols inconsistently (``$3.50``, ``10%``,
``12:30``, ``Dr.`` come out skipped, spelled or in the wrong language), so
request assembly rewrites them as words before the text is split into
sentences (``rvc.processing.requests``; the request option ``normalize``
turns it off). The words come from maintained libraries, ``num2words`` for
English and ``cn2an`` for Chinese, the two languages Spark-TTS speaks; the
rules that find the tokens are ``normalize_en`` and ``normalize_zh``.

The language is chosen by script, per run: a run is a stretch whose letters
are all CJK (Chinese rules) or all not (English rules). Digits and symbols
belong to no script; between two runs of different scripts they go to the
run they touch without a space, and when they touch both (``这是3D电影``,
``iPhone15元``) to the Chinese one, since Chinese counters and units follow
the number. Unit letters right after a number (``3km``) belong to the number,
so ``距离3km`` stays Chinese. URLs and e-mail addresses are left as written.
"""

from __future__ import annotations

import enum
import re

from rvc.processing import normalize_en, normalize_zh
from rvc.processing.normalize_en import normalize_english
from rvc.processing.normalize_zh import normalize_chinese

__all__ = ["Script", "normalize_text", "script_runs"]


class Script(enum.Enum):
    CHINESE = "zh"
    ENGLISH = "en"


_PROTECTED = re.compile(r"(?:https?://|www\.)[^\s<>\"]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_UNIT_LETTERS = sorted(
    {unit for unit in (*normalize_en.UNITS, *normalize_zh.UNITS) if any(char.isalpha() for char in unit)},
    key=len, reverse=True,
)
# letters that belong to the number before them: units and ordinal or decade suffixes
_NUMBER_SUFFIX = re.compile(rf"(?<=\d)\s?(?:{'|'.join(map(re.escape, _UNIT_LETTERS))}|st|nd|rd|th|s)(?![A-Za-z])")
_NORMALIZERS = {Script.CHINESE: normalize_chinese, Script.ENGLISH: normalize_english}


def normalize_text(text: str) -> str:
    """``text`` with numbers, symbols and abbreviations written as the words to speak, per language run."""
    text = text.translate(_FULLWIDTH)
    pieces: list[str] = []
    position = 0
    for match in _PROTECTED.finditer(text):
        pieces.extend(_NORMALIZERS[script](run) for script, run in script_runs(text[position:match.start()]))
        pieces.append(match.group(0))
        position = match.end()
    pieces.extend(_NORMALIZERS[script](run) for script, run in script_runs(text[position:]))
    return "".join(pieces)


def _is_cjk(char: str) -> bool:
    return ("\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\uf900" <= char <= "\ufaff"
            or "\u3040" <= char <= "\u30ff" or "\U00020000" <= char <= "\U0002ffff")


def _script_of(char: str) -> Script | None:
    if _is_cjk(char):
        return Script.CHINESE
    return Script.ENGLISH if char.isalpha() else None


def script_runs(text: str) -> list[tuple[Script, str]]:
    """``text`` cut into runs of one script, in order; digits and symbols assigned as the module says."""
    labels = [_script_of(char) for char in text]
    for match in _NUMBER_SUFFIX.finditer(text):
        labels[match.start():match.end()] = [None] * (match.end() - match.start())
    spans: list[tuple[Script | None, int, int]] = []
    for index, label in enumerate(labels):
        if spans and spans[-1][0] is label:
            spans[-1] = (label, spans[-1][1], index + 1)
        else:
            spans.append((label, index, index + 1))
    default = Script.CHINESE if re.search(r"[\u3000-\u303f\uff00-\uffef]", text) else Script.ENGLISH
    pieces: list[tuple[Script, str]] = []
    for position, (label, start, end) in enumerate(spans):
        if label is not None:
            pieces.append((label, text[start:end]))
            continue
        left = spans[position - 1][0] if position > 0 else None
        right = spans[position + 1][0] if position + 1 < len(spans) else None
        pieces.extend(_assign(text[start:end], left, right, default))
    runs: list[tuple[Script, str]] = []
    for script, piece in pieces:
        if runs and runs[-1][0] is script:
            runs[-1] = (script, runs[-1][1] + piece)
        elif piece:
            runs.append((script, piece))
    return runs


def _assign(span: str, left: Script | None, right: Script | None, default: Script) -> list[tuple[Script, str]]:
    """A stretch of digits, symbols and spaces between a run in ``left`` and one in ``right``."""
    if left is None or right is None or left is right:
        return [(left or right or default, span)]
    cut = max(span.rfind(char) for char in " \t\n\r\u3000")
    if cut < 0:  # touches both runs
        return [(Script.CHINESE, span)]
    return [(left, span[:cut]), (right, span[cut:])]
