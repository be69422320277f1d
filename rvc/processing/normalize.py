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
_CJK = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u3040-\u30ff\U00020000-\U0002ffff"  # ideographs and kana
_LETTERS = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<latin>(?:(?![{_CJK}])[^\W\d_])+)")
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


def script_runs(text: str) -> list[tuple[Script, str]]:
    """``text`` cut into runs of one script, in order; digits and symbols assigned as the module says."""
    in_numbers = {index for match in _NUMBER_SUFFIX.finditer(text) for index in range(*match.span())}
    default = Script.CHINESE if re.search(r"[\u3000-\u303f\uff00-\uffef]", text) else Script.ENGLISH
    pieces: list[tuple[Script, str]] = []
    previous_end, previous = 0, None
    for match in _LETTERS.finditer(text):
        if match.lastgroup == "latin" and match.start() in in_numbers:
            continue  # a unit or suffix: it belongs to its number, which has no script
        script = Script.CHINESE if match.lastgroup == "cjk" else Script.ENGLISH
        if match.start() > previous_end:
            pieces.extend(_assign(text[previous_end:match.start()], previous, script, default))
        pieces.append((script, match.group()))
        previous_end, previous = match.end(), script
    if previous_end < len(text):
        pieces.extend(_assign(text[previous_end:], previous, None, default))
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
