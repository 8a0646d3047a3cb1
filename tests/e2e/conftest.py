"""Shared by the API and web UI end-to-end tests: one real knowledge base (Kiwi + e5-small, five
Korean FAQ entries in collection ``faq``, loaded once per session) with the ``shop`` test app, and
the factory of apps built on it with per-test settings and stores (helpers: api_env.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api_env import MakeApp, api_settings
from chat_fixtures import build_runtime, shop_app
from jisik.api import create_app
from jisik.apps.base import APPS, register
from jisik.runtime import Runtime


@pytest.fixture(scope="session")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_runtime(tmp_path_factory.mktemp("api-kb"))
    rt.embedder.embed_queries(["준비"])
    if "shop" not in APPS:
        register("shop", shop_app)
    yield rt
    rt.close()


@pytest.fixture
def make_app(kb: Runtime, tmp_path: Path) -> MakeApp:
    """``make_app(llm=None, home=..., **settings)`` -> an app on ``kb`` with its own home (stores)."""
    counter = iter(range(1000))

    def make(llm: Any = None, **overrides: Any) -> FastAPI:
        home = overrides.pop("home", tmp_path / f"app{next(counter)}")
        return create_app(api_settings(home, **overrides), runtime=kb, llm=llm)

    return make
