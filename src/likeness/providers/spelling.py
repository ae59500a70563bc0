"""Written words → the words as they are said: what a pronouncing dictionary looks up, and
what a word error rate compares. Whisper writes "Mr. Dashwood paid $20 in 1990."; the
speaker said "mister dashwood paid dollars twenty in nineteen ninety" (near enough: the
dictionary needs words, not an order of reading)."""

from __future__ import annotations

import re

ABBREVIATIONS = {
    "mr": ["mister"],
    "mrs": ["missus"],
    "ms": ["miz"],
    "dr": ["doctor"],
    "st": ["saint"],
    "vs": ["versus"],
    "etc": ["etcetera"],
    "%": ["percent"],
    "&": ["and"],
    "$": ["dollars"],
    "+": ["plus"],
}
_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th|s)?|[a-z]+(?:'[a-z]+)*|[%&$+]")
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def said(text: str) -> list[str]:
    """Lower-case words, punctuation gone, numbers and abbreviations written out."""
    out: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token in ABBREVIATIONS:
            out += ABBREVIATIONS[token]
        elif token[0].isdigit():
            out += _number(token)
        else:
            out.append(token)
    return out


def _number(token: str) -> list[str]:
    """ "1990" → nineteen ninety, "1,000" → one thousand, "3.5" → three point five, "2nd" →
    second, "1990s" → nineteen nineties."""
    digits = re.match(r"[\d.,]+", token)
    assert digits is not None
    number, suffix = digits.group().rstrip(".,"), token[digits.end() :]
    whole, _, fraction = number.replace(",", "").partition(".")
    value = int(whole)
    if (1100 <= value <= 1999 or 2010 <= value <= 2099) and not fraction and "," not in number:
        words = _below_thousand(value // 100) + _below_thousand(value % 100, year=True)
    else:
        words = _cardinal(value)
    if fraction:
        words += ["point", *(_ONES[int(d)] for d in fraction)]
    if suffix in ("st", "nd", "rd", "th"):
        last = words[-1]
        if last in _ORDINALS:
            words[-1] = _ORDINALS[last]
        elif last.endswith("y"):
            words[-1] = last[:-1] + "ieth"
        else:
            words[-1] = last + "th"
    elif suffix == "s":
        last = words[-1]
        words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return words


def _cardinal(value: int) -> list[str]:
    if value == 0:
        return ["zero"]
    words: list[str] = []
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if value >= size:
            words += [*_cardinal(value // size), name]
            value %= size
    return words + (_below_thousand(value) if value else [])


def _below_thousand(value: int, year: bool = False) -> list[str]:
    """1-999 in words; ``year``: the second half of a year, where 5 is "oh five" and 0 is
    "hundred"."""
    if year and value == 0:
        return ["hundred"]
    if year and value < 10:
        return ["oh", _ONES[value]]
    words: list[str] = []
    if value >= 100:
        words += [_ONES[value // 100], "hundred"]
        value %= 100
    if value >= 20:
        words.append(_TENS[value // 10])
        value %= 10
        if value:
            words.append(_ONES[value])
    elif value or not words:
        words.append(_ONES[value])
    return words


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, both sides through
    ``said`` (so "Mr." and "mister" are the same word)."""
    ref, hyp = said(reference), said(hypothesis)
    if not ref:
        return float(bool(hyp))
    row = list(range(len(hyp) + 1))  # edit distance, one row at a time
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1] / len(ref)
