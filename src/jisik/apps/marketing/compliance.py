"""The ad-compliance (광고심의) check of one channel message, driven by ``rules/compliance.yaml``.

Checked, in this order: channel format (length, title, CP949 characters, Kakao variables), ad
marking (``(광고)`` at the start, its disguised variants, the free opt-out, 알림톡 carrying ads),
forbidden absolute / superlative claims, required disclosures of financial products, personal
data in the text (resident registration, mobile, e-mail, card numbers with a Luhn check, account
numbers), placeholders still to be filled, and words unsuited to the life stage.

Every :class:`Violation` names its rule id, severity, message and where it is: the field
(``title`` / ``text``) and the character span ``[start, end)`` in it, or no span for something
missing (a disclosure, the ad label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .length import channel_measure, encodable
from .rules import ChannelRule, DisclosureRule, MarketingRules, Severity

Field = str  # "title" | "text"


@dataclass(slots=True)
class Violation:
    rule_id: str
    severity: Severity
    message: str
    field: Field | None = None
    span: tuple[int, int] | None = None
    text: str = ""  # the offending text (empty for something missing)
    suggestion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "severity": self.severity, "message": self.message, "field": self.field,
                "span": list(self.span) if self.span is not None else None, "text": self.text,
                "suggestion": self.suggestion}


def luhn_ok(digits: str) -> bool:
    nums = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(nums) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


class ComplianceChecker:
    def __init__(self, rules: MarketingRules) -> None:
        self.rules = rules

    # -- pieces the generator also uses ---------------------------------------------------------
    def forbidden(self, text: str, field: Field = "text") -> list[Violation]:
        out = []
        for rule, pattern in self.rules.forbidden:
            for m in pattern.finditer(text):
                out.append(Violation(rule.id, rule.severity, rule.message, field, m.span(), m.group(),
                                     rule.suggestion))
        return out

    def triggered_disclosures(self, text: str, facts: str, advertising: bool) -> list[DisclosureRule]:
        """Disclosure rules that apply to this message and that ``text`` does not satisfy yet."""
        out = []
        for rule, require, when_text, when_facts in self.rules.disclosures:
            applies = (rule.when_advertising and advertising) or bool(when_text and when_text.search(text)) \
                or bool(when_facts and facts and when_facts.search(facts))
            if applies and not require.search(text):
                out.append(rule)
        return out

    def satisfies(self, rule: DisclosureRule, text: str) -> bool:
        return any(r.id == rule.id and req.search(text) for r, req, _, _ in self.rules.disclosures)

    # -- the whole check ------------------------------------------------------------------------
    def check(self, channel: ChannelRule, text: str, *, title: str | None = None, advertising: bool,
              facts: str = "", life_stage: str | None = None) -> list[Violation]:
        fields: list[tuple[Field, str]] = [("text", text)] + ([("title", title)] if title else [])
        out = self._format(channel, text, title)
        out += self._ad(channel, text, title, advertising)
        for name, value in fields:
            out += self.forbidden(value, name)
        out += self._disclosures(channel, f"{title or ''}\n{text}", facts, advertising)
        for name, value in fields:
            out += self._personal_data(value, name)
            out += self._matches("PLACEHOLDER", self.rules.placeholder, value, name)
            out += self._avoid(value, name, life_stage)
        return out

    def _violation(self, check_id: str, field: Field | None = None, span: tuple[int, int] | None = None,
                   text: str = "", **values: Any) -> Violation:
        c = self.rules.channel_check(check_id)
        return Violation(check_id, c.severity, c.message.format(text=text, **values), field, span, text)

    def _matches(self, check_id: str, pattern: re.Pattern[str], value: str, field: Field,
                 **values: Any) -> list[Violation]:
        return [self._violation(check_id, field, m.span(), m.group(), **values) for m in pattern.finditer(value)]

    def _format(self, ch: ChannelRule, text: str, title: str | None) -> list[Violation]:
        out: list[Violation] = []
        size = channel_measure(ch, self.rules.variable)
        unit = self.rules.generation.units.get(ch.unit, ch.unit)
        if (n := size(text)) > ch.body.max:
            out.append(self._violation("LEN-BODY", "text", channel=ch.name, length=n, limit=ch.body.max, unit=unit))
        if ch.title is not None:
            if title and (n := size(title)) > ch.title.max:
                out.append(self._violation("LEN-TITLE", "title", channel=ch.name, length=n, limit=ch.title.max,
                                           unit=unit))
            if ch.title.required and not (title or "").strip():
                out.append(self._violation("TITLE-MISSING", "title", channel=ch.name))
        for name, value in [("text", text)] + ([("title", title)] if title else []):
            if ch.unit == "euc-kr":
                out += [self._violation("ENC-UNSUPPORTED", name, (i, i + 1), c, channel=ch.name)
                        for i, c in enumerate(value) if not encodable(c)]
            for m in self.rules.variable_like.finditer(value):
                if not ch.variables:
                    out.append(self._violation("VAR-NOT-SUPPORTED", name, m.span(), m.group(), channel=ch.name))
                elif not self.rules.variable.fullmatch(m.group()):
                    out.append(self._violation("VAR-SYNTAX", name, m.span(), m.group(), channel=ch.name))
        return out

    def _ad(self, ch: ChannelRule, text: str, title: str | None, advertising: bool) -> list[Violation]:
        if not advertising:
            return self._matches("INFO-PROMO", self.rules.promo, text, "text", channel=ch.name)
        if not ch.ad.allowed:
            return [self._violation("AD-NOT-ALLOWED", channel=ch.name)]
        out: list[Violation] = []
        field: Field = ch.ad.prefix_field
        value = (title or "") if field == "title" else text
        if not value.lstrip().startswith(ch.ad.prefix):
            variant = self.rules.ad_label_variants.match(value)
            if variant is not None:
                out.append(self._violation("AD-LABEL-FORM", field, variant.span(), variant.group().strip(),
                                           channel=ch.name))
            else:
                out.append(self._violation("AD-LABEL", field, channel=ch.name))
        if ch.ad.opt_out and not self.rules.opt_out.search(text):
            out.append(self._violation("AD-OPT-OUT", "text", channel=ch.name))
        return out

    def _disclosures(self, ch: ChannelRule, text: str, facts: str, advertising: bool) -> list[Violation]:
        out = []
        for rule in self.triggered_disclosures(text, facts, advertising):
            if ch.disclosures == "check":
                out.append(Violation(rule.id, "warning", rule.message + self.rules.compliance.short_channel_note))
            else:
                out.append(Violation(rule.id, rule.severity, rule.message))
        return out

    def _personal_data(self, value: str, field: Field) -> list[Violation]:
        out = []
        for rule, pattern in self.rules.personal_data:
            for m in pattern.finditer(value):
                if rule.check == "luhn" and not luhn_ok(m.group()):
                    continue
                out.append(Violation(rule.id, rule.severity, rule.message, field, m.span(), m.group(),
                                     rule.suggestion))
        return out

    def _avoid(self, value: str, field: Field, life_stage: str | None) -> list[Violation]:
        audience = self.rules.audiences.get(life_stage or "")
        if audience is None:
            return []
        out = []
        for word in audience.avoid:
            start = value.find(word)
            while start >= 0:
                out.append(self._violation("TONE-AVOID", field, (start, start + len(word)), word))
                start = value.find(word, start + len(word))
        return out
