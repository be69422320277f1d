"""Chinese text as it is spoken: numbers, money, dates, times, units and symbols in characters.

The number words come from ``cn2an`` (``an2cn``: "low" mode for quantities,
"direct" mode for digit strings); this module finds the tokens and chooses a
reading. ``cn2an.transform`` is not used: it reads ``12:30`` as "十二:三十",
``2026-12-01`` as a subtraction and ``1,000`` as "一,零". The readings chosen
(README, "Text normalisation"):

* money in yuan as 元角分: ``3.50元`` / ``¥3.50`` -> "三元五角"; other currencies as
  a number and the name: ``$3.50`` -> "三点五美元" (trailing zeros dropped).
* years before 年 and in ISO dates digit by digit: ``2026-12-01`` -> "二零二六年十二月一日".
* times: ``12:30`` -> "十二点三十分", ``9:05`` -> "九点零五分", ``2:00`` -> "两点";
  ``3:2`` (one-digit minutes) is a ratio: "三比二".
* units in their everyday names: ``3km`` -> "三公里", ``5kg`` -> "五公斤", ``25℃`` -> "二十五摄氏度".
* a lone 2 before a measure word or unit is "两" (两个, 两公里), after 第 "二" (第二个).
* digit strings of 10+ digits or with a leading zero, and phone numbers, digit by digit ("一" for 1, not "幺").
"""

from __future__ import annotations

import re

import cn2an

from rvc.processing.rewrite import Rule, apply_rules, rule

__all__ = ["UNITS", "normalize_chinese"]

UNITS: dict[str, str] = {
    "km/h": "公里每小时", "m/s": "米每秒", "km": "公里", "cm": "厘米", "mm": "毫米", "m": "米", "kg": "公斤",
    "mg": "毫克", "g": "克", "t": "吨", "ml": "毫升", "mL": "毫升", "L": "升", "l": "升", "ms": "毫秒",
    "s": "秒", "min": "分钟", "h": "小时", "kHz": "千赫兹", "MHz": "兆赫兹", "GHz": "吉赫兹", "Hz": "赫兹",
    "kWh": "千瓦时", "kW": "千瓦", "W": "瓦", "V": "伏", "mAh": "毫安时", "°C": "摄氏度", "℃": "摄氏度",
    "°F": "华氏度", "°": "度", "㎡": "平方米", "m²": "平方米",
}
# "两", not "二", for a lone 2 that counts something (cn2an writes 二 everywhere): 两个, 两点 (2 o'clock), 两公里
_COUNTERS = "个位只本件张条次天岁台辆双对种句部篇首周倍点块斤"
_DEGREES = frozenset({"°C", "℃", "°F", "°"})
_CURRENCIES = {"$": "美元", "€": "欧元", "£": "英镑", "₹": "卢比"}
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT_WORD = "|".join(re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True))
_MAX_QUANTITY_DIGITS = 16  # cn2an's limit; longer integers are read digit by digit


def digits(text: str) -> str:
    return str(cn2an.an2cn("".join(char for char in text if char.isdigit()), "direct"))


def number(text: str) -> str:
    """'1,234.5' -> "一千二百三十四点五"; written digits after the point are all read."""
    plain = text.replace(",", "")
    whole, _, fraction = plain.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) >= 10 and "," not in text:
        spoken = digits(whole)
        return f"{spoken}点{digits(fraction)}" if fraction else spoken
    if len(whole) > _MAX_QUANTITY_DIGITS:
        return digits(plain)
    return str(cn2an.an2cn("0" + plain if plain.startswith(".") else plain, "low"))


def _signed(sign: str, spoken: str) -> str:
    return ("负" if sign in "-−" and sign else "正" if sign == "+" else "") + spoken


def _phone(match: re.Match[str]) -> str:
    groups = re.findall(r"\d+", match.group(0))
    spoken = " ".join(digits(group) for group in groups)
    return f"加{spoken}" if match.group(0).startswith("+") else spoken


def _date(match: re.Match[str]) -> str:
    year, month, day = match.group(1), int(match.group(2)), int(match.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f"{digits(year)}年{number(str(month))}月{number(str(day))}日"


def _time(match: re.Match[str]) -> str:
    hour, minute, second = match.groups()
    spoken = "两" if int(hour) == 2 else number(str(int(hour)))
    spoken += "点"
    if minute != "00" or second:
        spoken += ("零" if minute[0] == "0" and minute != "00" else "") + number(str(int(minute))) + "分"
    if second:
        spoken += number(str(int(second))) + "秒"
    return spoken


def _yuan(match: re.Match[str]) -> str:
    """Yuan with at most two decimals as 元角分; anything else as a decimal number of 元."""
    sign, amount, scale = match.group("sign") or "", match.group("amount"), match.group("scale") or ""
    whole, _, fraction = amount.replace(",", "").partition(".")
    if scale or len(fraction) > 2:
        return _signed(sign, f"{number(amount)}{scale}元")
    jiao, fen = (int(digit) for digit in fraction.ljust(2, "0"))
    parts = [] if int(whole or "0") == 0 and (jiao or fen) else [f"{number(whole or '0')}元"]
    if jiao:
        parts.append(f"{number(str(jiao))}角")
    if fen:
        parts.append(f"{'零' if not jiao and parts else ''}{number(str(fen))}分")
    return _signed(sign, "".join(parts))


def _money(match: re.Match[str]) -> str:
    symbol = match.group("symbol")
    if symbol in "¥￥":
        return _yuan(match)
    amount = match.group("amount").replace(",", "")
    if "." in amount:
        amount = amount.rstrip("0").rstrip(".")
    return _signed(match.group("sign") or "", f"{number(amount)}{match.group('scale') or ''}{_CURRENCIES[symbol]}")


def _percent(match: re.Match[str]) -> str:
    base = "百分之" if match.group(3) in "%％" else "千分之"
    return _signed(match.group(1), base + number(match.group(2)))


def _unit(match: re.Match[str]) -> str:
    amount, unit = match.group(2), match.group(3)
    spoken = "两" if amount == "2" and unit not in _DEGREES else number(amount)
    return _signed(match.group(1), spoken + UNITS[unit])


def _fraction(match: re.Match[str]) -> str:
    return f"{number(match.group(2))}分之{number(match.group(1))}"


def _plain(match: re.Match[str]) -> str:
    return _signed(match.group(1), number(match.group(2)))


_RULES: tuple[Rule, ...] = (
    rule(r"(?<![\d.])(?:\+\d{1,3}[ -])?0\d{2,3}-\d{7,8}(?![\d.])", _phone),
    rule(r"(?<![\d.])(?:\+\d{1,3}[ -])?\d{3,4}([- ])\d{3,4}\1\d{4}(?![\d.])", _phone),
    rule(r"(?<!\d)(\d{4})\s?[-/.年]\s?(\d{1,2})\s?[-/.月]\s?(\d{1,2})\s?[日号]?(?![\d.])", _date),
    rule(r"(?<!\d)(\d{4})(?=\s?年)", lambda match: digits(match.group(1))),
    rule(r"(?<![\d:])([01]?\d|2[0-4])[:：]([0-5]\d)(?:[:：]([0-5]\d))?(?![\d:])", _time),
    rule(r"(?<![\d:])(\d+)\s?[:：]\s?(\d+)(?![\d:])", lambda match: f"{match.group(1)}比{match.group(2)}"),
    rule(r"(?<=\d)(?:-|\s?[~～—–]\s?)(?=\d)", "到"),
    rule(rf"(?P<sign>[-−]?)(?P<symbol>[¥￥$€£₹])\s?(?P<amount>{_NUMBER})(?P<scale>[万亿]?)", _money),
    rule(rf"(?<![\d.])(?P<sign>[-−]?)(?P<amount>{_NUMBER})(?P<scale>[万亿]?)\s?(?:元)", _yuan),
    rule(rf"(?<![\d.])([-−+]?)({_NUMBER})\s?([%％‰])", _percent),
    rule(rf"(?<![\d.])([-−]?)({_NUMBER})\s?({_UNIT_WORD})(?![A-Za-z/²])", _unit),
    rule(r"(?<![\d/.])(\d+)/(\d+)(?![\d/])", _fraction),
    rule(rf"(?<![\d.第,])2(?=[{_COUNTERS}])(?!点\d)", "两"),
    rule(r"(?<=\d)\s*\+\s*(?=\d)", "加"),
    rule(r"\s*=\s*", "等于", needs_digits=False),
    rule(r"\s*×\s*", "乘", needs_digits=False),
    rule(r"\s*÷\s*", "除以", needs_digits=False),
    rule(r"\s*±\s*", "正负", needs_digits=False),
    rule(r"\s*&\s*", "和", needs_digits=False),
    rule(rf"(?<![\d.A-Za-z])([-−+]?)({_NUMBER}|\.\d+)", _plain),
)


def normalize_chinese(text: str) -> str:
    """Chinese text with its numbers and symbols in characters."""
    return apply_rules(_RULES, text)
