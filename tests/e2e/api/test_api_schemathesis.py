"""schemathesis over /openapi.json against the running app (real uvicorn, keys configured):
the schema's examples and generated inputs of every operation must never produce a server error (5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from api_env import ADMIN_KEY, USER_KEY, LiveServer, api_settings
from jisik.api import create_app
from jisik.runtime import Runtime

EXAMPLES = 6  # per operation: about 20 operations, well under a minute


@pytest.fixture(scope="module")
def live_api(kb: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(api_settings(home, api_keys=[USER_KEY], max_upload_bytes=65536), runtime=kb)
    with LiveServer(app) as live:
        yield live


def fuzz(operation: schemathesis.APIOperation, key: str) -> tuple[int, list[str]]:
    """Call ``operation`` with its examples and generated inputs; (calls, server errors)."""
    calls: list[int] = []
    failures: list[str] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate], derandomize=True, database=None)
    def run(case: schemathesis.Case) -> None:
        calls.append(1)
        response = case.call(headers={"X-API-Key": key}, timeout=60)
        if response.status_code >= 500:
            failures.append(f"{operation.label}: {response.status_code} {response.text[:300]}")

    run()
    return len(calls), failures


def test_no_server_errors(live_api: LiveServer) -> None:
    api = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    total, failures = 0, []
    for op in operations:
        calls, errors = fuzz(op, ADMIN_KEY if op.path.startswith("/api/v1/admin") else USER_KEY)
        total += calls
        failures += errors
    assert len(operations) >= 18 and total >= len(operations)
    assert failures == []

