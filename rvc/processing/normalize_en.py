"""English text as it is spoken: numbers, money, dates, times, units, abbreviations and symbols in words.

The number words come from ``num2words`` (cardinals, ordinals, years, the
currency names); this module only finds the tokens and chooses a reading.
Rules run in a fixed order, each on what the earlier ones left, and every
reading is words, so no rule sees another's output as a number. The
readings chosen where English has several (README, "Text normalisation"):

* money: ``$3.50`` -> "three dollars and fifty cents", ``$3`` -> "three
  dollars", ``$0.99`` -> "ninety-nine cents", ``$2.5 million`` -> "two point
  five million dollars"; names as num2words has them ("euro", "pounds
  sterling"), yen added.
* decimals keep every written digit: ``3.50`` -> "three point five zero".
* a 4-digit number from 1000 to 2099 is a year after a cue word ("in 1999",
  "since 2005", a month) or before AD/BC; otherwise a cardinal.
* phone numbers and digit strings of 10+ digits or with a leading zero are
  read digit by digit; URLs and e-mail addresses are never touched
  (``rvc.processing.normalize`` keeps them out).
* times: ``12:30`` -> "twelve thirty", ``9:05`` -> "nine oh five", ``10:00``
  -> "ten o'clock"; a.m./p.m. become "AM" / "PM" (not "P M.": the sentence
  splitter takes a capital and a full stop for an initial).
* dates: ``2026-12-01`` and ``12/01/2026`` (month first unless the first
  number is over 12) -> "December first, twenty twenty-six".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from num2words import CONVERTER_CLASSES, num2words

from rvc.processing.rewrite import Rule, apply_rules, rule

__all__ = ["normalize_english"]

_CONVERTER = CONVERTER_CLASSES["en"]
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_MONTH_NUMBER = {name.lower(): index for index, name in enumerate(MONTHS, 1)} | {
    name[:3].lower(): index for index, name in enumerate(MONTHS, 1)
} | {"sept": 9}
_MONTH_WORD = "|".join([*MONTHS, "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sept", "Sep", "Oct", "Nov", "Dec"])
# num2words' own names where it has the currency; yen is missing there
_CURRENCIES = {
    "$": _CONVERTER.CURRENCY_FORMS["USD"], "€": _CONVERTER.CURRENCY_FORMS["EUR"],
    "£": _CONVERTER.CURRENCY_FORMS["GBP"], "₹": _CONVERTER.CURRENCY_FORMS["INR"], "¥": (("yen", "yen"), None),
}
_CURRENCY_CODES = {"USD": "$", "EUR": "€", "GBP": "£", "INR": "₹", "JPY": "¥"}
_SCALES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million", "b": "billion",
           "B": "billion", "bn": "billion", "thousand": "thousand", "million": "million", "billion": "billion",
           "trillion": "trillion"}
UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"), "m/s": ("meter per second", "meters per second"),
    "mph": ("mile per hour", "miles per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
    "lbs": ("pound", "pounds"), "lb": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"), "l": ("liter", "liters"),
    "L": ("liter", "liters"), "ms": ("millisecond", "milliseconds"), "sec": ("second", "seconds"),
    "secs": ("second", "seconds"), "s": ("second", "seconds"), "mins": ("minute", "minutes"),
    "min": ("minute", "minutes"), "hrs": ("hour", "hours"), "hr": ("hour", "hours"),
    "h": ("hour", "hours"), "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"), "Hz": ("hertz", "hertz"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"), "W": ("watt", "watts"), "V": ("volt", "volts"), "mAh": ("milliamp hour",
    "milliamp hours"), "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"), "x": ("times", "times"),
    "°C": ("degree Celsius", "degrees Celsius"), "℃": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
}
_TITLES = {"Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor", "St": "Saint",
           "Mt": "Mount", "Gen": "General", "Capt": "Captain", "Lt": "Lieutenant", "Sgt": "Sergeant",
           "Col": "Colonel", "Rev": "Reverend", "Gov": "Governor", "Sen": "Senator", "Rep": "Representative",
           "Pres": "President", "Hon": "Honorable"}
# Expansions of these may end a sentence: their full stop is kept when the next word is capitalised.
_ENDINGS = {"St": "Street", "Dr": "Drive", "Ave": "Avenue", "Blvd": "Boulevard", "Rd": "Road", "Jr": "Junior",
            "Sr": "Senior", "Inc": "Incorporated", "Ltd": "Limited", "Co": "Company", "Corp": "Corporation",
            "Dept": "Department", "Univ": "University", "etc": "et cetera"}
_INLINE = {"e.g": "for example", "i.e": "that is", "vs": "versus", "cf": "compare", "approx": "approximately"}
_BEFORE_NUMBER = {"No": "number", "no": "number", "Nos": "numbers", "Fig": "figure", "fig": "figure",
                  "Vol": "volume", "vol": "volume", "Ch": "chapter", "ch": "chapter", "Art": "article",
                  "Sec": "section", "Eq": "equation", "p": "page", "pp": "pages"}
_YEAR_CUES = frozenset({"in", "since", "by", "from", "until", "till", "of", "year", "between", "to", "and", "or",
                        "before", "after", "during", "circa", "around", "early", "late", "mid", "summer", "winter",
                        "spring", "autumn", "fall"} | {month.lower() for month in MONTHS})
_FRACTIONS = {char: tuple(int(chr(int(code, 16))) for code in unicodedata.decomposition(char).split()[1::2])
              for char in "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"}

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT_WORD = "|".join(re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True))
_WORD_STOP = r"(?![\w/])"


def _words(value: int) -> str:
    return num2words(value, lang="en").replace(",", "")  # no commas inside a number: they would split sentences


DIGITS = tuple(_words(digit) for digit in range(10))


def _ordinal(value: int) -> str:
    return num2words(value, lang="en", to="ordinal").replace(",", "")


def _year(value: int) -> str:
    return num2words(value, lang="en", to="year").replace(",", "")


def _digits(text: str) -> str:
    return " ".join(DIGITS[int(digit)] for digit in text if digit.isdigit())


def number(text: str) -> str:
    """'1,234.50' -> "one thousand two hundred and thirty-four point five zero": written digits after the point."""
    whole, _, fraction = text.replace(",", "").partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) >= 10 and "," not in text:
        spoken = _digits(whole)
    else:
        spoken = _words(int(whole)) if whole else ""
    if fraction:
        spoken = f"{spoken} point {_digits(fraction)}".strip()
    return spoken


def _plural(amount: str, forms: tuple[str, str]) -> str:
    return forms[0] if amount.replace(",", "") == "1" else forms[1]


def _keeps_stop(match: re.Match[str]) -> bool:
    """Whether the full stop a match consumed also ended the sentence (end of text or a capital next)."""
    return re.match(r"\s*(?:$|[A-Z\"“])", match.string[match.end():]) is not None


def _phone(match: re.Match[str]) -> str:
    groups = re.findall(r"\d+", match.group(0))
    spoken = ", ".join(_digits(group) for group in groups)
    return f"plus {spoken}" if match.group(0).startswith("+") else spoken


def _date(year: int, month: int, day: int, original: str) -> str:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return original
    return f"{MONTHS[month - 1]} {_ordinal(day)}, {_year(year)}"


def _iso_date(match: re.Match[str]) -> str:
    return _date(int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(0))


def _slash_date(match: re.Match[str]) -> str:
    first, second, year = (int(group) for group in match.groups())
    month, day = (first, second) if first <= 12 else (second, first)
    return _date(year, month, day, match.group(0))


def _month_day(match: re.Match[str]) -> str:
    month = MONTHS[_MONTH_NUMBER[match.group(1).lower()] - 1]
    spoken = f"{month} {_ordinal(int(match.group(2)))}"
    return f"{spoken}, {_year(int(match.group(3)))}" if match.group(3) else spoken


def _day_month(match: re.Match[str]) -> str:
    month = MONTHS[_MONTH_NUMBER[match.group(2).lower()] - 1]
    spoken = f"the {_ordinal(int(match.group(1)))} of {month}"
    return f"{spoken}, {_year(int(match.group(3)))}" if match.group(3) else spoken


def _meridiem(letter: str | None, match: re.Match[str]) -> str:
    if not letter:
        return ""
    stop = "." if match.group(0).endswith(".") and _keeps_stop(match) else ""
    return f" {letter.upper()}M{stop}"


def _time(match: re.Match[str]) -> str:
    hour, minute, second, letter = match.groups()
    spoken = _words(int(hour))
    if minute == "00":
        spoken += "" if letter else " o'clock"
    else:
        spoken += f" {'oh ' if minute[0] == '0' else ''}{_words(int(minute))}"
    if second:
        spoken += f" and {_words(int(second))} {'second' if second == '01' else 'seconds'}"
    return spoken + _meridiem(letter, match)


def _hour(match: re.Match[str]) -> str:
    return _words(int(match.group(1))) + _meridiem(match.group(2), match)


def _range(match: re.Match[str]) -> str:
    first, second = match.group(1), match.group(2)
    if all(len(value) == 4 and 1000 <= int(value) <= 2099 for value in (first, second)):
        return f"{_year(int(first))} to {_year(int(second))}"
    return f"{first} to {second}"


def _money(sign: str, symbol: str, amount: str, scale: str | None) -> str:
    major, minor = _CURRENCIES[symbol]
    prefix = "minus " if sign else ""
    if scale:
        return f"{prefix}{number(amount)} {_SCALES[scale]} {major[1]}"
    whole, _, fraction = amount.replace(",", "").partition(".")
    if minor is None or len(fraction) > 2:
        return f"{prefix}{number(amount)} {_plural(amount, major) if not fraction else major[1]}"
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = [] if int(whole or "0") == 0 and cents else [f"{number(whole or '0')} {_plural(whole, major)}"]
    if cents:
        parts.append(f"{_words(cents)} {_plural(str(cents), minor)}")
    return prefix + " and ".join(parts)


def _symbol_money(match: re.Match[str]) -> str:
    return _money(match.group(1), match.group(2), match.group(3), match.group(4))


def _code_money(match: re.Match[str]) -> str:
    return _money(match.group(1), _CURRENCY_CODES[match.group(3)], match.group(2), None)


def _percent(match: re.Match[str]) -> str:
    sign = {"-": "minus ", "−": "minus ", "+": "plus "}.get(match.group(1), "")
    return f"{sign}{number(match.group(2))} {'percent' if match.group(3) in '%％' else 'per mille'}"


def _decade(match: re.Match[str]) -> str:
    value = int(match.group(1))
    spoken = _year(value) if value >= 1000 else _words(value)
    return spoken[:-1] + "ies" if spoken.endswith("y") else spoken + "s"


def _unit(match: re.Match[str]) -> str:
    sign, amount, unit = match.groups()
    forms = UNITS[unit]
    return f"{'minus ' if sign else ''}{number(amount)} {forms[0] if amount == '1' else forms[1]}"


def _fraction(numerator: int, denominator: int) -> str:
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = _ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{_words(numerator)} {name}"


def _slash_fraction(match: re.Match[str]) -> str:
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if (numerator, denominator) == (24, 7):
        return "twenty-four seven"
    if 0 < numerator < denominator <= 10:
        return _fraction(numerator, denominator)
    return f"{_words(numerator)} over {_words(denominator)}"


def _vulgar_fraction(match: re.Match[str]) -> str:
    spoken = _fraction(*_FRACTIONS[match.group(2)])
    return f"{_words(int(match.group(1)))} and {spoken}" if match.group(1) else spoken


def _title(match: re.Match[str]) -> str:
    return _TITLES[match.group(1)]


def _ending(match: re.Match[str]) -> str:
    return _ENDINGS[match.group(1)] + ("." if _keeps_stop(match) else "")


def _year_cue(match: re.Match[str]) -> bool:
    before = re.findall(r"[A-Za-z]+", match.string[max(0, match.start() - 24):match.start()])
    after = match.string[match.end():match.end() + 5]
    return bool(before and before[-1].lower() in _YEAR_CUES) or re.match(r"\s?(AD|BC|BCE|CE)\b", after) is not None


def _plain_number(match: re.Match[str]) -> str:
    sign, amount = match.group(1), match.group(2)
    spoken = {"-": "minus ", "−": "minus ", "+": "plus "}.get(sign, "")
    if re.fullmatch(r"1\d{3}|20\d{2}", amount) and _year_cue(match):
        spoken += _year(int(amount))
    else:
        spoken += number(amount)
    following = match.string[match.end():match.end() + 1]
    return spoken + (" " if following.isalpha() else "")


def _dotted(match: re.Match[str]) -> str:
    return " dot ".join(number(part) for part in match.group(0).split("."))


def _spaced(word: str) -> Callable[[re.Match[str]], str]:
    """A symbol's word with one space on each side that has text (the pattern takes the spaces around it)."""
    def replace(match: re.Match[str]) -> str:
        before = " " if match.start() > 0 else ""
        after = " " if match.end() < len(match.string) else ""
        return f"{before}{word}{after}"
    return replace


_RULES: tuple[Rule, ...] = (
    rule(r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)", _phone),
    rule(r"(?<![\w.-])\d{3}-\d{4}(?![\w-]|\.\d)", _phone),
    rule(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", _iso_date),
    rule(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b", _slash_date),
    rule(rf"\b({_MONTH_WORD})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?", _month_day),
    rule(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_WORD})\b\.?(?:,?\s+(\d{{4}})\b)?", _day_month),
    rule(r"\b([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?:\s?([AaPp])\.?[Mm]\b\.?)?", _time),
    rule(r"\b(1[0-2]|0?[1-9])\s?([AaPp])\.?[Mm]\b\.?", _hour),
    rule(r"(?<![\w.,])(\d+)(?:[-–]|\s[–—]\s)(\d+)(?!\d|[.,]\d)", _range),
    rule(rf"(?<!\w)([-−]?)([$€£¥₹])\s?({_NUMBER})(?:\s?(thousand|million|billion|trillion|[kKmMbB]n?)\b)?",
         _symbol_money),
    rule(rf"(?<![\w.])([-−]?)({_NUMBER})\s?(USD|EUR|GBP|INR|JPY)\b", _code_money),
    rule(rf"(?<![\w.])([-−+]?)({_NUMBER})\s?([%％‰])", _percent),
    rule(r"(?<![\w.])['’]?(1[1-9]\d0|20\d0|[1-9]0)s\b", _decade),
    rule(r"\b(\d+)(?:st|nd|rd|th|ST|ND|RD|TH)\b", lambda match: _ordinal(int(match.group(1)))),
    rule(rf"(?<![\w.])([-−]?)({_NUMBER})\s?({_UNIT_WORD}){_WORD_STOP}", _unit),
    rule(r"(?<![\w/.])(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)", _slash_fraction),
    rule(r"(?<![\d.])(?:(\d+)\s?)?([½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])", _vulgar_fraction, needs_digits=False),
    rule(rf"\b({'|'.join(_TITLES)})\.(?=\s+[A-Z])", _title, needs_digits=False),
    rule(r"\b(Mr|Mrs|Ms|Dr)(?=\s+[A-Z][a-z])", _title, needs_digits=False),
    rule(rf"\b({'|'.join(_BEFORE_NUMBER)})\.\s?(?=\d)", lambda match: _BEFORE_NUMBER[match.group(1)] + " "),
    rule(rf"\b({'|'.join(_ENDINGS)})\.", _ending, needs_digits=False),
    rule(r"(?<!\w)(e\.g|i\.e|vs|cf|approx)(?:\.|\b)", lambda match: _INLINE[match.group(1)], needs_digits=False),
    rule(r"\s*&\s*", _spaced("and"), needs_digits=False),
    rule(r"(?<=\d)\s*\+\s*(?=\d)", " plus "),
    rule(r"(?<=\s)\+(?=\s)", "plus", needs_digits=False),
    rule(r"(?<=\d )[-−](?= \d)", "minus"),
    rule(r"\s*=\s*", _spaced("equals"), needs_digits=False),
    rule(r"\s*×\s*", _spaced("times"), needs_digits=False),
    rule(r"\s*÷\s*", _spaced("divided by"), needs_digits=False),
    rule(r"\s*±\s*", _spaced("plus or minus"), needs_digits=False),
    rule(r"#(?=\d)", "number "),
    rule(r"[~≈](?=\d)", "about "),
    rule(r"\s@\s", " at ", needs_digits=False),
    rule(r"\b\d+(?:\.\d+){2,}\b", _dotted),
    rule(rf"(?<![\w.])([-−+]?)({_NUMBER}|\.\d+)", _plain_number),
)


def normalize_english(text: str) -> str:
    """English (or any Latin-script) text with its numbers, symbols and abbreviations as words."""
    return apply_rules(_RULES, text)
