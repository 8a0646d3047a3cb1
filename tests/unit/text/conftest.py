"""Fixtures for the text tests: a shared tokenizer and 50 real FAQ entries from ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jisik.text.tokenize import KoreanTokenizer, get_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> KoreanTokenizer:
    return get_tokenizer()


@pytest.fixture(scope="session")
def faq_entries(shared_data: Path) -> list[dict[str, Any]]:
    path = shared_data / "smartstore_faq" / "final_result.jsonl"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(50), f, strict=False)]
