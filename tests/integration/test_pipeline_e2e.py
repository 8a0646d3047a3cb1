"""The pipeline end to end on real servers: rows in a MariaDB table (127.0.0.1:3306) and a PostgreSQL
table (127.0.0.1:5432), each in a throw-away database -> landed as CSV + manifest on a SeaweedFS S3
server -> transferred to an S3 inbox -> indexed into the embedded store, and into pgvector -> the
real `jisik search` command finds them with a citation naming the table, the row key and the run.

A server that cannot be reached FAILS these tests (never skips)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from jisik.cli import app
from jisik.core.settings import get_settings
from jisik.pipeline.runner import Pipeline, RunReport
from jisik.pipeline.sources.base import expand_env
from jisik.stores.objects.seaweed import SeaweedServer
from jisik.stores.pg_server import PgServer
from objects_env import ACCESS_KEY, BUCKET, SECRET_KEY, s3_store
from pipeline_env import make_pipeline

pytestmark = pytest.mark.integration

MARIADB = "mysql+pymysql://root:${JISIK_TEST_MARIADB_PASSWORD:}@127.0.0.1:3306"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
PRODUCTS = [
    (1, "정기예금 12개월", "만기까지 유지하면 연 3.5% 금리를 드립니다", 3.50),
    (2, "자유적금", "매달 원하는 금액을 자유롭게 저축할 수 있습니다", 3.10),
    (3, "청년 주택드림 청약통장", "만 19~34세 무주택 청년에게 우대금리와 소득공제 혜택을 드립니다", 4.30),
]
BRANCHES = [
    ("BR-001", "시청 지점", "서울 중구 세종대로 110", "연금 상담과 대출 상담"),
    ("BR-017", "강남역 지점", "서울 강남구 강남대로 396", "외화 환전과 해외 송금 상담을 주말에도 합니다"),
]


@pytest.fixture(scope="module")
def warehouses() -> Iterator[dict[str, str]]:
    """Throw-away databases: ``deposit_products`` on MariaDB, ``branches`` on PostgreSQL; their URLs."""
    name = f"jisik_e2e_{uuid.uuid4().hex[:10]}"
    created: list[tuple[Any, str]] = []
    urls = {}
    try:
        for kind, base, admin_db in (("mariadb", MARIADB, ""), ("postgresql", POSTGRES, "postgres")):
            admin = create_engine(expand_env(f"{base}/{admin_db}"), isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {name}"))
            except Exception as exc:
                admin.dispose()
                pytest.fail(f"{kind} at {base.rsplit('@', 1)[1]} is not reachable: {exc}", pytrace=False)
            created.append((admin, kind))
            urls[kind] = f"{base}/{name}" + ("?charset=utf8mb4" if kind == "mariadb" else "")
        with create_engine(expand_env(urls["mariadb"])).begin() as conn:
            conn.execute(text("CREATE TABLE deposit_products (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, "
                              "benefit TEXT, rate DECIMAL(5, 2)) CHARACTER SET utf8mb4"))
            conn.execute(text("INSERT INTO deposit_products VALUES (:i, :n, :b, :r)"),
                         [dict(zip("inbr", r, strict=True)) for r in PRODUCTS])
        with create_engine(expand_env(urls["postgresql"])).begin() as conn:
            conn.execute(text("CREATE TABLE branches (branch_code TEXT PRIMARY KEY, name TEXT NOT NULL, "
                              "address TEXT, services TEXT)"))
            conn.execute(text("INSERT INTO branches VALUES (:c, :n, :a, :s)"),
                         [dict(zip("cnas", r, strict=True)) for r in BRANCHES])
        yield urls
    finally:
        for admin, kind in created:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))
            admin.dispose()


def run_sql(url: str, sql: str) -> None:
    engine = create_engine(expand_env(url))
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture
def s3_urls(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Landing and inbox on the SeaweedFS S3 server, under prefixes of this test (removed afterwards)."""
    monkeypatch.setenv("JISIK_S3_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("JISIK_S3_SECRET_ACCESS_KEY", SECRET_KEY)
    prefix = f"e2e-{uuid.uuid4().hex[:10]}"
    store = s3_store(seaweed, prefix=prefix)  # creates the bucket
    yield {role: f"s3://{BUCKET}/{prefix}/{role}?endpoint={seaweed.endpoint}" for role in ("landing", "inbox")}
    for obj in list(store.list()):
        store.delete(obj.key)
    store.close()


def build(home: Path, urls: dict[str, str], stores: dict[str, str]) -> Pipeline:
    sources = [
        {"kind": "sql", "name": "mariadb-products", "url": urls["mariadb"], "table": "deposit_products",
         "query": "SELECT id, name, benefit, rate FROM deposit_products", "fmt": "csv",
         "hints": {"key_columns": ["id"], "title_column": "name"}},
        {"kind": "sql", "name": "postgres-branches", "url": urls["postgresql"], "table": "branches",
         "query": "SELECT branch_code, name, address, services FROM branches", "fmt": "parquet",
         "hints": {"key_columns": ["branch_code"], "title_column": "name"}},
    ]
    return make_pipeline(home, sources, [{"collection": "bank", "sources": ["mariadb-products", "postgres-branches"],
                                          "chunker": "rows"}], stores=stores)


def jisik_search(monkeypatch: pytest.MonkeyPatch, home: Path, index_url: str, query: str) -> tuple[dict[str, Any], str]:
    """`jisik search` (the real CLI) with JISIK_HOME / JISIK_INDEX_URL: the top hit (--json) and the text output."""
    monkeypatch.setenv("JISIK_HOME", str(home))
    monkeypatch.setenv("JISIK_INDEX_URL", index_url)
    monkeypatch.setenv("JISIK_EMBEDDER", "use-multilingual")
    get_settings.cache_clear()
    out = []
    for extra in (["--json"], []):
        result = CliRunner().invoke(app, ["search", query, "-c", "bank", "-k", "3", *extra])
        assert result.exit_code == 0, result.output
        out.append(result.output)
    return json.loads(out[0].strip().splitlines()[-1])["hits"][0], out[1]


def check_citation(hit: dict[str, Any], out: str, report: RunReport, source: str, table: str,
                   keys: dict[str, Any]) -> None:
    cite = hit["citation"]
    key_text = ",".join(f"{k}={v}" for k, v in keys.items())
    assert cite["collection"] == "bank" and cite["doc_id"] == f"{source}/{table}/{key_text}"
    assert cite["locator"]["table"] == f"{source}/{table}" and cite["locator"]["keys"] == keys
    assert cite["source_uri"].startswith(f"raw/{source}/") and f"/{report.run_id}/" in cite["source_uri"]
    assert f"{cite['doc_id']} ← {cite['source_uri']}" in out  # the text output names table, row key and run


def test_mariadb_and_postgresql_rows_to_embedded_index_and_jisik_search(
        tmp_path: Path, warehouses: dict[str, str], s3_urls: dict[str, str], seaweed: SeaweedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    index_url = (home / "index").resolve().as_uri()
    p = build(home, warehouses, {**s3_urls, "index": index_url})
    report = p.run()
    assert report.status == "ok", report.to_dict()
    assert [s.counts.get("rows") for s in report.stages if s.stage == "extract"] == [3, 2]
    assert next(s for s in report.stages if s.stage == "index").counts["added"] == 5

    # the landed objects and manifests really are on the S3 server
    landed = {i.key for i in p.landing.list("raw/")}
    for source, name in (("mariadb-products", "deposit_products.csv"), ("postgres-branches", "branches.parquet")):
        [key] = [k for k in landed if k.startswith(f"raw/{source}/") and k.endswith(f"/{report.run_id}/{name}")]
        assert key + ".meta.json" in landed
    assert {i.key for i in p.inbox.list("inbox/")} >= {k.replace("raw/", "inbox/", 1) for k in landed
                                                        if k.endswith(".meta.json")}

    hit, out = jisik_search(monkeypatch, home, index_url, "청년 주택 청약 우대금리")
    check_citation(hit, out, report, "mariadb-products", "deposit_products", {"id": 3})
    hit, out = jisik_search(monkeypatch, home, index_url, "주말에 해외 송금 환전 상담")
    check_citation(hit, out, report, "postgres-branches", "branches", {"branch_code": "BR-017"})

    # a changed MariaDB row and a deleted PostgreSQL row: the next run re-indexes just those
    run_sql(warehouses["mariadb"], "UPDATE deposit_products SET benefit = '중도 해지해도 약정 금리를 드리는 "
                                   "특판 예금' WHERE id = 1")
    run_sql(warehouses["postgresql"], "DELETE FROM branches WHERE branch_code = 'BR-001'")
    try:
        second = p.run()
        counts = next(s for s in second.stages if s.stage == "index").counts
        assert (second.status, counts["updated"], counts["deleted"], counts["unchanged"]) == ("ok", 1, 1, 3)
        hit, out = jisik_search(monkeypatch, home, index_url, "중도 해지 약정 금리 특판")
        check_citation(hit, out, second, "mariadb-products", "deposit_products", {"id": 1})
    finally:
        run_sql(warehouses["mariadb"], "UPDATE deposit_products SET benefit = '만기까지 유지하면 연 3.5% 금리를 "
                                       "드립니다' WHERE id = 1")
        run_sql(warehouses["postgresql"], "INSERT INTO branches VALUES ('BR-001', '시청 지점', "
                                          "'서울 중구 세종대로 110', '연금 상담과 대출 상담')")
        p.close()


def test_mariadb_and_postgresql_rows_to_pgvector_and_jisik_search(
        tmp_path: Path, warehouses: dict[str, str], s3_urls: dict[str, str], pg_server: PgServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    index_url = pg_server.create_database(f"jisik_e2e_index_{uuid.uuid4().hex[:8]}")
    receipts = pg_server.create_database(f"jisik_e2e_receipts_{uuid.uuid4().hex[:8]}")
    p = build(home, warehouses, {**s3_urls, "index": index_url, "receipts": receipts})
    try:
        report = p.run()
        assert report.status == "ok", report.to_dict()
        assert next(s for s in report.stages if s.stage == "index").counts["added"] == 5
        assert p.receipts.pending() == [] and len(p.receipts.by_status("delivered")) == 2
    finally:
        p.close()

    hit, out = jisik_search(monkeypatch, home, index_url, "청년 주택 청약 우대금리")
    check_citation(hit, out, report, "mariadb-products", "deposit_products", {"id": 3})
    hit, out = jisik_search(monkeypatch, home, index_url, "주말에 해외 송금 환전 상담")
    check_citation(hit, out, report, "postgres-branches", "branches", {"branch_code": "BR-017"})
