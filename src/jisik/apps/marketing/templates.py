"""Facts of a retrieved passage, and channel templates filled with them (the no-LLM path).

Table rows (demo tables, pipeline tables, finlife products) are indexed as ``컬럼: 값`` lines
(:func:`jisik.text.tables.render_row`); :func:`facts_of` reads those lines back and maps column
names to the template fields of ``generation.yaml`` (``company``, ``product``, ``benefit`` ...).
A passage without such lines (a PDF page, a guide) gives ``summary``: its sentence that best
matches the request (:func:`jisik.rag.extractive.extractive_answer`), quoted as it is.

:func:`render_template` fills a channel's template: the title alternatives whose fields are all
known (the caller takes the first that fits the limit) and every body part whose fields are all
known (parts are whole sentences, so dropping one never breaks a sentence). Nothing is invented:
a part without facts is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jisik.core.types import Hit
from jisik.rag.extractive import extractive_answer

from .rules import Audience, GenerationRules, TemplateSpec, fill

_LINE = re.compile(r"^[ \t]*([^:\n\-\u2022*#][^:\n]{0,29}?)[ \t]*:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
_MARKER = re.compile(r"\s*\[\d{1,3}\]")
_BULLETS = re.compile(r"^[\s*\-•·▶▷※■□○●◆◇→]+")
_MAX_VALUE = 300


def clean_value(value: str) -> str:
    """One line, no leading bullet marks, no final period (templates add their own), bounded."""
    return _BULLETS.sub("", " ".join(value.split())).rstrip(" .")[:_MAX_VALUE]


def columns_of(text: str) -> dict[str, str]:
    """``컬럼: 값`` lines of a passage (the first value of a repeated column wins)."""
    out: dict[str, str] = {}
    for m in _LINE.finditer(text):
        key = m.group(1).strip()
        if key and key not in out:
            out[key] = clean_value(m.group(2))
    return out


@dataclass(slots=True)
class Facts:
    number: int  # the passage number [n] these facts come from
    columns: dict[str, str]  # column -> value, as written in the passage
    values: dict[str, str] = field(default_factory=dict)  # template field -> value

    def kind_text(self, rules: GenerationRules) -> str:
        """What ``when_facts`` of the disclosure rules look at (product type, product, title)."""
        return " ".join(self.values.get(f, "") for f in rules.fact_type_fields).strip()


def facts_of(hit: Hit, number: int, rules: GenerationRules, *, question: str = "", tokenizer: Any = None) -> Facts:
    empty = set(rules.empty_values)
    columns = {k: v for k, v in columns_of(hit.chunk.text).items() if v not in empty}
    values: dict[str, str] = {}
    for name, candidates in rules.fields.items():
        value = next((columns[c] for c in candidates if columns.get(c)), "")
        if value:
            values[name] = value
    for name, alternatives in rules.derived.items():
        for template in alternatives:
            filled = fill(template, columns)
            if filled:
                values[name] = clean_value(filled)
                break
    if hit.chunk.title:
        values["title"] = clean_value(hit.chunk.title)
    if "benefit" not in values and tokenizer is not None and question:
        quoted = extractive_answer(question, [hit], tokenizer, max_sentences=1, min_overlap=0.0)
        if quoted.grounded:
            values["summary"] = clean_value(_MARKER.sub("", quoted.text))
    return Facts(number, columns, values)


def tone_values(audience: Audience) -> dict[str, str]:
    return {"opening": audience.opening, "closing": audience.closing}


def render_template(spec: TemplateSpec, values: dict[str, str]) -> tuple[list[str], list[str]]:
    """(title alternatives, body parts) of ``spec`` filled with ``values`` (those with all fields known)."""
    titles = [t for t in (fill(x, values) for x in spec.title) if t]
    parts = [next((p for p in (fill(x, values) for x in options) if p), None) for options in spec.alternatives()]
    return titles, [p for p in parts if p]
