"""Prompt templates: the packaged YAML files load, render numbered passages, and bad templates fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from jisik.core.errors import ConfigError, InvalidInput, NotFound
from jisik.core.types import Chunk, Hit
from jisik.rag.citations import check_citations
from jisik.rag.extractive import NOT_FOUND_KO
from jisik.rag.prompts import available_prompts, format_locator, load_prompt, parse_prompt, render

HITS = [
    Hit(Chunk("c1", "guide/deposit", "보호 한도는   1인당 1억 원입니다.\n\n\n\n법령에 따라 바뀔 수 있습니다.",
              title="예금자보호 제도", locator={"page": 3}), 0.9),
    Hit(Chunk("c2", "faq/17", "펀드는 예금자보호 대상이 아닙니다.", title="", locator={"rows": [10, 19]}), 0.4),
]


def test_the_four_apps_are_packaged() -> None:
    assert available_prompts() == ["default", "docqa", "faq", "marketing"]
    for app in available_prompts():
        prompt = load_prompt(app)
        assert prompt.app == app and prompt.not_found == NOT_FOUND_KO
        assert "[1]" in prompt.system and NOT_FOUND_KO in prompt.system.format(
            **prompt.variables, not_found=prompt.not_found)


@pytest.mark.parametrize("app", ["default", "docqa", "faq", "marketing"])
def test_render_numbers_passages_in_citation_order(app: str) -> None:
    prompt = load_prompt(app)
    messages = render(prompt, "  예금자보호 한도는?  ", HITS, "사용자는 예금 상품을 비교하는 중")
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    user = messages[-1]["content"]
    assert user.index("[1] 예금자보호 제도") < user.index("[2] faq/17")  # no title: the doc id stands in
    assert "1인당 1억 원입니다.\n\n법령에" in user and "  " not in user.split("[1]")[1].split("[2]")[0]
    assert "사용자는 예금 상품을 비교하는 중" in user and "예금자보호 한도는?" in user
    assert "{" not in user and "{" not in messages[0]["content"]
    # the worked examples come first, as user/assistant turns, and cite their own passages correctly
    turns = messages[1:-1]
    assert len(turns) == 2 * len(prompt.examples)
    for q, a in zip(turns[::2], turns[1::2], strict=True):
        assert (q["role"], a["role"]) == ("user", "assistant")
        check = check_citations(a["content"], q["content"].count("\n["))
        assert not check.invalid and (check.used or check.not_found)


def test_docqa_shows_locators_and_history_block_only_when_given() -> None:
    messages = render(load_prompt("docqa"), "한도는?", HITS)
    user = messages[-1]["content"]
    assert "[1] 예금자보호 제도 (3쪽)" in user and "[2] faq/17 (10-19행)" in user
    assert "이전 대화 요약" not in user


def test_no_hits_renders_the_empty_context() -> None:
    user = render(load_prompt("default"), "한도는?", [])[-1]["content"]
    assert "(검색된 문서가 없습니다)" in user


def test_variables_default_and_override() -> None:
    prompt = load_prompt("marketing")
    default = render(prompt, "신규 고객 혜택 문구", HITS)
    assert "채널: PUSH" in default[-1]["content"] and "100자" in default[0]["content"]
    custom = render(prompt, "신규 고객 혜택 문구", HITS,
                    variables={"life_stage": "시니어세대", "channels": "PUSH, 알림톡", "max_chars": "80"})
    assert "시니어세대" in custom[0]["content"] and "80자" in custom[-1]["content"]
    with pytest.raises(InvalidInput):
        render(prompt, "문구", HITS, variables={"budget": "1억"})


def test_long_passages_are_cut() -> None:
    prompt = load_prompt("faq")
    long_hit = Hit(Chunk("c", "d", "가" * 5000, title="긴 문서"), 1.0)
    user = render(prompt, "질문", [long_hit])[-1]["content"]
    assert "가" * prompt.context.max_chars_per_passage + "…" in user and "가" * 1201 not in user


def test_directory_override_and_validation(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(
        "app: default\nsystem: 규칙 {not_found}\nquestion: '{context}\n\n질문: {question}'\n", encoding="utf-8")
    custom = load_prompt("default", directory=tmp_path)
    assert custom.system == "규칙 {not_found}" and custom.examples == []
    assert load_prompt("faq", directory=tmp_path).app == "faq"  # falls back to the packaged one
    with pytest.raises(NotFound):
        load_prompt("no-such-app")
    with pytest.raises(InvalidInput):
        load_prompt("../etc/passwd")


@pytest.mark.parametrize("text", [
    "app: x\nsystem: '{unknown}'\nquestion: '{question}'",               # undeclared variable
    "app: x\nsystem: 'a'\nquestion: '{question'",                          # broken braces
    "app: x\nsystem: 'a'\nquestion: '{question}'\nextra: 1",               # unknown key
    "app: x\nquestion: '{question}'",                                      # no system
    "app: x\nsystem: 'a'\nquestion: 'q'\nvariables: {question: 'x'}",       # reserved variable
    "app: x\nsystem: 'a'\nquestion: 'q'\nexamples: [{passages: [{text: t}], question: q, answer: 'a [2]'}]",
    "- just\n- a list",
])
def test_bad_templates_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_prompt(text)


def test_format_locator() -> None:
    assert format_locator({"page": 3}) == "3쪽"
    assert format_locator({"rows": [1, 9], "table": "products"}) == "1-9행, table=products"
    assert format_locator({}) == ""
