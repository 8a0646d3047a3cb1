"""Sentence splitting as character spans, robust to long texts.

:func:`split_sentences` returns ``(start, end)`` spans over the given text such that:

* spans are in order and do not overlap; no span is empty;
* no span starts or ends with whitespace;
* everything outside the spans is whitespace (so the spans cover all the content).

How: the text is first cut into *units* without Kiwi: paragraphs (separated by blank lines), and
inside a paragraph a new unit also starts at a line that looks like a list item, a heading or a
table row (``-``, ``•``, ``1.``, ``2)``, ``(3)``, ``가.``, ``#``, ``|`` ...). Ordinary single newlines
are left to Kiwi, because in PDF text they are mostly line wraps in the middle of a sentence.
Each unit is split with Kiwi's ``split_into_sents``; the cut points are the starts of Kiwi's
sentences, so text Kiwi leaves out of its sentences is never lost. Units longer than
``max_unit_chars`` are analysed in windows: every sentence of a window but the last is kept and
the next window starts at that last sentence (a window without any sentence boundary is cut at
its last whitespace). This bounds the work per Kiwi call, whatever the input.

Kiwi offsets are Python code-point offsets (checked with astral-plane characters).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["split_sentences", "split_sentences_batch"]

Span = tuple[int, int]

DEFAULT_MAX_UNIT_CHARS = 3000

# Same sentences, less work: no embedded sub-sentences, no z_coda split.
_KIWI_OPTS: dict[str, Any] = {"return_sub_sents": False, "z_coda": False}
_BLANK_LINES = re.compile(r"\n[^\S\n]*\n\s*")
_LINE_STARTS = re.compile(r"\n")
_MARKER_LINE = re.compile(
    r"[ \t]*(?:[-*+•·∙◦▪▫■□▶▷►○●◆◇※☞✓✔→]"
    r"|\d{1,3}[.)](?!\d)|\(\d{1,3}\)|[가-힣A-Za-z][.)][ \t]|#{1,6}[ \t]|\|)"
)
_BLOCK_LINE = re.compile(r"[ \t]*(?:#{1,6}[ \t]|\|)")
_WHITESPACE = re.compile(r"\s")


def _default_kiwi() -> Any:
    from jisik.text.tokenize import get_tokenizer

    return get_tokenizer().kiwi


def _units(text: str) -> list[Span]:
    """Paragraphs, further cut before list/heading/table lines (and after heading/table lines)."""
    units: list[Span] = []
    paragraphs: list[Span] = []
    pos = 0
    for sep in _BLANK_LINES.finditer(text):
        paragraphs.append((pos, sep.start()))
        pos = sep.end()
    paragraphs.append((pos, len(text)))
    for p_start, p_end in paragraphs:
        unit_start = p_start
        prev_line_start = p_start
        for nl in _LINE_STARTS.finditer(text, p_start, p_end):
            line_start = nl.end()
            if _BLOCK_LINE.match(text, prev_line_start) or _MARKER_LINE.match(text, line_start):
                units.append((unit_start, nl.start()))
                unit_start = line_start
            prev_line_start = line_start
        units.append((unit_start, p_end))
    return [s for s in (strip_span(text, a, b) for a, b in units) if s is not None]


def strip_span(text: str, start: int, end: int) -> Span | None:
    """(start, end) narrowed to exclude surrounding whitespace; None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _kiwi_starts(sentences: Any, offset: int, lo: int, hi: int) -> list[int]:
    """Absolute sentence starts strictly inside (lo, hi), increasing."""
    starts: list[int] = []
    last = lo
    for s in sentences:
        pos = offset + int(s.start)
        if last < pos < hi:
            starts.append(pos)
            last = pos
    return starts


def _window_cuts(text: str, start: int, end: int, kiwi: Any, max_chars: int) -> list[int]:
    cuts: list[int] = []
    pos = start
    while end - pos > max_chars:
        limit = pos + max_chars
        ws = max((m.start() for m in _WHITESPACE.finditer(text, pos + max_chars // 2, limit)), default=-1)
        win_end = ws if ws > pos else limit
        starts = _kiwi_starts(kiwi.split_into_sents(text[pos:win_end], **_KIWI_OPTS), pos, pos, win_end)
        if starts:
            cuts.extend(starts)
            pos = starts[-1]  # the last sentence may continue past the window: analyse it again
        else:
            cuts.append(win_end)
            pos = win_end
    cuts.extend(_kiwi_starts(kiwi.split_into_sents(text[pos:end], **_KIWI_OPTS), pos, pos, end))
    return cuts


def _spans_from_cuts(text: str, start: int, end: int, cuts: Sequence[int]) -> list[Span]:
    bounds = [start, *cuts, end]
    spans: list[Span] = []
    for a, b in itertools.pairwise(bounds):
        s = strip_span(text, a, b)
        if s is not None:
            spans.append(s)
    return spans


def split_sentences_batch(
    texts: Sequence[str], *, kiwi: Any = None, max_unit_chars: int = DEFAULT_MAX_UNIT_CHARS
) -> list[list[Span]]:
    """:func:`split_sentences` for many texts; short units go through Kiwi's batch API at once."""
    if max_unit_chars < 50:
        raise ValueError("max_unit_chars must be >= 50")
    all_units = [_units(t) for t in texts]
    if not any(all_units):
        return [[] for _ in texts]
    kiwi = kiwi if kiwi is not None else _default_kiwi()
    short = [
        text[a:b] for text, units in zip(texts, all_units, strict=True) for a, b in units if b - a <= max_unit_chars
    ]
    short_results = iter(kiwi.split_into_sents(short, **_KIWI_OPTS) if short else [])
    out: list[list[Span]] = []
    for text, units in zip(texts, all_units, strict=True):
        spans: list[Span] = []
        for a, b in units:
            if b - a <= max_unit_chars:
                cuts = _kiwi_starts(next(short_results), a, a, b)
            else:
                cuts = _window_cuts(text, a, b, kiwi, max_unit_chars)
            spans.extend(_spans_from_cuts(text, a, b, cuts))
        out.append(spans)
    return out


def split_sentences(text: str, *, kiwi: Any = None, max_unit_chars: int = DEFAULT_MAX_UNIT_CHARS) -> list[Span]:
    """Sentence spans ``(start, end)`` over ``text`` (see the module docstring for guarantees)."""
    return split_sentences_batch([text], kiwi=kiwi, max_unit_chars=max_unit_chars)[0]
