"""Test-wide fixtures and policy.

* ``shared_data``: the third-party test data in ``../shared/data`` (never copied into the repo).
* With ``JISIK_STRICT_SERVICES=1`` (set by scripts/test.sh and CI) a skipped test is a failure:
  a service that cannot be reached must not hide behind a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("JISIK_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"shared test data not found at {path} (set JISIK_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own JISIK_HOME unless it sets one; settings are re-read."""
    from jisik.core.settings import get_settings

    monkeypatch.setenv("JISIK_HOME", str(tmp_path_factory.mktemp("home")))
    get_settings.cache_clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("JISIK_STRICT_SERVICES") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under JISIK_STRICT_SERVICES=1 (a skip may hide a missing service): " \
            f"{report.longrepr}"
