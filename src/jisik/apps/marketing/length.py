"""Message length in a channel's unit, CP949 clean-up, and trimming at sentence boundaries.

* ``chars``: Unicode code points (Kakao and app pushes count characters, spaces and line breaks
  included); a Kakao variable ``#{이름}`` counts as ``variable_chars`` (what it will be replaced by).
* ``euc-kr``: bytes of the text in CP949, the EUC-KR superset Korean carriers count SMS/LMS in:
  every Hangul syllable and full-width symbol is 2 bytes, ASCII 1, a line break 1. A character
  CP949 cannot encode cannot be sent; :func:`to_cp949` replaces or removes those first.

:func:`fit_text` shortens a text to what ``fits`` by keeping whole sentences (Kiwi's split, via
:func:`jisik.text.split_sentences`); when even the first sentence is too long it keeps whole
words and ends with "…". It never cuts inside a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jisik.text.sentences import split_sentences

from .rules import ChannelRule, Unit

ELLIPSIS = "…"
_WORD = re.compile(r"\S+")


def encodable(ch: str) -> bool:
    try:
        ch.encode("cp949")
    except UnicodeEncodeError:
        return False
    return True


def measure(text: str, unit: Unit, *, variable: re.Pattern[str] | None = None, variable_chars: int = 0) -> int:
    """Length of ``text`` in ``unit`` (variables, when a pattern is given, count as ``variable_chars``)."""
    if variable is not None:
        text = variable.sub("x" * variable_chars, text)
    if unit == "chars":
        return len(text)
    return sum(len(ch.encode("cp949")) if encodable(ch) else 2 for ch in text)


@dataclass(slots=True)
class Cleaned:
    text: str
    replaced: list[str]  # characters replaced (once each)
    removed: list[str]  # characters removed (once each)


def to_cp949(text: str, replacements: Mapping[str, str]) -> Cleaned:
    """``text`` with characters CP949 cannot encode replaced (``replacements``) or removed."""
    out: list[str] = []
    replaced: list[str] = []
    removed: list[str] = []
    for ch in text:
        if encodable(ch):
            out.append(ch)
        elif ch in replacements and all(encodable(c) for c in replacements[ch]):
            out.append(replacements[ch])
            if ch not in replaced:
                replaced.append(ch)
        elif ch not in removed:
            removed.append(ch)
    cleaned = re.sub(r"[ \t]{2,}", " ", "".join(out)) if removed else "".join(out)
    return Cleaned(cleaned, replaced, removed)


@dataclass(slots=True)
class Fitted:
    text: str
    trimmed: bool  # sentences (or words) were dropped
    cut_in_sentence: bool = False  # even the first sentence was too long: words kept, "…" added


def fit_text(text: str, fits: Callable[[str], bool], *, kiwi: Any = None) -> Fitted:
    """The longest prefix of whole sentences of ``text`` that ``fits``; else whole words + "…"."""
    text = text.strip()
    if fits(text):
        return Fitted(text, False)
    spans = split_sentences(text, kiwi=kiwi) if text else []
    best = ""
    for _, end in spans:
        candidate = text[: end].strip()
        if not fits(candidate):
            break
        best = candidate
    if best:
        return Fitted(best, True)
    first = text[: spans[0][1]] if spans else text
    words: list[str] = []
    for m in _WORD.finditer(first):
        candidate = " ".join([*words, m.group()]) + ELLIPSIS
        if not fits(candidate):
            break
        words.append(m.group())
    return Fitted(" ".join(words) + ELLIPSIS if words else "", True, True)


def channel_measure(rule: ChannelRule, variable: re.Pattern[str]) -> Callable[[str], int]:
    """``len`` in the channel's unit (Kakao variables counted as the length they will be replaced by)."""
    if rule.variables:
        return lambda s: measure(s, rule.unit, variable=variable, variable_chars=rule.variable_chars)
    return lambda s: measure(s, rule.unit)
