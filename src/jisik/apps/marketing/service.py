"""The scene01 use case (seed 000): marketing copy per channel, grounded in the knowledge store.

``MarketingService.generate(request)`` runs the seed's five steps::

    validate (message type, life stage, channels: the rule files' values; else 422 listing them)
    1. history summary    (jisik.rag.history: the LLM when there is one, else the extractive summary)
    2. prompt combination (jisik/prompts/marketing.yaml + channel rules + tone of the life stage)
    3. RAG enrichment     (hybrid retrieval in the ``marketing`` collection + the file_url document)
    4. one message per channel:
         LLM        -> parse title/body -> over the limit or a forbidden claim: ask again (at most
                       scene01_max_regenerations times) -> still over: trim at a sentence boundary
         extractive -> fill the channel template with the facts of the best passage (no LLM)
       then (광고) label, missing disclosures (long channels), opt-out, CP949 clean-up, and the
       광고심의 check (every violation with its rule id and span)
    5. the response: messages, the citations used, the summary, warnings, one response string

No text is logged (prompts and copy may hold personal data); only counts and rule ids.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jisik.core.errors import InvalidInput
from jisik.core.logging import get_logger
from jisik.core.settings import Settings
from jisik.core.types import Chunk, Hit
from jisik.models.llm.base import LLMProvider
from jisik.models.llm.extractive import provider_info
from jisik.rag.citations import check_citations, is_not_found, relevant_hits
from jisik.rag.extractive import extractive_answer
from jisik.rag.history import extractive_summary, summarise
from jisik.rag.prompts import PromptTemplate, load_prompt, render
from jisik.runtime import Runtime
from jisik.stores.conversations.records import Message, check_id

from .compliance import ComplianceChecker, Violation
from .fetch import FetchFailed, FetchPolicy, FileText, SafeFetcher
from .length import channel_measure, fit_text, to_cp949
from .rules import Audience, ChannelRule, MarketingRules, MessageType, load_rules
from .schemas import HistoryTurn, Scene01Request
from .templates import Facts, clean_value, facts_of, render_template, tone_values

log = get_logger(__name__)

FILE_COLLECTION = "file_url"
_MARKERS = re.compile(r"\s*[\[［]\s*\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]］]")
_LABEL = re.compile(r"^\s*(?:\*\*)?\s*(제목|타이틀|본문|내용|문구|메시지)\s*(?:\*\*)?\s*[:：]\s*", re.M)
_CHANNEL_HEAD = re.compile(r"^\s*(?:\[(?:PUSH|SMS|LMS|알림톡|친구톡)\]|(?:PUSH|SMS|LMS|알림톡|친구톡)\s*[:：])\s*",
                           re.I)
_REQUESTED = re.compile(r"(\d{2,4})\s*자\s*(?:이내|이하|내외|안쪽|까지|미만|로|정도)")
_SNIPPET_CHARS = 1000


@dataclass(slots=True)
class ChannelMessage:
    channel: str
    label: str
    title: str | None
    text: str
    body: str
    length: dict[str, Any]
    citations: list[int]
    adjustments: list[str]
    violations: list[Violation]
    warnings: list[str]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "label": self.label, "title": self.title, "text": self.text,
                "body": self.body, "length": self.length, "citations": self.citations,
                "adjustments": self.adjustments, "passed": self.passed,
                "violations": [v.to_dict() for v in self.violations], "warnings": self.warnings,
                "notes": self.notes}


@dataclass(slots=True)
class GenerateResult:
    session_id: str | None
    message_type: str
    life_stage: str
    outcome: str  # generated | not_found
    generation: str  # llm | template
    notice_ko: str
    notice_en: str
    messages: list[ChannelMessage]
    citations: list[dict[str, Any]]
    history_summary: str
    file: dict[str, Any] | None
    warnings: list[str]
    provider: dict[str, Any]
    latency_ms: int
    timings_ms: dict[str, float]

    @property
    def text(self) -> str:
        """Step 5's response string: every channel's message, one after the other."""
        blocks = []
        for m in self.messages:
            head = f"[{m.channel}]" + (f"\n제목: {m.title}" if m.title else "")
            blocks.append(f"{head}\n{m.text}".rstrip())
        return "\n\n".join(blocks)

    def to_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "message_type": self.message_type, "life_stage": self.life_stage,
                "outcome": self.outcome, "generation": self.generation, "notice_ko": self.notice_ko,
                "notice_en": self.notice_en, "messages": [m.to_dict() for m in self.messages], "text": self.text,
                "citations": self.citations, "history_summary": self.history_summary, "file": self.file,
                "warnings": self.warnings, "provider": self.provider, "latency_ms": self.latency_ms,
                "timings_ms": self.timings_ms}


@dataclass(slots=True)
class _Context:
    """What every channel of one request shares."""

    request: Scene01Request
    message_type: MessageType
    audience: Audience
    passages: list[Hit]
    primary: Facts | None  # facts of the best passage (the template's source)
    facts: list[Facts]  # facts of every passage, by passage number - 1
    summary: str
    requested_chars: int | None
    prompt: PromptTemplate | None = None
    warnings: list[str] = field(default_factory=list)
    file_note: tuple[int, str] | None = None  # (passage number, the file's sentence best matching the request)


def requested_chars(request: Scene01Request) -> int | None:
    """A length the user asked for ("100자 이내로"): in the prompt, else the latest history request."""
    for text in [request.prompt, *(t.user for t in reversed(request.history))]:
        m = _REQUESTED.search(text)
        if m:
            return int(m.group(1))
    return None


def strip_markers(text: str) -> str:
    return re.sub(r"[ \t]+([.,!?。])", r"\1", _MARKERS.sub("", text)).strip()


def parse_copy(raw: str) -> tuple[str | None, str]:
    """(title, body) of an LLM reply: ``제목: ...`` / ``본문: ...`` lines, or the whole reply as the body."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").strip()
    text = _CHANNEL_HEAD.sub("", text)
    title: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m and m.group(1) in ("제목", "타이틀"):
            title = line[m.end():].strip().strip("\"'“”").strip() or None
        else:
            body.append(line[m.end():] if m else line)
    return title, "\n".join(body).strip().strip("\"“”").strip()


class MarketingService:
    def __init__(self, runtime: Runtime, llm: LLMProvider, settings: Settings | None = None, *,
                 fetcher: SafeFetcher | None = None, rules: MarketingRules | None = None) -> None:
        self.runtime = runtime
        self.llm = llm
        self.settings = settings or runtime.settings
        self.rules = rules or load_rules(self.settings.scene01_rules_dir)
        self.checker = ComplianceChecker(self.rules)
        self.fetcher = fetcher or SafeFetcher(FetchPolicy.from_settings(self.settings))

    # -- validation -------------------------------------------------------------------------------
    def validate(self, req: Scene01Request) -> tuple[MessageType, Audience, list[ChannelRule]]:
        r = self.rules
        message_type = _one_of(req.message_type, r.message_types, "message_type", "메시지 유형")
        audience = _one_of(req.life_stage, r.audiences, "life_stage", "생애단계")
        channels = [_one_of(c, r.channels, "channels", "채널") for c in req.channels]
        dupes = sorted({c for c in req.channels if req.channels.count(c) > 1})
        if dupes:
            raise InvalidInput(f"채널이 중복되었습니다: {', '.join(dupes)}", f"Duplicate channels: {', '.join(dupes)}",
                               details={"field": "channels", "duplicates": dupes})
        if not req.prompt.strip():
            raise InvalidInput("prompt가 비어 있습니다.", "prompt is empty.", details={"field": "prompt"})
        if req.session_id is not None:
            check_id(req.session_id, "세션 ID(session_id)")
        return message_type, audience, channels

    # -- the use case -----------------------------------------------------------------------------
    async def generate(self, req: Scene01Request) -> GenerateResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        message_type, audience, channels = self.validate(req)

        t = time.perf_counter()
        summary = await self._summarise(req.history)  # 1
        timings["history"] = _ms(t)

        t = time.perf_counter()
        hits = await asyncio.to_thread(self._retrieve, req)  # 3 (first: a missing collection fails fast)
        timings["retrieval"] = _ms(t)
        t = time.perf_counter()
        warnings: list[str] = []
        file_text = await self._file(req.file_url, warnings) if req.file_url else None
        timings["file"] = _ms(t)
        passages = hits + self._file_passages(file_text)
        facts = await asyncio.to_thread(self._facts, passages, req.prompt)
        ctx = _Context(req, message_type, audience, passages, facts[0] if facts else None, facts, summary,
                       requested_chars(req), warnings=warnings)
        if hits and len(passages) > len(hits) and self.llm.kind != "llm":
            ctx.file_note = await asyncio.to_thread(self._file_note, passages, len(hits), req.prompt)

        t = time.perf_counter()
        if not passages:
            outcome = "not_found"
            warnings.append(self.rules.generation.not_found_ko)
            messages = [self._empty(ch) for ch in channels]
        else:
            outcome = "generated"
            if self.llm.kind == "llm":
                ctx.prompt = load_prompt("marketing", directory=self.settings.home / "prompts")  # 2
                messages = await self._llm_messages(ctx, channels)  # 4
            else:
                messages = await asyncio.to_thread(lambda: [self._template_message(ctx, ch) for ch in channels])
        timings["generation"] = _ms(t)

        g = self.rules.generation
        template = self.llm.kind != "llm"
        result = GenerateResult(  # 5
            session_id=req.session_id, message_type=req.message_type, life_stage=req.life_stage, outcome=outcome,
            generation="template" if template else "llm",
            notice_ko=g.notice_template_ko if template else g.notice_llm_ko,
            notice_en=g.notice_template_en if template else g.notice_llm_en,
            messages=messages, citations=self._citations(passages, messages), history_summary=summary,
            file=_file_info(file_text, passages), warnings=warnings, provider=provider_info(self.llm),
            latency_ms=int((time.perf_counter() - started) * 1000), timings_ms=timings)
        log.info("scene01 copy generated", extra={
            "channels": [m.channel for m in messages], "generation": result.generation, "outcome": outcome,
            "passages": len(passages), "violations": sorted({v.rule_id for m in messages for v in m.violations}),
            "latency_ms": result.latency_ms})
        return result

    # -- steps 1 and 3 ------------------------------------------------------------------------------
    async def _summarise(self, history: list[HistoryTurn]) -> str:
        if not history:
            return ""
        messages = [m for turn in history for m in (Message("user", turn.user), Message("assistant", turn.ai))
                    if m.text.strip()]
        max_chars = self.settings.history_summary_chars
        tokenizer = self.runtime.tokenizer
        if self.llm.kind == "llm":
            return await summarise(messages, self.llm, max_chars=max_chars, tokenizer=tokenizer)
        return await asyncio.to_thread(extractive_summary, messages, max_chars=max_chars, tokenizer=tokenizer)

    async def _file(self, url: str, warnings: list[str]) -> FileText | None:
        try:
            return await self.fetcher.fetch_text(url)
        except FetchFailed as exc:  # the remote side failed: write without the file, and say so
            log.warning("file_url not fetched", extra={"code": exc.code})
            warnings.append(f"file_url을 가져오지 못해 참고 자료 없이 작성했습니다: {exc.message_ko} "
                            f"(file_url could not be fetched: {exc.message_en})")
            return None

    def _retrieve(self, req: Scene01Request) -> list[Hit]:
        s = self.settings
        query = f"{req.prompt} {req.life_stage if req.life_stage != '전체' else ''}".strip()
        result = self.runtime.retriever.retrieve(query, s.scene01_collection, top_k=s.scene01_top_k)
        signal = None if s.answer_score_signal == "fused" else s.answer_score_signal
        hits = relevant_hits(result.hits, s.answer_min_score, signal=signal)
        # products meant for the requested life stage (or everyone) first; retrieval order otherwise
        field_names = self.rules.generation.fields.get("life_stage", [])

        def fits(hit: Hit) -> bool:
            stage = next((str(hit.chunk.metadata[f]) for f in field_names if f in hit.chunk.metadata), None)
            return stage is None or stage in (req.life_stage, "전체")

        return sorted(hits, key=lambda h: not fits(h))

    def _file_passages(self, file_text: FileText | None) -> list[Hit]:
        if file_text is None:
            return []
        budget = self.settings.scene01_file_context_chars
        out: list[Hit] = []
        name = file_text.url.rsplit("/", 1)[-1] or file_text.url
        for page, text in enumerate(file_text.pages, 1):
            text = " ".join(text.split())
            if not text or budget <= 0:
                continue
            text = text[:budget]
            budget -= len(text)
            chunk = Chunk(f"{FILE_COLLECTION}:{page}", file_text.url, text, seq=page - 1, start=0, end=len(text),
                          title=name, source_uri=file_text.url, locator={"page": page})
            out.append(Hit(chunk, 0.0, FILE_COLLECTION, {}))
        return out

    def _file_note(self, passages: list[Hit], first: int, prompt: str) -> tuple[int, str] | None:
        """The file_url document's sentence that best matches the request (for the templates)."""
        quoted = extractive_answer(prompt, passages[first:], self.runtime.tokenizer, max_sentences=1,
                                   min_overlap=0.0)
        if not quoted.used:
            return None
        return first + quoted.used[0] + 1, clean_value(strip_markers(quoted.text))

    def _facts(self, passages: list[Hit], prompt: str) -> list[Facts]:
        return [facts_of(h, n, self.rules.generation, question=prompt, tokenizer=self.runtime.tokenizer)
                for n, h in enumerate(passages, 1)]

    # -- step 4: with an LLM --------------------------------------------------------------------
    def _variables(self, ctx: _Context, ch: ChannelRule) -> dict[str, str]:
        unit = self.rules.generation.units.get(ch.unit, ch.unit)
        budget = self._body_budget(ctx, ch)
        rules = f"{ch.label} 본문 한도는 {ch.body.max}{unit}입니다"
        if ch.unit == "euc-kr":
            rules += " (한글 1자 = 2바이트)"
        if ch.title is not None:
            rules += f", 제목은 {ch.title.max}{unit} 이내입니다"
        mt = ctx.message_type
        return {"message_type": f"{ctx.request.message_type}({mt.description})", "life_stage": ctx.request.life_stage,
                "channels": ch.label, "max_chars": str(budget), "tone": ctx.audience.tone,
                "tone_guide": ctx.audience.guide, "channel_rules": f"{rules}. {mt.guide}",
                "output_format": ch.format}

    def _body_budget(self, ctx: _Context, ch: ChannelRule) -> int:
        """Characters the model may write for the body (the label, opt-out and notes take the rest)."""
        reserve = 0
        if ctx.message_type.advertising and ch.ad.allowed:
            reserve = len(ch.ad.prefix) + 1 if ch.ad.prefix_field == "text" else 0
            reserve += len(self.rules.opt_out_text(ch)) + 1
        budget = ch.body.max - reserve * (2 if ch.unit == "euc-kr" else 1)
        if ch.unit == "euc-kr":
            budget //= 2
        if ch.disclosures == "append":
            budget = min(budget, max(ch.body.max // 2, 1))
        if ctx.requested_chars:
            budget = min(budget, ctx.requested_chars)
        return max(budget, 10)

    async def _llm_messages(self, ctx: _Context, channels: list[ChannelRule]) -> list[ChannelMessage]:
        """Every channel at once; when one fails (the LLM server is down), the others are cancelled
        and that failure is the request's error."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._llm_message(ctx, ch)) for ch in channels]
        except ExceptionGroup as failed:
            first: BaseException = failed
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return [t.result() for t in tasks]

    async def _llm_message(self, ctx: _Context, ch: ChannelRule) -> ChannelMessage:
        assert ctx.prompt is not None
        messages = render(ctx.prompt, ctx.request.prompt, ctx.passages, ctx.summary,
                          variables=self._variables(ctx, ch))
        adjustments: list[str] = []
        warnings: list[str] = []
        title: str | None = None
        body = ""
        raw = ""
        for attempt in range(self.settings.scene01_max_regenerations + 1):
            completion = await self.llm.complete(messages, max_tokens=self.settings.scene01_llm_max_tokens,
                                                 hits=ctx.passages, question=ctx.request.prompt)
            raw = completion.text
            if is_not_found(raw, ctx.prompt.not_found):
                warnings.append(self.rules.generation.not_found_ko)
                return self._empty(ch, warnings)
            title, body = parse_copy(raw)
            problems = await asyncio.to_thread(self._problems, ctx, ch, title, body)
            if not problems or attempt == self.settings.scene01_max_regenerations:
                break
            retry = self.rules.generation.retry.format(problems="; ".join(problems), format=ch.format,
                                                       limit=f"{self._body_budget(ctx, ch)}자")
            messages = [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": retry}]
            if "regenerated" not in adjustments:
                adjustments.append("regenerated")
        check = check_citations(f"{title or ''}\n{body}", len(ctx.passages), not_found=ctx.prompt.not_found)
        if check.flagged:
            warnings.append("문구에 출처 표시[n]가 없어 근거를 확인할 수 없습니다. "
                            "(The copy cites no passage; check it against the sources.)")
        return await asyncio.to_thread(self._finish, ctx, ch, strip_markers(title) if title else None,
                                       strip_markers(body), list(check.used), adjustments, warnings)

    def _problems(self, ctx: _Context, ch: ChannelRule, title: str | None, body: str) -> list[str]:
        g = self.rules.generation
        unit = g.units.get(ch.unit, ch.unit)
        size = channel_measure(ch, self.rules.variable)
        out = []
        clean_body = strip_markers(body)
        composed = self._compose(ctx, ch, None, clean_body, block="")[1]
        if ctx.requested_chars and len(clean_body) > ctx.requested_chars:
            out.append(g.problems["too_long"].format(length=len(clean_body), limit=ctx.requested_chars,
                                                     unit=g.units.get("chars", "")))
        elif size(composed) > ch.body.max:
            out.append(g.problems["too_long"].format(length=size(composed), limit=ch.body.max, unit=unit))
        if title and ch.title is not None:
            composed_title = self._compose(ctx, ch, strip_markers(title), "", block="")[0] or ""
            if size(composed_title) > ch.title.max:
                out.append(g.problems["title_too_long"].format(length=size(composed_title), limit=ch.title.max,
                                                               unit=unit))
        terms = sorted({v.text for v in [*self.checker.forbidden(clean_body), *self.checker.forbidden(title or "")]
                        if v.severity == "error"})
        if terms:
            out.append(g.problems["forbidden"].format(terms=", ".join(f"'{x}'" for x in terms)))
        return out

    # -- step 4: without an LLM -----------------------------------------------------------------
    def _template_message(self, ctx: _Context, ch: ChannelRule) -> ChannelMessage:
        facts = ctx.primary
        assert facts is not None
        values = {**facts.values, **tone_values(ctx.audience)}
        if ctx.file_note is not None:
            values["file_summary"] = ctx.file_note[1]
        titles, parts = render_template(ch.template, values)
        message = self._finish(ctx, ch, None, ch.template.join.join(parts), [facts.number], [], [], parts=parts,
                               titles=titles)
        if ctx.file_note is not None and ctx.file_note[1] in message.body:
            message.citations.append(ctx.file_note[0])
        return message

    # -- step 4: both ---------------------------------------------------------------------------
    def _finish(self, ctx: _Context, ch: ChannelRule, title: str | None, body: str, citations: list[int],
                adjustments: list[str], warnings: list[str], *, parts: list[str] | None = None,
                titles: list[str] | None = None) -> ChannelMessage:
        """Clean up, fit the limits, add label / disclosures / opt-out, and check the result.
        ``titles``: alternatives when no ``title`` is given (the first that fits is used)."""
        adjustments = list(adjustments)
        size = channel_measure(ch, self.rules.variable)
        if ch.title is not None and not title:
            if titles is None and ctx.primary is not None:  # the model wrote none: from the facts
                titles = render_template(ch.template, ctx.primary.values)[0]
                if titles:
                    adjustments.append("title_from_facts")
            if titles:
                room = ch.title.max - size(self._compose(ctx, ch, "", "", block="")[0] or "")
                title = next((t for t in titles if size(t) <= room), titles[0])
        if ch.title is None:
            title = None
        if ch.unit == "euc-kr":
            title, body, parts = self._cp949(title, body, parts, adjustments, warnings)
        cited = [ctx.facts[n - 1] for n in citations if 1 <= n <= len(ctx.facts)] or ctx.facts[:1]
        kinds = " ".join(f.kind_text(self.rules.generation) for f in cited)
        for _ in range(3):  # the notes depend on the body and the body's room on the notes: settle both
            block = self._disclosure_block(ctx, ch, f"{title or ''}\n{body}", cited, kinds)
            fitted = self._fit_body(ctx, ch, title, body, block, size, parts)
            if fitted is None:
                break
            body, how = fitted
            adjustments += [a for a in how if a not in adjustments]
        block = self._disclosure_block(ctx, ch, f"{title or ''}\n{body}", cited, kinds)
        if block:
            adjustments.append("disclosures_appended")
        if title is not None and ch.title is not None:
            limit = ch.title.max
            prefix_title = self._compose(ctx, ch, "", "", block="")[0] or ""
            fitted_title = fit_text(title, lambda s: size(prefix_title + s) <= limit, kiwi=self.runtime.tokenizer.kiwi)
            if fitted_title.trimmed:
                adjustments.append("title_trimmed")
            title = fitted_title.text
        full_title, text = self._compose(ctx, ch, title, body, block=block)
        violations = self.checker.check(ch, text, title=full_title, advertising=ctx.message_type.advertising,
                                        facts=kinds, life_stage=ctx.request.life_stage)
        length = {"unit": ch.unit, "text": size(text), "text_limit": ch.body.max,
                  "title": size(full_title) if full_title else None,
                  "title_limit": ch.title.max if ch.title else None, "requested_chars": ctx.requested_chars}
        return ChannelMessage(ch.name, ch.label, full_title, text, body, length, sorted(set(citations)), adjustments,
                              violations, warnings, list(ch.notes))

    def _cp949(self, title: str | None, body: str, parts: list[str] | None, adjustments: list[str],
               warnings: list[str]) -> tuple[str | None, str, list[str] | None]:
        repl = self.rules.replacements
        cleaned = [to_cp949(x, repl) for x in [body, title or "", *(parts or [])]]
        replaced = sorted({c for x in cleaned for c in x.replaced})
        removed = sorted({c for x in cleaned for c in x.removed})
        if replaced:
            adjustments.append("characters_replaced")
        if removed:
            adjustments.append("characters_removed")
            warnings.append(f"CP949로 보낼 수 없는 문자를 지웠습니다: {' '.join(removed)} "
                            "(characters SMS/LMS cannot carry were removed)")
        return (cleaned[1].text or None) if title is not None else None, cleaned[0].text, \
            [x.text for x in cleaned[2:]] if parts is not None else None

    def _fit_body(self, ctx: _Context, ch: ChannelRule, title: str | None, body: str, block: str,
                  size: Callable[[str], int], parts: list[str] | None) -> tuple[str, list[str]] | None:
        """The body shortened to fit (None when it fits as it is)."""
        requested = ctx.requested_chars

        def fits(candidate: str) -> bool:
            if requested and len(candidate) > requested:
                return False
            return size(self._compose(ctx, ch, title, candidate, block=block)[1]) <= ch.body.max

        if fits(body):
            return None
        if parts:  # template parts are whole sentences: keep those that fit, in order
            kept: list[str] = []
            for part in parts:
                if fits(ch.template.join.join([*kept, part])):
                    kept.append(part)
            if kept:
                return ch.template.join.join(kept), ["trimmed"]
        fitted = fit_text(body, fits, kiwi=self.runtime.tokenizer.kiwi)
        return fitted.text, ["trimmed", "cut_in_sentence"] if fitted.cut_in_sentence else ["trimmed"]

    def _disclosure_block(self, ctx: _Context, ch: ChannelRule, text: str, cited: list[Facts], kinds: str) -> str:
        """Missing required disclosures as '※ 유의사항' lines (long channels only): first the product's
        own wording (``fill_fields``), then the rule's general sentence or a placeholder to fill in."""
        if ch.disclosures != "append":
            return ""
        rules = self.checker.triggered_disclosures(text, kinds, ctx.message_type.advertising)
        lines: list[str] = []
        for rule in rules:
            found = next((f.columns[c] for f in cited for c in rule.fill_fields
                          if f.columns.get(c) and self.checker.satisfies(rule, f.columns[c])), None)
            if found and not self.checker.satisfies(rule, "\n".join(lines)):
                lines.append(found)
        for rule in rules:
            general = rule.fallback or rule.placeholder
            if general and not self.checker.satisfies(rule, "\n".join(lines)):
                lines.append(general)
        lines = [x if x.endswith((".", "]", ")")) else x + "." for x in dict.fromkeys(lines)]
        return "※ 유의사항\n" + "\n".join(f"- {x}" for x in lines) if lines else ""

    def _compose(self, ctx: _Context, ch: ChannelRule, title: str | None, body: str, *,
                 block: str) -> tuple[str | None, str]:
        """(title, text) as sent: (광고) label, body, the notes block, the opt-out line."""
        ad = ctx.message_type.advertising and ch.ad.allowed
        prefix = f"{ch.ad.prefix} " if ad and ch.ad.prefix else ""
        if title is not None and prefix and ch.ad.prefix_field == "title":
            title = prefix + title
        text = (prefix if ch.ad.prefix_field == "text" else "") + body.strip()
        if block:
            text += "\n\n" + block
        if ad and (opt_out := self.rules.opt_out_text(ch)):
            text += "\n" + opt_out
        return title, text.strip()

    def _empty(self, ch: ChannelRule, warnings: list[str] | None = None) -> ChannelMessage:
        length = {"unit": ch.unit, "text": 0, "text_limit": ch.body.max, "title": None,
                  "title_limit": ch.title.max if ch.title else None, "requested_chars": None}
        return ChannelMessage(ch.name, ch.label, None, "", "", length, [], [], [], list(warnings or []),
                              list(ch.notes))

    # -- step 5 -------------------------------------------------------------------------------------
    def _citations(self, passages: list[Hit], messages: list[ChannelMessage]) -> list[dict[str, Any]]:
        used = sorted({n for m in messages for n in m.citations if 1 <= n <= len(passages)})
        out = []
        for n in used:
            hit = passages[n - 1]
            text = hit.chunk.text
            out.append({"n": n, **hit.citation.to_dict(), "score": round(hit.score, 6),
                        "text": text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"})
        return out


def _one_of(value: str, allowed: dict[str, Any], field_name: str, label: str) -> Any:
    if value in allowed:
        return allowed[value]
    names = list(allowed)
    raise InvalidInput(f"알 수 없는 {label}입니다: {value!r}. 사용 가능: {', '.join(names)}",
                       f"Unknown {field_name} {value!r}. Allowed: {', '.join(names)}",
                       details={"field": field_name, "value": value, "allowed": names})


def _file_info(file_text: FileText | None, passages: list[Hit]) -> dict[str, Any] | None:
    if file_text is None:
        return None
    used = sum(len(h.chunk.text) for h in passages if h.collection == FILE_COLLECTION)
    return {"url": file_text.url, "content_type": file_text.content_type, "bytes": file_text.size,
            "pages": len(file_text.pages), "chars_used": used, "truncated": file_text.truncated_pages}


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 3)

