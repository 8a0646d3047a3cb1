"""Inline citation markers in generated answers, and the grounding check.

Prompts number the passages ``[1]..[n]`` in the order of the citation list. An answer cites
them inline: ``[1]``, ``[1][3]`` or ``[1, 3]``. :func:`check_citations` finds which passages
an answer uses, removes markers that point outside the list (a model inventing a source),
and flags an answer that cites nothing although passages were given (possibly ungrounded).
An answer saying ``문서에서 찾을 수 없습니다.`` is honest, not flagged.

Relevance is the caller's decision: :func:`relevant_hits` / :func:`nothing_relevant` apply a
score threshold so that a question with no relevant passage gets :data:`NOT_FOUND_KO` without
asking an LLM at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from jisik.core.types import Hit
from jisik.rag.extractive import NOT_FOUND_KO

__all__ = [
    "NOT_FOUND_KO",
    "CitationCheck",
    "check_citations",
    "cited_hits",
    "is_not_found",
    "nothing_relevant",
    "parse_markers",
    "relevant_hits",
]

# [1]  [1,2]  [1, 2]  [1，2]  (full-width brackets too); not [a], [1.5] or [1-3]
_MARKER = re.compile(r"[\[［]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]］]")
_SPLIT = re.compile(r"\s*[,，、]\s*")
_NOT_FOUND_CORE = re.sub(r"\s+", "", NOT_FOUND_KO.rstrip("."))  # 문서에서찾을수없습니다


@dataclass(slots=True)
class CitationCheck:
    text: str                 # the answer with out-of-range markers removed
    used: list[int]           # passage numbers cited (1-based, valid), in order of first use
    invalid: list[int]        # numbers outside 1..n that were removed, in order of appearance
    not_found: bool           # the answer says the documents do not contain it
    flagged: bool             # passages were given, the answer is not "not found", yet cites none
    warnings: list[str] = field(default_factory=list)

    @property
    def grounded(self) -> bool:
        return bool(self.used)

    def to_dict(self) -> dict[str, object]:
        return {"used": self.used, "invalid": self.invalid, "not_found": self.not_found,
                "grounded": self.grounded, "flagged": self.flagged, "warnings": self.warnings}


def parse_markers(text: str) -> list[int]:
    """Every cited number in order of appearance (repeats kept)."""
    return [int(x) for m in _MARKER.finditer(text) for x in _SPLIT.split(m.group(1))]


def is_not_found(text: str, not_found: str = NOT_FOUND_KO) -> bool:
    core = re.sub(r"\s+", "", not_found.rstrip(".")) if not_found != NOT_FOUND_KO else _NOT_FOUND_CORE
    return core in re.sub(r"\s+", "", text)


def check_citations(text: str, n_passages: int, *, not_found: str = NOT_FOUND_KO) -> CitationCheck:
    """Validate the markers of ``text`` against a citation list of ``n_passages`` entries."""
    used: list[int] = []
    invalid: list[int] = []

    def keep_valid(m: re.Match[str]) -> str:
        valid = []
        for x in _SPLIT.split(m.group(1)):
            k = int(x)
            if 1 <= k <= n_passages:
                valid.append(k)
                if k not in used:
                    used.append(k)
            else:
                invalid.append(k)
        if not valid:
            return ""
        return "".join(f"[{k}]" for k in valid)

    cleaned = _MARKER.sub(keep_valid, text)
    if invalid:  # tidy the gaps the removed markers left ("문장 [9]." -> "문장.")
        cleaned = re.sub(r"[ \t]+([.,!?。])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    says_not_found = is_not_found(cleaned, not_found)
    flagged = n_passages > 0 and not used and not says_not_found and bool(cleaned.strip())
    warnings: list[str] = []
    if invalid:
        warnings.append(f"removed markers outside 1..{n_passages}: {sorted(set(invalid))}")
    if flagged:
        warnings.append("the answer cites no passage although passages were given (may be ungrounded)")
    if says_not_found and used:
        warnings.append("the answer says 'not found' but also cites passages")
    return CitationCheck(cleaned, used, invalid, says_not_found, flagged, warnings)


def cited_hits(hits: Sequence[Hit], check: CitationCheck) -> list[tuple[int, Hit]]:
    """``(number, hit)`` for every passage the answer cites, in order of first use."""
    return [(k, hits[k - 1]) for k in check.used if 1 <= k <= len(hits)]


def relevant_hits(hits: Sequence[Hit], min_score: float, *, signal: str | None = None) -> list[Hit]:
    """Hits whose final score (or the score of ``signal``, e.g. ``"dense"``) reaches ``min_score``."""
    if signal is None:
        return [h for h in hits if h.score >= min_score]
    return [h for h in hits if h.scores.get(signal, float("-inf")) >= min_score]


def nothing_relevant(hits: Sequence[Hit], min_score: float, *, signal: str | None = None) -> bool:
    """True when the answer must be :data:`NOT_FOUND_KO` without asking a model."""
    return not relevant_hits(hits, min_score, signal=signal)
