"""API test fixtures. The knowledge base (``kb``) and the app factory (``make_app``) are shared with
the web UI tests in tests/e2e/conftest.py; helpers in api_env.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
