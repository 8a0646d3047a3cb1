"""Prompt templates (YAML, one per app) and their rendering into chat messages.

A template (``jisik/prompts/<app>.yaml``) has:

* ``system`` — the rules (Korean); may use the app's ``variables`` and ``{not_found}``;
* ``context`` — how the passages are shown: ``header``, ``item`` (fields ``{n}``, ``{title}``,
  ``{text}``, ``{source}``, ``{locator}``, ``{doc_id}``), ``separator``, ``empty`` (when there
  is no passage) and ``max_chars_per_passage``;
* ``history`` — ``block`` with ``{summary}``, shown only when there is a conversation summary;
* ``question`` — the user message: ``{context}``, ``{history}``, ``{question}`` and variables;
* ``variables`` — the app's own fields with their defaults (a request may override them).

:func:`render` numbers the passages ``[1]..[n]`` in the order of ``hits``, which is the order
of the citation list, so a marker ``[k]`` in the answer points to ``hits[k-1]``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jisik.core.errors import ConfigError, InvalidInput, NotFound
from jisik.core.types import Hit, JsonDict
from jisik.models.llm.base import ChatMessage
from jisik.rag.extractive import NOT_FOUND_KO

_APP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MARKER_NUMBERS = re.compile(r"\[(\d{1,3})\]")
ITEM_FIELDS = frozenset({"n", "title", "text", "source", "locator", "doc_id"})


class ContextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: str = "참고 문서:"
    item: str = "[{n}] {title}\n{text}"
    separator: str = "\n\n"
    empty: str = "(검색된 문서가 없습니다)"
    max_chars_per_passage: int = Field(1500, ge=50)


class HistoryFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: str = "이전 대화 요약:\n{summary}"


class ExamplePassage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = ""
    text: str
    locator: JsonDict = Field(default_factory=dict)


class Example(BaseModel):
    """A worked example, shown to the model as an earlier user/assistant turn (few-shot)."""

    model_config = ConfigDict(extra="forbid")

    passages: list[ExamplePassage] = Field(default_factory=list)
    question: str
    answer: str


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str
    version: int = 1
    description: str = ""
    system: str
    context: ContextFormat = Field(default_factory=ContextFormat)
    history: HistoryFormat = Field(default_factory=HistoryFormat)
    question: str
    variables: dict[str, str] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    not_found: str = NOT_FOUND_KO

    def check(self) -> PromptTemplate:
        """Every ``{field}`` must be one the renderer fills, or a declared variable."""
        names = set(self.variables)
        _check_fields("system", self.system, names | {"not_found"})
        _check_fields("context.item", self.context.item, set(ITEM_FIELDS))
        _check_fields("history.block", self.history.block, {"summary"})
        _check_fields("question", self.question, names | {"context", "history", "question", "not_found"})
        reserved = names & (ITEM_FIELDS | {"context", "history", "question", "not_found", "summary"})
        if reserved:
            raise ConfigError(f"프롬프트 '{self.app}'의 변수 이름이 예약어와 겹칩니다: {sorted(reserved)}",
                              f"Prompt '{self.app}' declares reserved variable names: {sorted(reserved)}")
        for i, ex in enumerate(self.examples, 1):
            bad = [k for k in _MARKER_NUMBERS.findall(ex.answer) if not 1 <= int(k) <= len(ex.passages)]
            if bad:
                raise ConfigError(f"프롬프트 '{self.app}'의 예시 {i} 답에 없는 문서 번호가 있습니다: {bad}",
                                  f"Example {i} of prompt '{self.app}' cites passages that it does not have: {bad}")
        return self


def _check_fields(where: str, template: str, allowed: set[str]) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"프롬프트 템플릿 {where}의 중괄호가 올바르지 않습니다: {exc}",
                          f"Malformed braces in prompt template {where}: {exc}") from exc
    unknown = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in allowed or not f)
    if unknown:
        raise ConfigError(
            f"프롬프트 템플릿 {where}에 알 수 없는 필드가 있습니다: {unknown}",
            f"Prompt template {where} uses unknown fields {unknown}; allowed: {sorted(allowed)}",
            hint="변수는 variables에 선언하세요; 중괄호 자체는 {{ }} 로 쓰세요. "
                 "(Declare variables under `variables`; write literal braces as {{ }}.)",
        )


def parse_prompt(raw: str | Mapping[str, Any], *, source: str = "<string>") -> PromptTemplate:
    data = yaml.safe_load(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(data, dict):
        raise ConfigError(f"프롬프트 파일 형식이 올바르지 않습니다: {source}",
                          f"Prompt file {source} is not a mapping.")
    try:
        return PromptTemplate.model_validate(data).check()
    except ValidationError as exc:
        raise ConfigError(f"프롬프트 파일이 올바르지 않습니다: {source}",
                          f"Invalid prompt file {source}: {exc.errors(include_url=False)}") from exc


def load_prompt(app: str = "default", *, directory: Path | None = None) -> PromptTemplate:
    """The template of ``app``: from ``directory`` when given and it has one, else the packaged one."""
    if not _APP.match(app):
        raise InvalidInput(f"앱 이름이 올바르지 않습니다: {app!r}", f"Invalid app name {app!r}.")
    if directory is not None:
        path = directory / f"{app}.yaml"
        if path.is_file():
            return parse_prompt(path.read_text(encoding="utf-8"), source=str(path))
    return _packaged(app)


@lru_cache(maxsize=32)
def _packaged(app: str) -> PromptTemplate:
    res = resources.files("jisik") / "prompts" / f"{app}.yaml"
    if not res.is_file():
        raise NotFound(f"앱 '{app}'의 프롬프트가 없습니다. 사용 가능: {', '.join(available_prompts())}",
                       f"No prompt for app '{app}'. Available: {', '.join(available_prompts())}")
    return parse_prompt(res.read_text(encoding="utf-8"), source=f"jisik/prompts/{app}.yaml")


def available_prompts() -> list[str]:
    folder = resources.files("jisik") / "prompts"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def format_locator(locator: JsonDict) -> str:
    """``{"page": 3}`` -> ``3쪽``; ``{"rows": [10, 19]}`` -> ``10-19행``; others ``key=value``."""
    parts: list[str] = []
    for key, value in locator.items():
        if key == "page":
            parts.append(f"{value}쪽")
        elif key == "rows" and isinstance(value, list | tuple) and len(value) == 2:
            parts.append(f"{value[0]}-{value[1]}행")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def format_context(prompt: PromptTemplate, hits: Sequence[Hit]) -> str:
    return _format_items(prompt, [
        (h.chunk.title or h.chunk.doc_id, h.chunk.text, h.chunk.source_uri, h.chunk.locator, h.chunk.doc_id)
        for h in hits])


def _format_items(prompt: PromptTemplate, items: Sequence[tuple[str, str, str, JsonDict, str]]) -> str:
    fmt = prompt.context
    if not items:
        return fmt.empty
    out = []
    for n, (title, raw, source, locator, doc_id) in enumerate(items, 1):
        text = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", raw)).strip()
        if len(text) > fmt.max_chars_per_passage:
            text = text[: fmt.max_chars_per_passage].rstrip() + "…"
        item = fmt.item.format(n=n, title=title, text=text, source=source, locator=format_locator(locator),
                               doc_id=doc_id)
        out.append(item.replace(" ()", ""))  # an item format like "{title} ({locator})" without a locator
    return f"{fmt.header}\n{fmt.separator.join(out)}" if fmt.header else fmt.separator.join(out)


def _user_message(prompt: PromptTemplate, values: Mapping[str, str], context: str, history: str,
                  question: str) -> ChatMessage:
    text = prompt.question.format(**values, context=context, history=history, question=question.strip(),
                                  not_found=prompt.not_found)
    return {"role": "user", "content": re.sub(r"\n{3,}", "\n\n", text).strip()}


def render(
    prompt: PromptTemplate,
    question: str,
    hits: Sequence[Hit],
    history_summary: str | None = None,
    *,
    variables: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """System message, the template's worked examples as earlier turns, then the user message
    with ``hits`` numbered [1]..[n] in order. The fixed prefix (system + examples) is the same
    for every question, so a server with prompt caching (llama.cpp, vLLM) computes it once."""
    unknown = sorted(set(variables or {}) - set(prompt.variables))
    if unknown:
        raise InvalidInput(
            f"앱 '{prompt.app}'에 없는 변수입니다: {unknown}. 사용 가능: {sorted(prompt.variables)}",
            f"App '{prompt.app}' has no variables {unknown}; allowed: {sorted(prompt.variables)}",
        )
    values = {**prompt.variables, **{k: str(v) for k, v in (variables or {}).items()}}
    summary = (history_summary or "").strip()
    history = prompt.history.block.format(summary=summary) if summary else ""
    messages: list[ChatMessage] = [
        {"role": "system", "content": prompt.system.format(**values, not_found=prompt.not_found).strip()}]
    for ex in prompt.examples:
        context = _format_items(prompt, [(p.title, p.text, "", p.locator, "") for p in ex.passages])
        messages.append(_user_message(prompt, values, context, "", ex.question))
        messages.append({"role": "assistant", "content": ex.answer.strip()})
    messages.append(_user_message(prompt, values, format_context(prompt, hits), history, question))
    return messages
