"""The scene01 use case on a real knowledge base: templates without an LLM, an LLM that writes too
much or writes forbidden claims (asked again, then trimmed at a sentence boundary), channel limits
in characters and CP949 bytes, validation, the finlife samples, and the file_url document."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jisik.apps.marketing import SEED_EXAMPLE, MarketingService, Scene01Request
from jisik.apps.marketing.fetch import FetchPolicy, SafeFetcher
from jisik.apps.marketing.length import measure
from jisik.apps.marketing.rules import load_rules
from jisik.apps.marketing.service import parse_copy, requested_chars
from jisik.core.errors import InvalidInput
from jisik.core.settings import Settings
from jisik.models.llm.base import ChatMessage
from jisik.models.llm.extractive import ExtractiveLLM
from jisik.rag.history import SUMMARY_SYSTEM
from jisik.runtime import Runtime
from jisik.text.sentences import split_sentences
from unit.apps.marketing.marketing_helpers import FileServer, ScriptLLM, pdf_route, replies

pytestmark = pytest.mark.anyio
RULES = load_rules()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def offline(host: str, port: int) -> list[str]:
    raise OSError("no DNS in tests")


def service(rt: Runtime, llm: Any = None, **settings: Any) -> MarketingService:
    s = Settings(home=rt.settings.home, **settings) if settings else rt.settings
    return MarketingService(rt, llm or ExtractiveLLM(rt.tokenizer), s,
                            fetcher=SafeFetcher(FetchPolicy.from_settings(s), resolver=offline))


def request(**fields: Any) -> Scene01Request:
    return Scene01Request.model_validate({**SEED_EXAMPLE, **fields})


def size(message: Any, field: str = "text") -> int:
    return measure(getattr(message, field), RULES.channels[message.channel].unit)


async def test_seed_example_without_an_llm_fills_the_channel_templates(marketing_rt: Runtime) -> None:
    r = await service(marketing_rt).generate(request())
    assert r.outcome == "generated" and r.generation == "template" and "LLM 없이" in r.notice_ko
    assert r.provider["kind"] == "extractive" and r.provider["label_ko"]
    assert [m.channel for m in r.messages] == ["PUSH", "알림톡"] and r.session_id == "session_abc123"
    assert any("your-s3-url.com" in w for w in r.warnings) and r.file is None  # no DNS: written without it
    assert r.history_summary.startswith("이전 대화 요약:") and "포멀한 톤" in r.history_summary
    cited = {c["n"]: c for c in r.citations}
    assert cited and all(c["collection"] == "marketing" for c in cited.values())
    push, talk = r.messages
    source = cited[push.citations[0]]
    assert "생애단계: 시니어세대" in source["text"]  # the product meant for the requested life stage
    # PUSH: (광고) in the title, opt-out at the end, the body within the "100자 이내" asked for
    assert push.title is not None and push.title.startswith("(광고) ") and size(push, "title") <= 40
    assert push.length["requested_chars"] == 100 and len(push.body) <= 100 and size(push) <= 110
    assert push.text.endswith("수신거부: 앱 설정 > 알림")
    first = split_sentences(push.body)[0]
    assert push.body[first[0]:first[1]].rstrip(".") in source["text"]  # quoted from the facts, not invented
    assert push.passed and all(v.severity == "warning" for v in push.violations)
    # 알림톡 cannot carry an ad: the copy is written, and the violation says why it cannot be sent
    assert [v.rule_id for v in talk.violations if v.severity == "error"] == ["AD-NOT-ALLOWED"] and not talk.passed
    assert not talk.text.startswith("(광고)") and "#{고객명}" in talk.text
    assert "※ 유의사항" in talk.text and "disclosures_appended" in talk.adjustments
    assert "심의필" in talk.text and "예금자보호" in talk.text  # taken from the product's own columns
    assert r.text.startswith("[PUSH]\n제목: (광고) ") and "\n\n[알림톡]\n" in r.text


@pytest.mark.parametrize("channel", ["PUSH", "알림톡", "친구톡", "SMS", "LMS"])
async def test_every_channel_keeps_its_limits(marketing_rt: Runtime, channel: str) -> None:
    req = request(channels=[channel], life_stage="청년세대", history=[], file_url=None,
                  prompt="청년 고객에게 적금 우대금리와 카드 할인 혜택을 자세히 알려 주는 문구")
    m = (await service(marketing_rt).generate(req)).messages[0]
    rule = RULES.channels[channel]
    assert 0 < size(m) <= rule.body.max and not [v for v in m.violations if v.rule_id.startswith("LEN-")]
    if rule.title is not None and m.title:
        assert size(m, "title") <= rule.title.max
    if rule.unit == "euc-kr":
        m.text.encode("cp949")
    if rule.ad.allowed:  # advertising: (광고) first, the free opt-out last
        labelled = m.title if rule.ad.prefix_field == "title" else m.text
        assert labelled is not None and labelled.startswith("(광고) ")
        assert m.text.endswith(RULES.opt_out_text(rule))
    if channel == "SMS":  # 90 bytes hold the label, the opt-out and a short body
        assert m.length["unit"] == "euc-kr" and m.length["text"] == measure(m.text, "euc-kr") <= 90


async def test_informational_messages_go_by_alimtalk_without_an_ad_label(marketing_rt: Runtime) -> None:
    req = request(message_type="정보성안내", channels=["알림톡", "SMS"], history=[], file_url=None)
    talk, sms = (await service(marketing_rt).generate(req)).messages
    assert not [v for v in talk.violations if v.rule_id.startswith("AD-")]
    assert not talk.text.startswith("(광고)") and not sms.text.startswith("(광고)") and "무료거부" not in sms.text


@pytest.mark.parametrize(("fields", "field", "allowed"), [
    ({"channels": ["PUSH", "FAX"]}, "channels", ["PUSH", "알림톡", "친구톡", "SMS", "LMS"]),
    ({"message_type": "전단지"}, "message_type", ["광고심의문구", "이벤트안내", "상품안내", "정보성안내"]),
    ({"life_stage": "우주세대"}, "life_stage", ["전체", "청년세대", "사회초년생", "신혼·육아세대", "중장년세대", "시니어세대"]),
])
async def test_unknown_values_list_the_allowed_ones(marketing_rt: Runtime, fields: dict[str, Any], field: str,
                                                    allowed: list[str]) -> None:
    with pytest.raises(InvalidInput) as err:
        await service(marketing_rt).generate(request(**fields))
    e = err.value
    assert e.status == 422 and e.details["field"] == field and e.details["allowed"] == allowed
    assert "사용 가능" in e.message_ko and "Allowed" in e.message_en and allowed[0] in e.message_ko


@pytest.mark.parametrize("fields", [{"channels": ["PUSH", "PUSH"]}, {"session_id": "세션 1"}, {"prompt": "   "}])
async def test_other_invalid_requests(marketing_rt: Runtime, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        await service(marketing_rt).generate(request(**fields))


def test_the_requested_length_is_read_from_the_prompt_or_the_history() -> None:
    assert requested_chars(request()) == 100
    assert requested_chars(request(prompt="80자 이내로 써 줘")) == 80
    assert requested_chars(request(prompt="짧게 써 줘")) == 100  # "100자 이내로 요약해줘" in the history
    assert requested_chars(request(prompt="짧게 써 줘", history=[])) is None


def test_parse_copy() -> None:
    assert parse_copy("제목: 시니어 특별금리\n본문: 최고 연 3.30%를 드립니다 [1].") == \
        ("시니어 특별금리", "최고 연 3.30%를 드립니다 [1].")
    assert parse_copy("```\n[PUSH] 혜택을 드립니다 [1].\n```") == (None, "혜택을 드립니다 [1].")
    assert parse_copy("**제목**: 안내\n첫 줄\n둘째 줄") == ("안내", "첫 줄\n둘째 줄")


SHORT = "제목: 시니어 특별금리\n본문: 처음 가입하시면 최고 연 3.30%(세전)를 드립니다 [1]."
LONG = ("본문: 처음 가입하시는 시니어 고객님께 우대금리를 더해 최고 연 3.30%(세전)를 드립니다 [1]. "
        "연금 수령 계좌를 지정하시면 연 0.30%p를 더 드립니다 [1]. 가입 기간은 12개월이고 100만 원부터 가입하실 수 "
        "있습니다 [1]. 이벤트는 2025년 12월 31일까지 진행합니다 [1]. 가까운 영업점에서 상담해 드립니다 [1].")


def no_history(**fields: Any) -> Scene01Request:
    return request(history=[], file_url=None, **fields)


async def test_an_llm_over_the_limit_is_asked_again(marketing_rt: Runtime) -> None:
    llm = ScriptLLM(replies(LONG, SHORT))
    m = (await service(marketing_rt, llm).generate(no_history(channels=["PUSH"]))).messages[0]
    assert len(llm.calls) == 2 and "regenerated" in m.adjustments and "trimmed" not in m.adjustments
    retry = llm.calls[1][-1]["content"]
    assert llm.calls[1][-2] == {"role": "assistant", "content": LONG} and "한도 100자" in retry
    assert m.title == "(광고) 시니어 특별금리" and m.body == "처음 가입하시면 최고 연 3.30%(세전)를 드립니다."
    assert m.citations == [1] and "[1]" not in m.text


async def test_forbidden_claims_are_sent_back_too(marketing_rt: Runtime) -> None:
    llm = ScriptLLM(replies("제목: 최고의 기회\n본문: 무조건 드리는 특별금리 [1].", SHORT))
    m = (await service(marketing_rt, llm).generate(no_history(channels=["PUSH"]))).messages[0]
    assert "'무조건'" in llm.calls[1][-1]["content"] and "'최고의'" in llm.calls[1][-1]["content"]
    assert m.passed and not [v for v in m.violations if v.rule_id.startswith("ABS-")]


async def test_still_too_long_after_the_retries_is_trimmed_at_a_sentence_boundary(marketing_rt: Runtime) -> None:
    llm = ScriptLLM(replies(LONG))
    svc = service(marketing_rt, llm, scene01_max_regenerations=1)
    m = (await svc.generate(no_history(channels=["SMS"], prompt="시니어 정기예금 특별금리 문자"))).messages[0]
    assert len(llm.calls) == 2 and {"regenerated", "trimmed"} <= set(m.adjustments)
    assert measure(m.text, "euc-kr") <= 90 and m.text.startswith("(광고) ") and m.text.endswith("무료거부 080-000-0000")
    body = re.sub(r"\s*\[1\]", "", LONG.removeprefix("본문: "))
    if "cut_in_sentence" not in m.adjustments:  # whole sentences were kept
        assert m.body.endswith(".") and body.startswith(m.body)
    else:  # even the first sentence was too long: whole words and "…", never part of a word
        words = m.body.removesuffix("…").split()
        assert m.body.endswith("…") and words and words == body.split()[: len(words)]


async def test_an_llm_that_finds_nothing_and_one_that_cites_nothing(marketing_rt: Runtime) -> None:
    m = (await service(marketing_rt, ScriptLLM(replies("문서에서 찾을 수 없습니다."))).generate(
        no_history(channels=["PUSH"]))).messages[0]
    assert m.text == "" and m.warnings
    m = (await service(marketing_rt, ScriptLLM(replies("가입하시면 특별금리를 드립니다."))).generate(
        no_history(channels=["PUSH"]))).messages[0]
    assert m.citations == [] and any("출처" in w for w in m.warnings)
    assert "title_from_facts" in m.adjustments and m.title and m.title.startswith("(광고) ")


async def test_the_history_is_summarised_by_the_llm_and_given_to_it(marketing_rt: Runtime) -> None:
    def script(messages: list[ChatMessage]) -> str:
        if messages[0]["content"].startswith(SUMMARY_SYSTEM):
            return "- 사용자는 포멀한 톤의 100자 이내 감사 이벤트 문구를 원함"
        return SHORT

    llm = ScriptLLM(script)
    r = await service(marketing_rt, llm).generate(request(file_url=None, channels=["PUSH", "LMS"]))
    assert r.generation == "llm" and r.provider["kind"] == "llm" and "LLM" in r.notice_ko
    assert r.history_summary == "이전 대화 요약:\n- 사용자는 포멀한 톤의 100자 이내 감사 이벤트 문구를 원함"
    prompts = [c[-1]["content"] for c in llm.calls[1:]]
    assert len(prompts) == 2 and all("포멀한 톤의 100자 이내" in p and "참고 문서 (상품 정보):" in p for p in prompts)
    assert all("시니어세대" in c[0]["content"] for c in llm.calls[1:])  # the life stage's tone in the rules
    lms = r.messages[1]
    assert lms.title == "시니어 특별금리" and lms.text.startswith("(광고) ") and "※ 유의사항" in lms.text


async def test_finlife_products_fill_the_templates(marketing_rt: Runtime) -> None:
    req = no_history(channels=["LMS"], life_stage="전체", prompt="부산은행 LIVE정기예금 특판 우대이율을 알리는 문구")
    r = await service(marketing_rt).generate(req)
    m = r.messages[0]
    source = next(c for c in r.citations if c["n"] == m.citations[0])
    assert source["doc_id"].startswith("finlife/deposit/") and "LIVE정기예금" in source["title"]
    assert "부산은행" in m.text and "LIVE정기예금" in m.text
    # the finlife data does not say how the deposit is protected: a placeholder for the reviewer
    assert "[입력 필요: 예금자보호 여부와 한도]" in m.text
    assert "PLACEHOLDER" in [v.rule_id for v in m.violations]


async def test_the_file_url_document_is_extra_context(marketing_rt: Runtime) -> None:
    pages = ["가람은행 시니어 고객님은 신규 가입 때 전용 상담 창구에서 우대 상담을 받으실 수 있습니다.", "두 번째 쪽."]
    with FileServer({"/brochure.pdf": pdf_route(pages)}) as files:
        svc = service(marketing_rt, fetch_allowed_schemes=["http"], fetch_private_hosts=[f"127.0.0.1:{files.port}"])
        r = await svc.generate(request(file_url=f"{files.url}/brochure.pdf", channels=["친구톡"], history=[],
                                       prompt="시니어 고객에게 신규 가입 혜택을 안내하는 문구"))
    assert r.file is not None and r.file["pages"] == 2 and r.file["content_type"] == "application/pdf"
    m = r.messages[0]
    page = next(c for c in r.citations if c["collection"] == "file_url")
    assert page["locator"] == {"page": 1} and page["source_uri"] == f"{files.url}/brochure.pdf"
    assert page["n"] in m.citations and "전용 상담 창구" in m.body


async def test_nothing_relevant_means_no_copy(marketing_rt: Runtime) -> None:
    r = await service(marketing_rt, answer_min_score=50.0).generate(no_history())
    assert r.outcome == "not_found" and all(m.text == "" for m in r.messages) and not r.citations
    assert any("찾지 못했습니다" in w for w in r.warnings)
