"""The scene01 rule files (YAML data, not code) and their validated, compiled form.

Five files under ``jisik/apps/marketing/rules/``: ``channels.yaml`` (limits, format, ad marking,
templates), ``compliance.yaml`` (광고심의 rule set), ``audiences.yaml`` (tone per life stage),
``message_types.yaml`` and ``generation.yaml`` (template fields, retry wording, notices). A folder
given as ``JISIK_SCENE01_RULES_DIR`` may hold any of them; a file there replaces the packaged one
of the same name. Every regular expression is compiled at load time, so a broken rule file is a
:class:`~jisik.core.errors.ConfigError` naming the file and the rule, never a failure mid-request.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jisik.core.errors import ConfigError

Severity = Literal["error", "warning"]
Unit = Literal["chars", "euc-kr"]
RULE_FILES = ("channels", "compliance", "audiences", "message_types", "generation")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"scene01 규칙의 정규식이 올바르지 않습니다: {where}",
                          f"Invalid regular expression in scene01 rule {where}: {exc}") from exc


# -- channels ---------------------------------------------------------------------------------------

class Limit(_Strict):
    max: int = Field(ge=1, le=100_000)
    required: bool = False


class AdPolicy(_Strict):
    allowed: bool = True
    prefix: str = "(광고)"
    prefix_field: Literal["title", "text"] = "text"
    opt_out: str = ""


class TemplateSpec(_Strict):
    """``body``: parts (a sentence, or a list of alternative sentences: the first whose fields are
    all known) kept in order when their fields are known, joined by ``join``; ``title``: alternatives."""

    title: list[str] = Field(default_factory=list)
    body: list[str | list[str]] = Field(min_length=1)
    join: str = " "

    def alternatives(self) -> list[list[str]]:
        return [[part] if isinstance(part, str) else list(part) for part in self.body]


class ChannelRule(_Strict):
    name: str = ""
    label: str
    unit: Unit
    title: Limit | None = None
    body: Limit
    variables: bool = False
    variable_chars: int = Field(10, ge=0, le=100)
    disclosures: Literal["append", "check"] = "check"
    ad: AdPolicy = Field(default_factory=AdPolicy)
    format: str
    notes: list[str] = Field(default_factory=list)
    template: TemplateSpec

    @property
    def unit_ko(self) -> str:
        return "바이트" if self.unit == "euc-kr" else "자"


class ChannelRules(_Strict):
    version: int = 1
    sender: dict[str, str] = Field(default_factory=dict)
    replacements: dict[str, str] = Field(default_factory=dict)
    channels: dict[str, ChannelRule] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _named(cls, value: dict[str, ChannelRule]) -> dict[str, ChannelRule]:
        return {name: rule.model_copy(update={"name": name}) for name, rule in value.items()}


# -- compliance -------------------------------------------------------------------------------------

class PatternRule(_Strict):
    id: str
    pattern: str
    message: str
    severity: Severity = "error"
    suggestion: str = ""
    check: Literal["none", "luhn"] = "none"


class DisclosureRule(_Strict):
    id: str
    message: str
    require: str
    when_text: str | None = None
    when_facts: str | None = None
    when_advertising: bool = False
    fill_fields: list[str] = Field(default_factory=list)
    fallback: str = ""
    placeholder: str = ""
    severity: Severity = "error"


class CheckMessage(_Strict):
    message: str
    severity: Severity = "error"


class ComplianceRules(_Strict):
    version: int = 1
    forbidden: list[PatternRule]
    disclosures: list[DisclosureRule]
    short_channel_note: str = ""
    personal_data: list[PatternRule]
    channel_checks: dict[str, CheckMessage]
    promo_pattern: str
    ad_label_variants: str
    opt_out_pattern: str
    placeholder_pattern: str
    variable_pattern: str
    variable_like_pattern: str


# -- audiences, message types, generation -----------------------------------------------------------

class Audience(_Strict):
    tone: str
    guide: str = ""
    opening: str = ""
    closing: str = ""
    avoid: list[str] = Field(default_factory=list)


class AudienceRules(_Strict):
    version: int = 1
    audiences: dict[str, Audience] = Field(min_length=1)


class MessageType(_Strict):
    advertising: bool
    description: str = ""
    guide: str = ""


class MessageTypeRules(_Strict):
    version: int = 1
    message_types: dict[str, MessageType] = Field(min_length=1)


class GenerationRules(_Strict):
    version: int = 1
    fields: dict[str, list[str]]
    derived: dict[str, list[str]] = Field(default_factory=dict)
    empty_values: list[str] = Field(default_factory=list)
    fact_type_fields: list[str] = Field(default_factory=list)
    retry: str
    problems: dict[str, str]
    units: dict[str, str]
    notice_template_ko: str
    notice_template_en: str
    notice_llm_ko: str
    notice_llm_en: str
    not_found_ko: str


# -- the whole set ----------------------------------------------------------------------------------

class MarketingRules:
    """All rule files, validated, with their regular expressions compiled."""

    def __init__(self, channels: ChannelRules, compliance: ComplianceRules, audiences: AudienceRules,
                 message_types: MessageTypeRules, generation: GenerationRules) -> None:
        self.channels = channels.channels
        self.sender = channels.sender
        self.replacements = channels.replacements
        self.compliance = compliance
        self.audiences = audiences.audiences
        self.message_types = message_types.message_types
        self.generation = generation
        c = compliance
        self.forbidden = [(r, _compile(r.pattern, r.id)) for r in c.forbidden]
        self.personal_data = [(r, _compile(r.pattern, r.id)) for r in c.personal_data]
        self.disclosures = [
            (r, _compile(r.require, r.id), _compile(r.when_text, r.id) if r.when_text else None,
             _compile(r.when_facts, r.id) if r.when_facts else None) for r in c.disclosures]
        self.promo = _compile(c.promo_pattern, "promo_pattern")
        self.ad_label_variants = _compile(c.ad_label_variants, "ad_label_variants")
        self.opt_out = _compile(c.opt_out_pattern, "opt_out_pattern")
        self.placeholder = _compile(c.placeholder_pattern, "placeholder_pattern")
        self.variable = _compile(c.variable_pattern, "variable_pattern")
        self.variable_like = _compile(c.variable_like_pattern, "variable_like_pattern")
        missing = sorted(set(_CHECK_IDS) - set(c.channel_checks))
        if missing:
            raise ConfigError(f"compliance.yaml의 channel_checks에 빠진 항목이 있습니다: {missing}",
                              f"compliance.yaml channel_checks lacks {missing}")
        for name, rule in self.channels.items():
            for text in [*rule.template.title, *(x for part in rule.template.alternatives() for x in part)]:
                _check_template(text, f"channels.{name}.template", self.template_fields)

    @property
    def template_fields(self) -> set[str]:
        g = self.generation
        return {*g.fields, *g.derived, "title", "summary", "file_summary", "opening", "closing"}

    def channel_check(self, check_id: str) -> CheckMessage:
        return self.compliance.channel_checks[check_id]

    def opt_out_text(self, channel: ChannelRule) -> str:
        return fill(channel.ad.opt_out, self.sender) or ""


# the channel checks the code performs (their messages live in compliance.yaml)
_CHECK_IDS = ("LEN-BODY", "LEN-TITLE", "TITLE-MISSING", "AD-LABEL", "AD-LABEL-FORM", "AD-OPT-OUT", "AD-NOT-ALLOWED",
              "INFO-PROMO", "ENC-UNSUPPORTED", "VAR-NOT-SUPPORTED", "VAR-SYNTAX", "PLACEHOLDER", "TONE-AVOID")


# a template field: {name}; a Kakao variable #{name} is literal text, not a field
FIELD = re.compile(r"(?<!#)\{([^{}#\s]+)\}")


def fill(template: str, values: dict[str, str]) -> str | None:
    """``template`` with its ``{fields}`` replaced, or None when one of them has no (non-empty) value."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(m.group(1), "")
        if not value:
            missing = True
        return value

    out = FIELD.sub(sub, template)
    return None if missing else out


def _check_template(text: str, where: str, allowed: set[str]) -> None:
    unknown = sorted(n for n in FIELD.findall(text) if n not in allowed)
    if unknown:
        raise ConfigError(f"scene01 템플릿 {where}에 알 수 없는 필드가 있습니다: {unknown}",
                          f"scene01 template {where} uses unknown fields {unknown}; allowed: {sorted(allowed)}")


def _read(name: str, directory: Path | None) -> tuple[dict[str, Any], str]:
    if directory is not None and (path := directory / f"{name}.yaml").is_file():
        raw, source = path.read_text(encoding="utf-8"), str(path)
    else:
        res = resources.files("jisik.apps.marketing") / "rules" / f"{name}.yaml"
        raw, source = res.read_text(encoding="utf-8"), f"jisik/apps/marketing/rules/{name}.yaml"
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"scene01 규칙 파일을 읽을 수 없습니다: {source}",
                          f"Cannot parse the scene01 rule file {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"scene01 규칙 파일 형식이 올바르지 않습니다: {source}",
                          f"The scene01 rule file {source} is not a mapping.")
    return data, source


def _stamp(directory: Path | None) -> tuple[tuple[str, int], ...]:
    if directory is None:
        return ()
    out = []
    for name in RULE_FILES:
        path = directory / f"{name}.yaml"
        try:
            out.append((name, path.stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def load_rules(directory: Path | None = None) -> MarketingRules:
    """The rules (packaged, or overridden file by file from ``directory``); cached until a file changes."""
    return _load(directory, _stamp(directory))


@lru_cache(maxsize=8)
def _load(directory: Path | None, _stamp: tuple[tuple[str, int], ...]) -> MarketingRules:
    models: list[Any] = []
    kinds: tuple[type[_Strict], ...] = (ChannelRules, ComplianceRules, AudienceRules, MessageTypeRules,
                                        GenerationRules)
    for name, model in zip(RULE_FILES, kinds, strict=True):
        data, source = _read(name, directory)
        try:
            models.append(model.model_validate(data))
        except ValidationError as exc:
            raise ConfigError(f"scene01 규칙 파일이 올바르지 않습니다: {source}",
                              f"Invalid scene01 rule file {source}: {exc.errors(include_url=False)}") from exc
    return MarketingRules(*models)
