"""Short retry pauses for every pipeline test: a transfer that keeps failing dead-letters in milliseconds
(the production defaults pause 1 s, 2 s, 4 s, … between attempts)."""

from __future__ import annotations

import pytest

from pipeline_env import FAST_RETRIES


@pytest.fixture(autouse=True)
def _fast_retries(_isolated_home: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.core.settings import get_settings

    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(f"JISIK_{name.upper()}", str(value))
    get_settings.cache_clear()
