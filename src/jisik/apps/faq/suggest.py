"""Follow-up suggestions for the FAQ app: 2-3 related questions shown after an answer.

* **From retrieval** (always available, no model): the titles (questions) of the next best FAQ
  entries, skipping the entry that answered (the top hit) and titles that nearly repeat the
  question, picked MMR-style (relevance rank minus similarity to what is already picked) so the
  suggestions are not three wordings of one thing; the ``[카테고리]`` prefix is removed.
* **LLM-written** (when a provider of ``kind == "llm"`` is passed): the model writes 2-3 short
  follow-up questions grounded in the retrieved entries; the reply is parsed line by line and
  checked (Korean, a question, not a repeat, sharing words with the entries). Any error, a
  timeout or an unusable reply falls back to the retrieval suggestions (and too few usable lines
  are topped up from them).

Similarity here is character-bigram Jaccard over Hangul/Latin/digit characters: cheap, needs no
model and is what "near-duplicate wording" means for short questions.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jisik.core.logging import get_logger
from jisik.core.types import Hit
from jisik.models.llm.base import ChatMessage
from jisik.pipeline.loaders import clean_title

log = get_logger(__name__)

_WORD_CHARS = re.compile(r"[^0-9A-Za-z\uac00-\ud7a3]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}\s*[.)]|[Qq]\d*\s*[:.)]|질문\s*\d*\s*[:.)])\s*")

SYSTEM_KO = (
    "당신은 FAQ 상담 챗봇의 '추천 질문' 작성기입니다. 고객이 방금 받은 답변 다음에 이어서 물어볼 만한 "
    "짧은 질문을 한국어로 씁니다. 반드시 아래 'FAQ 항목'으로 답할 수 있는 질문만 쓰고, 고객의 질문을 "
    "되풀이하지 마세요. 질문만 한 줄에 하나씩 쓰고 번호나 설명은 붙이지 마세요."
)


def _bigrams(text: str) -> set[str]:
    s = _WORD_CHARS.sub("", text.lower())
    return {s[i:i + 2] for i in range(len(s) - 1)} if len(s) > 1 else {s} if s else set()


def similarity(a: str, b: str) -> float:
    """Character-bigram Jaccard similarity of two short texts (0..1)."""
    x, y = _bigrams(a), _bigrams(b)
    return len(x & y) / len(x | y) if x and y else 0.0


def _title_of(hit: Hit) -> str:
    title = hit.chunk.title or hit.chunk.text.strip().split("\n", 1)[0]
    return clean_title(title)


@dataclass(slots=True)
class RetrievalSuggester:
    """The :class:`jisik.apps.base.Suggester` of the FAQ app.

    ``near_duplicate``: a candidate at least this similar to the question (or to the answered
    entry's title) is skipped; ``diversity``: MMR trade-off (0 = rank only, 1 = novelty only);
    ``llm_timeout_s``: the longest wait for an LLM's suggestions before falling back.
    """

    near_duplicate: float = 0.6
    diversity: float = 0.5
    llm_timeout_s: float = 6.0  # under the chat use case's 10 s limit on suggestions
    llm_max_tokens: int = 160
    max_chars: int = 80

    async def suggest(self, question: str, answer: str, hits: Sequence[Hit], *, llm: Any | None = None,
                      limit: int = 3) -> list[str]:
        limit = max(0, limit)
        fallback = self.from_hits(question, hits, limit=limit)
        if llm is None or getattr(llm, "kind", None) != "llm" or not hits or limit == 0:
            return fallback
        try:
            written = await asyncio.wait_for(self._from_llm(llm, question, answer, hits, limit),
                                             timeout=self.llm_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of an optional nicety: fall back, never fail the answer
            log.warning("llm suggestions failed; using retrieval suggestions",
                        extra={"error": type(exc).__name__})
            return fallback
        if len(written) < min(2, limit):
            log.info("llm suggestions unusable; topping up from retrieval", extra={"usable": len(written)})
        out = list(written)
        for s in fallback:
            if len(out) >= limit:
                break
            if all(similarity(s, o) < self.near_duplicate for o in out):
                out.append(s)
        return out[:limit]

    # -- retrieval ------------------------------------------------------------------------------
    def from_hits(self, question: str, hits: Sequence[Hit], *, limit: int = 3) -> list[str]:
        """Titles of the next best entries (not the answered one, no near-repeats), MMR-diverse."""
        if not hits or limit <= 0:
            return []
        answered = _title_of(hits[0])
        avoid = [question, answered]
        candidates: list[str] = []
        seen_docs = {hits[0].chunk.doc_id}
        for hit in hits[1:]:
            if hit.chunk.doc_id in seen_docs:
                continue
            seen_docs.add(hit.chunk.doc_id)
            title = _title_of(hit)
            if not title or len(title) > 2 * self.max_chars or title in candidates:
                continue
            if any(similarity(title, a) >= self.near_duplicate for a in avoid):
                continue
            candidates.append(title)
        picked: list[str] = []
        n = len(candidates)
        while candidates and len(picked) < limit:
            def mmr(i_title: tuple[int, str]) -> float:
                i, title = i_title
                relevance = 1.0 - i / max(n, 1)  # by retrieval rank (hits come best first)
                redundancy = max((similarity(title, p) for p in picked), default=0.0)
                return (1 - self.diversity) * relevance - self.diversity * redundancy

            order = {t: i for i, t in enumerate(candidates)}
            best = max(((order[t], t) for t in candidates), key=mmr)[1]
            if any(similarity(best, p) >= self.near_duplicate for p in picked):
                candidates.remove(best)
                continue
            picked.append(best)
            candidates.remove(best)
        return picked

    # -- LLM ------------------------------------------------------------------------------------
    def messages(self, question: str, answer: str, hits: Sequence[Hit], limit: int) -> list[ChatMessage]:
        entries = []
        for n, hit in enumerate(hits[:6], 1):
            body = hit.chunk.text
            title = hit.chunk.title
            if title and body.startswith(title):
                body = body[len(title):]
            entries.append(f"[{n}] {clean_title(title) or '-'}\n{' '.join(body.split())[:300]}")
        count = "2~3개" if limit >= 3 else f"{limit}개"
        user = (f"FAQ 항목:\n{chr(10).join(entries)}\n\n고객 질문: {question}\n\n"
                f"답변: {' '.join(answer.split())[:600]}\n\n"
                f"고객이 이어서 물어볼 만한 짧은 질문 {count}를 한 줄에 하나씩 쓰세요.")
        return [{"role": "system", "content": SYSTEM_KO}, {"role": "user", "content": user}]

    async def _from_llm(self, llm: Any, question: str, answer: str, hits: Sequence[Hit], limit: int) -> list[str]:
        completion = await llm.complete(self.messages(question, answer, hits, limit),
                                        max_tokens=self.llm_max_tokens, temperature=0.3)
        grounding = set().union(*(_bigrams(f"{h.chunk.title} {h.chunk.text}") for h in hits[:6]))
        return self.parse(str(completion.text), question, grounding, limit)

    def parse(self, text: str, question: str, grounding: set[str] | None = None, limit: int = 3) -> list[str]:
        """Usable questions in an LLM reply (a JSON list or one per line; bullets/numbers removed)."""
        lines: list[str] = []
        stripped = text.strip()
        if stripped.startswith("```"):
            stripped = stripped.strip("`").removeprefix("json").strip()
        if stripped.startswith("["):
            try:
                data = json.loads(stripped)
                if isinstance(data, list):
                    lines = [str(x) for x in data if isinstance(x, str | int | float)]
            except ValueError:
                lines = []
        if not lines:
            lines = stripped.splitlines()
        out: list[str] = []
        for raw in lines:
            s = _BULLET.sub("", raw.strip()).strip().strip("\"'“”‘’「」").strip()
            s = clean_title(s)
            if not s or not _HANGUL.search(s) or len(s) < 5 or len(s) > self.max_chars:
                continue
            if not (s.endswith("?") or s.endswith("요") or s.endswith("까")):
                continue  # preambles ("추천 질문입니다:") and explanations are not questions
            if similarity(s, question) >= self.near_duplicate:
                continue
            if any(similarity(s, o) >= self.near_duplicate for o in out):
                continue
            if grounding is not None and len(_bigrams(s) & grounding) < 2:
                continue  # shares nothing with the retrieved entries: not grounded
            out.append(s)
            if len(out) >= limit:
                break
        return out
