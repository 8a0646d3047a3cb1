"""The API side of the web UI, in-process (TestClient runs the lifespan): the pages and their
headers, the browser redirect of ``GET /``, ``GET /api/v1/apps``, ``GET /api/v1/sessions``, the
admin routes of the dashboard (collections with versions, ingestion run reports) and the vendored
chart library's recorded checksum."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_env import ADMIN_KEY, USER_KEY, MakeApp
from jisik.apps.base import APPS, App
from jisik.core.types import Document
from jisik.pipeline.runner import RunReport, StageReport
from jisik.runtime import Runtime
from jisik.text.chunking import make_chunker
from jisik.web import CSP, STATIC_DIR, wants_html

ADMIN = {"X-API-Key": ADMIN_KEY}
MakeClient = Callable[..., TestClient]


@pytest.fixture
def client(make_app: MakeApp) -> Iterator[Callable[..., TestClient]]:
    """``client(**settings)`` -> a TestClient (lifespan started) of a new app on the shared kb."""
    with contextlib.ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(TestClient(make_app(**overrides), follow_redirects=False))


# ---- pages ----
def test_pages_are_served_with_a_policy_that_allows_only_this_server(client: MakeClient) -> None:
    c = client()
    r = c.get("/ui/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "connect-src 'self'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="ko">' in r.text
    assert c.get("/ui").headers["location"].endswith("/ui/")
    admin = c.get("/ui/admin")
    assert admin.status_code == 307 and admin.headers["location"].endswith("/ui/admin/")
    page = c.get("/ui/admin/")
    assert page.status_code == 200 and "관리자 대시보드" in page.text
    assert "javascript" in c.get("/ui/js/chat.js").headers["content-type"]
    assert c.get("/ui/vendor/chart.umd.min.js").status_code == 200
    missing = c.get("/ui/js/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert c.post("/ui/").status_code == 405


def test_root_redirects_browsers_and_keeps_json_for_api_clients(client: MakeClient) -> None:
    c = client()
    browser = c.get("/", headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert browser.status_code == 307 and browser.headers["location"] == "/ui/"
    assert c.get("/").json()["name"] == "jisik"  # httpx sends Accept: */*
    assert c.get("/", headers={"Accept": "application/json"}).json()["name"] == "jisik"
    assert c.get("/", headers={"Accept": "text/html, application/json"}).status_code == 200
    assert c.get("/health", headers={"Accept": "text/html"}).json() == {"status": "ok"}


@pytest.mark.parametrize(("accept", "html"), [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("TEXT/HTML", True),
    ("*/*", False),
    ("", False),
    ("application/json", False),
    ("application/json, text/html;q=0.5", False),
    ("text/htmlx", False),
])
def test_wants_html(accept: str, html: bool) -> None:
    assert wants_html(accept) is html


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.refs.append(value)


def test_every_asset_a_page_names_is_shipped_and_local() -> None:
    pages = [STATIC_DIR / "index.html", STATIC_DIR / "admin" / "index.html"]
    for page in pages:
        parser = _Refs()
        parser.feed(page.read_text("utf-8"))
        assert parser.refs, page
        for ref in parser.refs:
            assert "//" not in ref and not ref.startswith("/"), f"{page.name}: {ref} is not relative"
            target = (page.parent / ref).resolve()
            if ref.endswith("/"):
                target = target / "index.html"
            assert target.is_file(), f"{page}: {ref} does not exist"
    for script in (STATIC_DIR / "js").glob("*.js"):
        for name in re.findall(r'from "\./([\w.-]+)"', script.read_text("utf-8")):
            assert (STATIC_DIR / "js" / name).is_file(), f"{script.name} imports a missing {name}"
        assert "http://" not in script.read_text("utf-8") and "https://" not in script.read_text("utf-8")


def test_vendored_chart_library_matches_its_recorded_checksum() -> None:
    vendor = STATIC_DIR / "vendor"
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", (vendor / "README.md").read_text("utf-8"), re.M)
    assert {name for name, _ in rows} == {"chart.umd.min.js", "chart.js.LICENSE.md"}
    for name, digest in rows:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "Chart.js v4." in (vendor / "chart.umd.min.js").read_text("utf-8")[:200]


# ---- apps and sessions ----
def _broken_app() -> App:
    raise RuntimeError("cannot build")


def test_apps_lists_registered_apps_and_indexed_collections(client: MakeClient, monkeypatch: pytest.MonkeyPatch,
                                                            kb: Runtime) -> None:
    monkeypatch.setitem(APPS, "ghost", lambda: App(name="ghost", collection="nowhere", title="유령 앱",
                                                   examples=["있나요?"]))
    monkeypatch.setitem(APPS, "broken", _broken_app)
    body = client().get("/api/v1/apps").json()
    apps = {a["name"]: a for a in body["apps"]}
    assert "broken" not in apps  # one app that cannot be built does not hide the others
    assert apps["shop"] == {"name": "shop", "title": "쇼핑 FAQ", "description": "", "collection": "faq",
                            "examples": [], "available": True}
    assert apps["ghost"]["available"] is False and apps["ghost"]["examples"] == ["있나요?"]
    faq = kb.store.get_collection("faq")
    assert {"name": "faq", "version": faq.version, "documents": faq.documents, "chunks": faq.chunks} \
        in body["collections"]
    assert body["default_collection"] == "faq"
    assert body["provider"]["kind"] == "extractive" and body["provider"]["label_ko"]


def test_apps_and_session_list_need_a_key_when_keys_are_set(client: MakeClient) -> None:
    c = client(api_keys=[USER_KEY])
    for path, params in (("/api/v1/apps", {}), ("/api/v1/sessions", {"user_id": "kim"})):
        r = c.get(path, params=params)
        assert r.status_code == 401 and r.json()["error"]["message_ko"] == "API 키가 필요합니다."
        assert c.get(path, params=params, headers={"X-API-Key": USER_KEY}).status_code == 200
        assert c.get(path, params=params, headers=ADMIN).status_code == 200


def test_sessions_of_a_user_are_listed_newest_first(client: MakeClient) -> None:
    c = client()
    asked = []
    for user, question in (("kim", "정산 계좌를 변경하고 싶어요"), ("lee", "구매평을 삭제할 수 있나요?"),
                           ("kim", "공휴일은 휴무일로 자동 설정되나요?")):
        r = c.post("/api/v1/chat", json={"question": question, "app": "shop", "user_id": user})
        assert r.status_code == 200
        asked.append((user, r.json()["session_id"]))
    sid = asked[0][1]  # a follow-up in kim's first session makes it the most recent
    assert c.post("/api/v1/chat", json={"question": "예금주는요?", "session_id": sid, "user_id": "kim"}).status_code == 200

    page = c.get("/api/v1/sessions", params={"user_id": "kim"}).json()
    assert page["total"] == 2 and [s["session_id"] for s in page["items"]] == [sid, asked[2][1]]
    first = page["items"][0]
    assert first["title"] == "정산 계좌를 변경하고 싶어요" and first["message_count"] == 4
    assert first["app"] == "shop" and first["collection"] == "faq"
    assert c.get("/api/v1/sessions", params={"user_id": "kim", "limit": 1, "offset": 1}).json()["items"][0][
        "session_id"] == asked[2][1]
    assert c.get("/api/v1/sessions", params={"user_id": "nobody"}).json() == {"items": [], "total": 0, "limit": 50,
                                                                              "offset": 0}
    assert c.get("/api/v1/sessions").status_code == 422
    assert c.get("/api/v1/sessions", params={"user_id": "a\tb"}).status_code == 422
    assert c.get("/api/v1/sessions", params={"user_id": "kim", "limit": 0}).status_code == 422


# ---- admin: collections and ingestion runs ----
def test_admin_collections_list_versions_with_document_counts(client: MakeClient, kb: Runtime) -> None:
    c = client()
    indexer = kb.indexer(make_chunker("whole"))
    docs = [Document(f"d{i}", f"문서 {i}번의 내용입니다. 배송 안내 {i}", f"문서 {i}") for i in range(3)]
    try:
        indexer.index("uitest", docs[:2], sync=True, note="첫 색인")
        indexer.index("uitest", [docs[0], docs[2]], sync=True, note="둘째 색인")
        for headers, status in (({}, 401), ({"X-API-Key": "wrong"}, 403)):
            assert c.get("/api/v1/admin/collections", headers=headers).status_code == status
        body = {col["name"]: col for col in c.get("/api/v1/admin/collections", headers=ADMIN).json()}
        col = body["uitest"]
        info = kb.store.get_collection("uitest")
        assert (col["version"], col["documents"], col["chunks"]) == (info.version, info.documents, info.chunks) \
            == (2, 2, 2)
        expected = sorted(kb.store.versions("uitest"), key=lambda v: v.version, reverse=True)
        assert [(v["version"], v["status"], v["documents"], v["added_docs"], v["removed_docs"], v["note"])
                for v in col["versions"]] == [(v.version, v.status, v.documents, v.added_docs, v.removed_docs, v.note)
                                              for v in expected]
        assert [v["note"] for v in col["versions"]] == ["둘째 색인", "첫 색인"]
        assert col["versions"][0]["status"] == "current" and col["embedder_id"] == info.embedder_id
        assert body["faq"]["documents"] == 5
    finally:
        kb.store.drop_collection("uitest")


def _wait_job(c: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (job := c.get(f"/api/v1/ingest/{job_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "the ingest job did not finish"
        time.sleep(0.1)
    return job


def test_admin_ingest_runs_merge_api_jobs_and_pipeline_reports(client: MakeClient, kb: Runtime,
                                                               tmp_path: Path) -> None:
    home = tmp_path / "runs-home"
    c = client(home=home)
    try:
        good = c.post("/api/v1/ingest", data={"collection": "uiruns"},
                      files={"file": ("공지.md", "# 공지\n\n배송은 영업일 기준 2일 걸립니다.\n".encode())}).json()
        good = _wait_job(c, good["job_id"])
        bad = c.post("/api/v1/ingest", data={"collection": "uiruns", "format": "faq-pickle"},
                     files={"file": ("faq.pkl", b"not a pickle")}).json()
        bad = _wait_job(c, bad["job_id"])
        assert (good["status"], bad["status"]) == ("done", "failed")

        runs = home.resolve() / "pipeline" / "runs"
        runs.mkdir(parents=True)
        reports = [
            RunReport("r-old", "2020-01-01T00:00:00+00:00", "2020-01-01T00:01:00+00:00", "ok", [
                StageReport("extract", "shop_db", "ok", {"rows": 40, "objects": 2}),
                StageReport("extract", "files", "ok", {"rows": 2, "objects": 1}),
                StageReport("transfer", "landing->inbox", "ok", {"delivered": 3, "dead": 0}),
                StageReport("index", "products", "ok", {"added": 30, "updated": 5, "deleted": 1,
                                                        "chunks_indexed": 41})]),
            RunReport("r-new", "2999-01-01T00:00:00+00:00", "", "running", [
                StageReport("extract", "shop_db", "failed", {}, {"type": "SchemaDrift", "message_ko": "열이 사라졌습니다.",
                                                                 "message_en": "A column is gone."})]),
        ]
        for report in reports:
            (runs / f"{report.run_id}.json").write_text(json.dumps(report.to_dict()), "utf-8")
        (runs / "broken.json").write_text("{not json", "utf-8")

        assert c.get("/api/v1/admin/ingest/runs").status_code == 401
        body = c.get("/api/v1/admin/ingest/runs", headers=ADMIN).json()
        assert body["unreadable"] == 1
        items = body["items"]
        assert [i["run_id"] for i in items] == ["r-new", bad["job_id"], good["job_id"], "r-old"]  # newest first
        new, failed_job, done_job, old = items
        assert (new["kind"], new["status"], new["rows"], new["targets"]) == ("pipeline", "running", 0, ["shop_db"])
        assert new["errors"] == [{"stage": "extract", "name": "shop_db", "code": "SchemaDrift",
                                  "message_ko": "열이 사라졌습니다.", "message_en": "A column is gone."}]
        assert (old["status"], old["rows"], old["added"], old["updated"], old["deleted"], old["chunks"]) == \
            ("ok", 42, 30, 5, 1, 41)
        assert old["targets"] == ["shop_db", "files", "products"] and len(old["stages"]) == 4
        report = good["report"]
        assert (done_job["kind"], done_job["status"], done_job["targets"]) == ("api", "ok", ["uiruns"])
        assert (done_job["rows"], done_job["added"], done_job["chunks"]) == \
            (report["documents_seen"], report["added"], report["chunks_indexed"])
        assert failed_job["status"] == "failed" and failed_job["rows"] is None
        assert failed_job["errors"][0]["message_ko"] == bad["error"]["message_ko"]

        only_api = c.get("/api/v1/admin/ingest/runs", params={"kind": "api", "limit": 1}, headers=ADMIN).json()
        assert [i["run_id"] for i in only_api["items"]] == [bad["job_id"]]
        assert c.get("/api/v1/admin/ingest/runs", params={"limit": 0}, headers=ADMIN).status_code == 422
    finally:
        kb.store.drop_collection("uiruns")
