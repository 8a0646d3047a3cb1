"""The 광고심의 rule set, one rule at a time: forbidden claims, required disclosures, personal data,
ad marking and channel format. Every violation names its rule id and where it is (field + span).
The last test makes sure no rule of compliance.yaml goes untested."""

from __future__ import annotations

import pytest

from jisik.apps.marketing.compliance import ComplianceChecker, Violation, luhn_ok
from jisik.apps.marketing.rules import load_rules

RULES = load_rules()
CHECKER = ComplianceChecker(RULES)
PUSH, TALK, FRIEND, SMS, LMS = (RULES.channels[c] for c in ("PUSH", "알림톡", "친구톡", "SMS", "LMS"))
# a compliant advertising message for the long channels: label, disclosures, opt-out
CLEAN = ("(광고) 가람은행 정기예금 가입 고객께 기본 연 2.80% 금리를 드립니다.\n"
         "- 이 예금은 예금자보호법에 따라 1인당 1억 원까지 보호됩니다.\n"
         "- 금리는 시장 상황에 따라 변동될 수 있습니다.\n- 가입 전 상품설명서와 약관을 읽어 보시기 바랍니다.\n"
         "- 준법감시인 심의필 제2025-0001호\n무료거부 080-000-0000")


def ids(violations: list[Violation]) -> list[str]:
    return [v.rule_id for v in violations]


def test_a_compliant_message_passes() -> None:
    assert CHECKER.check(LMS, CLEAN, title="정기예금 안내", advertising=True, facts="정기예금") == []


FORBIDDEN = [
    ("ABS-BEST", "업계 최고의 혜택을 드립니다", "업계 최고의"),
    ("ABS-BEST", "최고 수준의 금리", "최고 수준"),
    ("ABS-BEST", "업계 최고 금리", "업계 최고"),
    ("ABS-NUMBER-ONE", "고객 만족도 1위 은행", "1위"),
    ("ABS-NUMBER-ONE", "카드 업계 1위", "업계 1위"),
    ("ABS-UNCONDITIONAL", "무조건 드리는 캐시백", "무조건"),
    ("ABS-GUARANTEE", "100% 보장되는 혜택", "100% 보장"),
    ("ABS-GUARANTEE", "원금 보장 상품", "원금 보장"),
    ("ABS-GUARANTEE", "수익률을 보장합니다", "수익률을 보장"),
    ("ABS-ONLY", "국내 유일한 상품", "유일한"),
    ("ABS-FIRST", "금융권 최초 출시", "금융권 최초"),
    ("ABS-NO-RISK", "확정 수익을 드립니다", "확정 수익"),
    ("ABS-NO-RISK", "손실 걱정 없는 투자", "손실 걱정 없"),
    ("ABS-ABSOLUTE", "절대 놓치지 마세요", "절대"),
    ("ABS-ABSOLUTE", "완벽한 노후 준비", "완벽한"),
    ("ABS-ANYONE", "누구나 발급 가능한 카드", "누구나 발급"),
    ("ABS-ANYONE", "심사 없이 바로", "심사 없이"),
    ("EXG-HYPE", "대박 혜택", "대박"),
]


@pytest.mark.parametrize(("rule_id", "text", "found"), FORBIDDEN)
def test_forbidden_claims_with_their_span(rule_id: str, text: str, found: str) -> None:
    hits = [v for v in CHECKER.check(PUSH, text, title="혜택", advertising=False) if v.rule_id == rule_id]
    assert len(hits) == 1
    v = hits[0]
    assert v.field == "text" and v.span is not None and text[v.span[0]:v.span[1]] == found == v.text
    assert v.severity == next(r.severity for r, _ in RULES.forbidden if r.id == rule_id) and v.message


@pytest.mark.parametrize("text", [
    "최고 연 3.30%(세전) 금리", "최고금리 연 5.00%", "1인당 최고 1억 원까지 보호", "최고 우대금리 연 0.5%p",
    "원금과 이자를 합해 보호됩니다", "12개월 가입 시 연 2.8%",
])
def test_rate_wording_the_reviewers_accept_is_not_flagged(text: str) -> None:
    assert not CHECKER.forbidden(text)


def test_forbidden_words_in_the_title_name_the_title() -> None:
    v = next(v for v in CHECKER.check(PUSH, "혜택 안내", title="(광고) 무조건 캐시백", advertising=True)
             if v.rule_id == "ABS-UNCONDITIONAL")
    assert v.field == "title" and v.span == (5, 8)


DISCLOSURES = [
    ("DISC-DEPOSIT-PROTECTION", "정기예금 가입 고객께 연 2.8% 금리", "", "예금자보호법에 따라 보호됩니다"),
    ("DISC-DEPOSIT-PROTECTION", "특별 혜택을 드립니다", "정기예금", "예금자 보호 대상입니다"),
    ("DISC-PRINCIPAL-LOSS", "펀드 가입 이벤트", "", "운용 결과에 따라 원금 손실이 발생할 수 있습니다"),
    ("DISC-PRINCIPAL-LOSS", "가입 고객 이벤트", "ELS", "원금의 일부 또는 전부 손실이 날 수 있습니다"),
    ("DISC-RATE-CHANGE", "연 2.8% 금리를 드립니다", "", "금리는 시장 상황에 따라 변동될 수 있습니다"),
    ("DISC-CARD-CREDIT", "신용카드 발급 이벤트", "", "과도한 카드 이용은 개인신용평점 하락의 원인이 됩니다"),
    ("DISC-CARD-CREDIT", "발급 이벤트", "신용카드", "신용점수에 영향을 줄 수 있습니다"),
    ("DISC-TERMS", "이벤트 안내", "", "가입 전 상품설명서를 읽어 보세요"),
    ("DISC-REVIEW-NUMBER", "이벤트 안내", "", "준법감시인 심의필 제2025-0001호"),
]


@pytest.mark.parametrize(("rule_id", "text", "facts", "satisfied_by"), DISCLOSURES)
def test_required_disclosures(rule_id: str, text: str, facts: str, satisfied_by: str) -> None:
    advertising = rule_id in ("DISC-TERMS", "DISC-REVIEW-NUMBER")
    missing = [v for v in CHECKER.check(LMS, f"(광고) {text}\n무료거부 080-000-0000", advertising=advertising,
                                        facts=facts) if v.rule_id == rule_id]
    assert len(missing) == 1 and missing[0].span is None and missing[0].severity == "error" and missing[0].message
    # a short channel cannot hold every notice: the same gap is a warning that says where it must go
    short = [v for v in CHECKER.check(PUSH, text, title="안내", advertising=advertising, facts=facts)
             if v.rule_id == rule_id]
    assert short[0].severity == "warning" and "연결되는 화면" in short[0].message
    present = CHECKER.check(LMS, f"(광고) {text}\n{satisfied_by}\n무료거부 080-000-0000", advertising=advertising,
                            facts=facts)
    assert rule_id not in ids(present)


def test_disclosures_do_not_apply_to_unrelated_messages() -> None:
    found = ids(CHECKER.check(LMS, "지점 이전 안내: 본점이 새 건물로 옮깁니다.", advertising=False))
    assert not [i for i in found if i.startswith("DISC-")]


PERSONAL_DATA = [
    ("PII-RRN", "고객 900101-1234567 님", "900101-1234567"),
    ("PII-RRN", "번호 0301154123456 확인", "0301154123456"),
    ("PII-MOBILE", "담당자 010-1234-5678로 연락", "010-1234-5678"),
    ("PII-MOBILE", "문의 01098765432", "01098765432"),
    ("PII-EMAIL", "hong.gildong@example.com 으로 회신", "hong.gildong@example.com"),
    ("PII-CARD", "카드 4111 1111 1111 1111 결제", "4111 1111 1111 1111"),
    ("PII-CARD", "카드 5555-5555-5555-4444 결제", "5555-5555-5555-4444"),
    ("PII-ACCOUNT", "입금 계좌번호: 110-123-456789", "계좌번호: 110-123-456789"),
]


@pytest.mark.parametrize(("rule_id", "text", "found"), PERSONAL_DATA)
def test_personal_data_with_its_span(rule_id: str, text: str, found: str) -> None:
    hits = [v for v in CHECKER.check(FRIEND, text, advertising=False) if v.rule_id == rule_id]
    assert len(hits) == 1 and text[hits[0].span[0]:hits[0].span[1]] == found  # type: ignore[index]
    assert hits[0].severity == "error"


@pytest.mark.parametrize("text", [
    "무료거부 080-000-0000", "고객센터 1588-0000", "카드 4111 1111 1111 1112 결제",  # Luhn fails: not a card
    "기간 2025-10-01 ~ 2025-12-31", "금액 1,000,000원", "2025.09.25~2026.09.24",
])
def test_numbers_that_are_not_personal_data(text: str) -> None:
    assert not [v for v in CHECKER.check(FRIEND, text, advertising=False) if v.rule_id.startswith("PII-")]


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("5555 5555 5555 4444") and not luhn_ok("4111111111111112")
    assert not luhn_ok("1234")


# the channel checks the tests below exercise (through only())
CHANNEL_CHECKS = {"AD-LABEL", "AD-LABEL-FORM", "AD-OPT-OUT", "AD-NOT-ALLOWED", "INFO-PROMO", "LEN-BODY", "LEN-TITLE",
                  "TITLE-MISSING", "ENC-UNSUPPORTED", "VAR-NOT-SUPPORTED", "VAR-SYNTAX", "PLACEHOLDER", "TONE-AVOID"}


def only(violations: list[Violation], rule_id: str) -> Violation:
    assert rule_id in CHANNEL_CHECKS
    found = [v for v in violations if v.rule_id == rule_id]
    assert len(found) == 1, ids(violations)
    return found[0]


def test_ad_label_missing_disguised_and_placed_in_the_push_title() -> None:
    v = only(CHECKER.check(SMS, "가람은행 예금 이벤트\n무료거부 080-000-0000", advertising=True), "AD-LABEL")
    assert v.span is None and v.field == "text" and v.severity == "error"
    v = only(CHECKER.check(SMS, "[광고] 가람은행 이벤트\n무료거부 080-000-0000", advertising=True), "AD-LABEL-FORM")
    assert v.span == (0, 4) and v.text == "[광고]"
    v = only(CHECKER.check(FRIEND, "(광 고) 이벤트\n수신거부 | 홈 > 채널 차단", advertising=True), "AD-LABEL-FORM")
    assert v.text == "(광 고)"
    assert "AD-LABEL" not in ids(CHECKER.check(PUSH, "혜택 안내\n수신거부: 앱 설정 > 알림", title="(광고) 혜택",
                                               advertising=True))
    v = only(CHECKER.check(PUSH, "(광고) 혜택 안내\n수신거부: 앱 설정 > 알림", title="혜택", advertising=True), "AD-LABEL")
    assert v.field == "title"


def test_ad_opt_out() -> None:
    v = only(CHECKER.check(SMS, "(광고) 가람은행 이벤트", advertising=True), "AD-OPT-OUT")
    assert v.span is None
    assert "AD-OPT-OUT" not in ids(CHECKER.check(SMS, "(광고) 이벤트\n무료수신거부 0800001234", advertising=True))


def test_alimtalk_cannot_carry_ads_and_informational_messages_are_checked_for_promotion() -> None:
    v = only(CHECKER.check(TALK, "신규 가입 혜택 안내", advertising=True), "AD-NOT-ALLOWED")
    assert v.severity == "error" and "친구톡" in v.message
    v = only(CHECKER.check(TALK, "만기 안내: 특가 상품을 확인하세요", advertising=False), "INFO-PROMO")
    assert v.severity == "warning" and v.text == "특가"


def test_length_title_and_encoding_checks() -> None:
    v = only(CHECKER.check(SMS, "(광고) " + "가" * 45 + "\n무료거부 080-000-0000", advertising=True), "LEN-BODY")
    assert "바이트" in v.message and "SMS" in v.message
    v = only(CHECKER.check(PUSH, "본문", title="제" * 41, advertising=False), "LEN-TITLE")
    assert v.field == "title"
    only(CHECKER.check(PUSH, "본문", title="", advertising=False), "TITLE-MISSING")
    v = only(CHECKER.check(SMS, "혜택 ✓ 확인", advertising=False), "ENC-UNSUPPORTED")
    assert v.span == (3, 4) and v.text == "✓"
    assert "ENC-UNSUPPORTED" not in ids(CHECKER.check(FRIEND, "혜택 ✓ 확인", advertising=False))


def test_kakao_variables() -> None:
    assert not [v for v in CHECKER.check(TALK, "#{고객명}님, 만기 안내입니다.", advertising=False)
                if v.rule_id.startswith("VAR-")]
    v = only(CHECKER.check(SMS, "#{고객명}님, 만기 안내입니다.", advertising=False), "VAR-NOT-SUPPORTED")
    assert v.span == (0, 6)
    v = only(CHECKER.check(TALK, "#{고객 이름}님, 만기 안내입니다.", advertising=False), "VAR-SYNTAX")
    assert v.text == "#{고객 이름}"


def test_placeholders_and_tone() -> None:
    v = only(CHECKER.check(LMS, "안내\n준법감시인 심의필 [입력 필요: 심의필 번호]", advertising=False), "PLACEHOLDER")
    assert v.severity == "warning" and v.text == "[입력 필요: 심의필 번호]"
    v = only(CHECKER.check(FRIEND, "놓치면 손해인 꿀팁!", advertising=False, life_stage="시니어세대"), "TONE-AVOID")
    assert v.text == "꿀팁" and v.severity == "warning"
    assert "TONE-AVOID" not in ids(CHECKER.check(FRIEND, "놓치면 손해인 꿀팁!", advertising=False, life_stage="전체"))


def test_every_rule_in_the_rule_files_is_tested() -> None:
    """A rule added to compliance.yaml needs a case above."""
    c = RULES.compliance
    assert {r.id for r in c.forbidden} == {case[0] for case in FORBIDDEN}
    assert {r.id for r in c.disclosures} == {case[0] for case in DISCLOSURES}
    assert {r.id for r in c.personal_data} == {case[0] for case in PERSONAL_DATA}
    assert set(c.channel_checks) == CHANNEL_CHECKS
