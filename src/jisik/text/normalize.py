"""Text normalisation, applied once per document before sentence splitting and chunking.

Chunk offsets (``Chunk.start``/``Chunk.end``) are defined relative to the *normalised* text, so
the loaders call :func:`normalize` exactly once and store the result as ``Document.text``.

What :func:`normalize` does, in order:

1. line endings ``\\r\\n``, ``\\r``, NEL, U+2028/U+2029, vertical tab and form feed -> ``\\n``;
   zero-width characters (U+200B..U+200D, U+2060, U+FEFF, U+180E) and the soft hyphen are
   removed, as are other C0/C1 control characters (tab and newline excepted);
2. Unicode NFKC (fullwidth ``１２３`` -> ``123``, ``ＡＢＣ`` -> ``ABC``, halfwidth forms, ``㈜`` ->
   ``(주)``, ...), with one exception: Hangul compatibility jamo (``ㅋㅋ``, ``ㅠㅠ``, ``ㅇㅋ``) are
   kept as they are. Plain NFKC turns them into conjoining jamo, which render badly, make Kiwi
   tag ``ㅋㅋ`` as a noun (NNG instead of SW), and even compose ``ㄱㅏ`` into ``가``. Isolated
   conjoining or halfwidth jamo left over after NFKC are mapped to compatibility jamo too;
3. every Unicode space (``\\xa0``, U+2000..U+200A, U+3000, ...) -> ``' '``;
4. runs of spaces/tabs -> one space; trailing spaces on each line are stripped;
   3+ newlines -> 2 (one blank line keeps paragraph boundaries); the whole text is stripped.

The function is idempotent: ``normalize(normalize(x)) == normalize(x)``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "normalize_query"]

_LINE_BREAKS = re.compile(r"\r\n|[\r\x85\u2028\u2029\x0b\x0c]")
_UNICODE_SPACES = re.compile(r"[\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_REMOVED = re.compile(r"[\u200b-\u200d\u2060\ufeff\u180e\xad\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_SPACE_RUNS = re.compile(r"[ \t]+")
_TRAILING = re.compile(r" +\n")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")
_CONJOINING_JAMO = re.compile(r"[\u1100-\u11ff]")
_COMPAT_JAMO = re.compile(r"[\u3131-\u318e]")
_NOT_COMPAT_JAMO = re.compile(r"[^\u3131-\u318e]+")


def _build_jamo_map() -> dict[int, str]:
    """Conjoining jamo -> the compatibility jamo that NFKC maps onto it (the inverse of NFKC)."""
    table: dict[int, str] = {}
    for cp in range(0x3131, 0x318F):
        target = unicodedata.normalize("NFKC", chr(cp))
        if len(target) == 1 and 0x1100 <= ord(target) <= 0x11FF:
            table.setdefault(ord(target), chr(cp))
    return table


_JAMO_TO_COMPAT = _build_jamo_map()


def _restore_jamo(text: str) -> str:
    # After NFKC every composable L V (T) sequence is a syllable, so remaining conjoining jamo
    # are isolated (ㅋㅋ, ㅠㅠ, a lone ㄱ); give them back their compatibility form.
    if not _CONJOINING_JAMO.search(text):
        return text
    return text.translate(_JAMO_TO_COMPAT)


def _nfkc(text: str) -> str:
    if not _COMPAT_JAMO.search(text):
        return unicodedata.normalize("NFKC", text)
    return _NOT_COMPAT_JAMO.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def normalize(text: str) -> str:
    """Normalise a document text (see the module docstring for the exact rules)."""
    if not text:
        return ""
    text = _LINE_BREAKS.sub("\n", text)
    # Removal comes before NFKC so that NFKC sees the final neighbours (keeps it idempotent).
    text = _REMOVED.sub("", text)
    text = _restore_jamo(_nfkc(text))
    text = _UNICODE_SPACES.sub(" ", text)
    text = _SPACE_RUNS.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def normalize_query(text: str) -> str:
    """Normalise a search query: :func:`normalize`, then a single line (all whitespace -> ' ')."""
    return _ANY_WHITESPACE.sub(" ", normalize(text)).strip()
