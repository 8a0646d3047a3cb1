"""The extractive provider (real Kiwi tokenizer) and create_llm."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from jisik.core.errors import InvalidInput, NotFound
from jisik.core.settings import Settings
from jisik.core.types import Chunk, Hit
from jisik.models.llm import (
    EXTRACTIVE_MODEL_ID,
    ExtractiveLLM,
    LLMProvider,
    OpenAICompatibleLLM,
    TokenStream,
    create_llm,
)
from jisik.rag.citations import check_citations
from jisik.rag.extractive import NOT_FOUND_KO, extractive_answer
from jisik.rag.prompts import load_prompt, render
from jisik.text.tokenize import get_tokenizer

HITS = [
    Hit(Chunk("c1", "guide", "예금자보호 제도는 금융회사가 파산했을 때 예금을 대신 지급합니다. "
              "2025년 9월부터 보호 한도는 1인당 1억 원입니다.", title="예금자보호"), 0.9),
    Hit(Chunk("c2", "guide", "펀드 같은 투자 상품은 예금자보호 대상이 아닙니다.", title="보호 대상"), 0.5),
]
QUESTION = "예금자보호 한도는 얼마인가요?"


@pytest.fixture(scope="module")
def extractive() -> ExtractiveLLM:
    return ExtractiveLLM(get_tokenizer())


def test_extractive_streams_the_quoted_answer_word_by_word(extractive: ExtractiveLLM) -> None:
    assert isinstance(extractive, LLMProvider)
    assert extractive.kind == "extractive" and extractive.model_id == EXTRACTIVE_MODEL_ID
    messages = render(load_prompt("default"), QUESTION, HITS)

    async def run() -> tuple[list[str], TokenStream]:
        parts: list[str] = []
        async with extractive.stream(messages, hits=HITS, question=QUESTION) as stream:
            async for d in stream:
                parts.append(d)
        return parts, stream

    parts, stream = asyncio.run(run())
    expected = extractive_answer(QUESTION, HITS, get_tokenizer()).text
    assert "".join(parts) == expected and len(parts) == len(expected.split())
    assert "1억 원" in expected
    check = check_citations(expected, len(HITS))
    assert check.used[0] == 1 and not check.flagged and not check.invalid
    assert stream.finish_reason == "stop" and stream.model == EXTRACTIVE_MODEL_ID


def test_extractive_question_defaults_to_the_last_user_message(extractive: ExtractiveLLM) -> None:
    done = asyncio.run(extractive.complete([{"role": "user", "content": QUESTION}], hits=HITS))
    assert done.text == extractive.answer(QUESTION, HITS) and done.usage.estimated


def test_extractive_never_invents(extractive: ExtractiveLLM) -> None:
    assert asyncio.run(extractive.complete([], hits=[], question=QUESTION)).text == NOT_FOUND_KO
    unrelated = asyncio.run(extractive.complete([], hits=HITS, question="주택담보대출 금리는?"))
    assert unrelated.text == NOT_FOUND_KO


def test_extractive_max_tokens_cuts_and_says_length(extractive: ExtractiveLLM) -> None:
    done = asyncio.run(extractive.complete([], hits=HITS, question=QUESTION, max_tokens=2))
    assert len(done.text.split()) == 2 and done.finish_reason == "length"


def test_create_llm_default_is_extractive() -> None:
    llm = create_llm(Settings())
    assert isinstance(llm, ExtractiveLLM) and llm.kind == "extractive"


def test_create_llm_openai_uses_llm_settings_then_openai_ones() -> None:
    llm = create_llm(Settings(llm="openai:qwen3-32b", llm_base_url="http://10.0.0.5:8000/v1/",
                              llm_api_key=SecretStr("k1"), llm_max_tokens=99, llm_temperature=0.0,
                              llm_extra_body={"chat_template_kwargs": {"enable_thinking": False}}))
    assert isinstance(llm, OpenAICompatibleLLM)
    assert (llm.base_url, llm.model, llm.model_id) == ("http://10.0.0.5:8000/v1", "qwen3-32b", "openai/qwen3-32b")
    assert llm.max_tokens == 99 and llm.temperature == 0.0 and llm.extra_body["chat_template_kwargs"]
    fallback = create_llm(Settings(llm="openai:gpt-4o-mini", openai_base_url="http://127.0.0.1:9/v1",
                                   openai_api_key=SecretStr("k2")))
    assert isinstance(fallback, OpenAICompatibleLLM) and fallback.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("name", ["gpt", "openai:", "local:qwen9-100b", "llama"])
def test_create_llm_rejects_unknown_names(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        create_llm(Settings(llm=name))
    assert err.value.message_ko and err.value.message_en


def test_create_llm_local_file_must_exist_and_be_gguf(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        create_llm(Settings(llm=f"local:{tmp_path / 'missing.gguf'}"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"NOPE" + b"\0" * 16)
    with pytest.raises(InvalidInput):
        create_llm(Settings(llm=f"local:{fake}"))
