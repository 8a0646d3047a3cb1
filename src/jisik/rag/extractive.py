"""Deterministic grounded "extractive" answer: quotes the best-matching sentences of the cited
passages, each followed by its citation marker. Used when no LLM is configured, and labelled
as such. It never invents: with no relevant passage it says so."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jisik.core.types import Hit
from jisik.text.sentences import split_sentences
from jisik.text.tokenize import KoreanTokenizer

NOT_FOUND_KO = "문서에서 찾을 수 없습니다."


@dataclass(slots=True)
class ExtractiveAnswer:
    text: str
    used: list[int]  # indexes into the hits list that the answer cites ([1] = hits[0])
    grounded: bool
    provider: str = "extractive"


def extractive_answer(
    question: str, hits: Sequence[Hit], tokenizer: KoreanTokenizer, *, max_sentences: int = 3,
    min_overlap: float = 0.2,
) -> ExtractiveAnswer:
    q_tokens = set(tokenizer.tokens(question))
    if not hits or not q_tokens:
        return ExtractiveAnswer(NOT_FOUND_KO, [], False)
    candidates: list[tuple[int, str, set[str]]] = []
    for i, hit in enumerate(hits[:5]):
        text = hit.chunk.text
        for s, e in split_sentences(text):
            sent = " ".join(text[s:e].split())  # join hard line wraps inside the sentence
            if len(sent) < 8 or sent.startswith("#"):  # headings are not answers
                continue
            candidates.append((i, sent, set(tokenizer.tokens(sent))))
    if not candidates:
        return ExtractiveAnswer(NOT_FOUND_KO, [], False)
    # a query word found in every candidate sentence says little; a rare one decides (idf)
    n = len(candidates)
    weight = {t: math.log(1 + n / (1 + sum(t in toks for _, _, toks in candidates))) for t in q_tokens}
    total = sum(weight.values()) or 1.0
    scored: list[tuple[float, int, str]] = []
    for i, sent, toks in candidates:
        overlap = sum(w for t, w in weight.items() if t in toks) / total
        # earlier (better-ranked) passages win ties
        scored.append((overlap - 0.01 * i, i, sent))
    scored.sort(key=lambda x: -x[0])
    best = [x for x in scored if x[0] >= min_overlap][:max_sentences]
    if not best:
        return ExtractiveAnswer(NOT_FOUND_KO, [], False)
    parts = [f"{sent} [{i + 1}]" for _, i, sent in best]
    return ExtractiveAnswer(" ".join(parts), sorted({i for _, i, _ in best}), True)
