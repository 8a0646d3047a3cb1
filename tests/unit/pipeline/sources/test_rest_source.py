"""RestSource and FinlifeSource against a real local HTTP server (stdlib, in a thread) that serves
the finlife samples split into pages, plus flaky, slow and failing endpoints."""

from __future__ import annotations

import json
import logging
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from jisik.core.errors import ConfigError, InvalidInput, Unavailable
from jisik.pipeline.sources import FinlifeSourceConfig, RestSourceConfig, RunContext, build_source
from jisik.pipeline.sources.finlife import FinlifeSource
from jisik.pipeline.sources.parsers import documents_from_object
from jisik.pipeline.sources.rest import RestSource

KEY = "k3y-Secret/+="  # characters that get URL-encoded, to catch leaks in either form
PAGE = 10  # finlife products per page
FAST = {"retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 1.0, "timeout_s": 2.0}


@dataclass
class Server:
    url: str
    samples: dict[str, dict[str, Any]]
    requests: list[tuple[float, str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def hits(self, path: str) -> list[dict[str, list[str]]]:
        return [q for _, p, q, _ in self.requests if p == path]


def _finlife_page(sample: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    auth = query.get("auth", [""])[0]
    if auth != KEY:
        code, msg = ("020", "일일 검색 허용 횟수 초과") if auth == "LIMIT" else ("010", "미등록 인증키")
        return {"result": {"err_cd": code, "err_msg": msg}}
    base = sample["baseList"] if query.get("topFinGrpNo") == ["020000"] else []
    page = int(query["pageNo"][0])
    chunk = base[(page - 1) * PAGE : page * PAGE]
    codes = {b["fin_prdt_cd"] for b in chunk}
    return {"result": {"prdt_div": sample["prdt_div"], "total_count": len(base), "max_page_no": -(-len(base) // PAGE),
                       "now_page_no": page, "err_cd": "000", "err_msg": "정상", "baseList": chunk,
                       "optionList": [o for o in sample["optionList"] if o["fin_prdt_cd"] in codes]}}


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            server.requests.append((time.monotonic(), path, query, dict(self.headers)))
            n = server.counters[path] = server.counters.get(path, 0) + 1
            if path.startswith("/finlifeapi/"):
                kind = "deposit" if "deposit" in path else "saving"
                return self._send(200, _finlife_page(server.samples[kind], query))
            if path == "/items":  # page numbers, no last-page field: stop on an empty page
                page = int(query["page"][0])
                return self._send(200, {"data": {"items": [{"id": i} for i in range(page * 3 - 2, page * 3 + 1)]
                                                 if page <= 2 else []}})
            if path == "/cursor":
                cur = int(query.get("cursor", ["0"])[0])
                return self._send(200, {"items": [{"id": cur + 1}], "next_cursor": str(cur + 1) if cur < 2 else None})
            if path == "/next":
                p = int(query.get("p", ["1"])[0])
                return self._send(200, {"items": [{"id": p}], "next": f"/next?p={p + 1}&auth={KEY}" if p < 3 else ""})
            if path == "/offsite":
                return self._send(200, {"items": [{"id": 1}], "next": "http://evil.invalid/steal"})
            if path == "/throttled":  # 429 with Retry-After, then fine
                if n == 1:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0.3"})
                return self._send(200, {"items": [{"id": 1}]})
            if path == "/flaky":  # two server errors, then fine
                return self._send(500 if n <= 2 else 200, {"items": [{"id": n}]})
            if path == "/broken":
                return self._send(502, {})
            if path == "/patient":
                return self._send(503, {}, {"Retry-After": "3600"})
            if path == "/hang":
                server.release.wait(3)
                return self._send(200, {"items": []})
            if path == "/header-auth":
                ok = self.headers.get("Authorization") == f"Bearer {KEY}"
                return self._send(200 if ok else 401, {"items": [{"id": 1}]})
            if path == "/notjson":
                return self._send(200, b"<html>oops</html>")
            return self._send(404, {"error": "no such endpoint"})

    return Handler


@pytest.fixture(scope="module")
def server(shared_data: Path) -> Iterator[Server]:
    samples = {kind: json.loads((shared_data / "fss_finlife" / f"cashfit_{kind}_fss_format.json").read_text("utf-8"))
               ["result"] for kind in ("deposit", "saving")}
    state = Server("", samples)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    monkeypatch.setenv("TEST_API_KEY", KEY)
    server.requests.clear()
    server.counters.clear()


def _rest(server: Server, path: str, **kw: Any) -> RestSource:
    cfg: dict[str, Any] = {"name": "api", "base_url": server.url, "path": path, "http": FAST, **kw}
    return RestSource(RestSourceConfig.model_validate(cfg))


def test_finlife_source_merges_groups_and_pages(server: Server, run: RunContext, manifest_for: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source = build_source(FinlifeSourceConfig(name="fss", base_url=server.url, api_key_env="TEST_API_KEY",
                                              top_fin_grp_no=["020000", "030300"], http={"rate_limit_per_s": 100}))
    assert isinstance(source, FinlifeSource)
    deposit, saving = source.extract(run)
    assert (deposit.name, deposit.fmt, deposit.source_kind, deposit.row_count) == ("deposit", "json", "rest", 39)
    assert deposit.page_count == 5 and saving.row_count == 58 and saving.page_count == 7  # 4 + 1 and 6 + 1
    pages = [q["pageNo"][0] for q in server.hits("/finlifeapi/depositProductsSearch.json")]
    assert pages == ["1", "2", "3", "4", "1"]
    body = json.loads(deposit.path.read_text("utf-8"))["result"]
    assert len(body["baseList"]) == 39 and len(body["optionList"]) == 154 and body["total_count"] == 39
    assert deposit.query == f"{server.url}/finlifeapi/depositProductsSearch.json"
    assert deposit.params == {"topFinGrpNo": ["020000", "030300"], "product": "deposit", "_parser": "finlife"}
    # the API key is nowhere: not in the output, the Extracted record, or any log line (httpx logs URLs)
    for leak in (KEY, "k3y-Secret%2F%2B%3D"):
        assert leak not in deposit.path.read_text("utf-8") and leak not in repr(deposit)
        assert leak not in caplog.text
    assert any("finlifeapi" in r.getMessage() for r in caplog.records if r.name == "httpx")
    docs = list(documents_from_object(saving.path, manifest_for(saving, run)))
    assert len(docs) == 58 and docs[0].doc_id.startswith("fss/saving/")
    assert {d.metadata["product_type"] for d in docs} == {"saving"}


def test_finlife_error_codes_are_typed(server: Server, run: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = FinlifeSourceConfig(name="fss", base_url=server.url, api_key_env="TEST_API_KEY", products=["deposit"],
                              http=FAST)
    monkeypatch.setenv("TEST_API_KEY", "WRONG")
    with pytest.raises(ConfigError) as info:
        FinlifeSource(cfg).extract(run)
    assert info.value.details["err_cd"] == "010" and "미등록 인증키" in info.value.message_ko
    monkeypatch.setenv("TEST_API_KEY", "LIMIT")
    with pytest.raises(Unavailable, match="020"):
        FinlifeSource(cfg).extract(run)
    monkeypatch.delenv("TEST_API_KEY")
    with pytest.raises(ConfigError, match="TEST_API_KEY"):
        FinlifeSource(cfg).extract(run)


def test_page_numbers_until_an_empty_page(server: Server, run: RunContext) -> None:
    source = _rest(server, "/items", params={"lang": "ko"}, items_fields=["data.items"],
                   pagination={"style": "page", "page_param": "page", "page_size_param": "size", "page_size": 3},
                   auth={"env": "TEST_API_KEY", "param": "key"}, hints={"key_columns": ["id"]})
    [e] = source.extract(run)
    assert e.row_count == 6 and e.page_count == 3
    assert json.loads(e.path.read_text("utf-8")) == {"data": {"items": [{"id": i} for i in range(1, 7)]}}
    assert [q["page"] for q in server.hits("/items")] == [["1"], ["2"], ["3"]]
    assert all(q["lang"] == ["ko"] and q["size"] == ["3"] and q["key"] == [KEY] for q in server.hits("/items"))
    assert e.params == {"lang": "ko", "_key_columns": ["id"], "_items_path": "data.items"}


def test_cursor_and_next_link_pagination(server: Server, run: RunContext) -> None:
    [e] = _rest(server, "/cursor", items_fields=["items"], pagination={"style": "cursor"}).extract(run)
    assert e.row_count == 3 and [q.get("cursor") for q in server.hits("/cursor")] == [None, ["1"], ["2"]]
    [e] = _rest(server, "/next", items_fields=["items"], pagination={"style": "next_link"},
                auth={"env": "TEST_API_KEY", "param": "auth"}).extract(run)
    assert e.row_count == 3
    assert [q["auth"] for q in server.hits("/next")] == [[KEY]] * 3  # sent once per request, not duplicated
    with pytest.raises(InvalidInput, match="another host"):
        _rest(server, "/offsite", items_fields=["items"], pagination={"style": "next_link"},
              auth={"env": "TEST_API_KEY", "param": "auth"}).extract(run)


def test_retries_honour_retry_after_and_back_off(server: Server, run: RunContext) -> None:
    t0 = time.monotonic()
    [e] = _rest(server, "/throttled", items_fields=["items"]).extract(run)
    assert e.row_count == 1 and server.counters["/throttled"] == 2
    first, second = (t for t, p, _, _ in server.requests if p == "/throttled")
    assert second - first >= 0.29  # waited as the server asked, not the 10 ms backoff
    [e] = _rest(server, "/flaky", items_fields=["items"]).extract(run)
    assert server.counters["/flaky"] == 3 and json.loads(e.path.read_text("utf-8"))["items"] == [{"id": 3}]
    with pytest.raises(Unavailable, match="HTTP 502"):
        _rest(server, "/broken", http={**FAST, "retries": 2}).extract(run)
    assert server.counters["/broken"] == 3
    with pytest.raises(Unavailable, match="3600"):
        _rest(server, "/patient").extract(run)
    assert server.counters["/patient"] == 1  # no hour-long sleep, no hammering
    assert time.monotonic() - t0 < 3


def test_timeouts_are_retried_then_unavailable(server: Server, run: RunContext) -> None:
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="timeout"):
        _rest(server, "/hang", http={**FAST, "timeout_s": 0.2, "retries": 1}).extract(run)
    assert server.counters["/hang"] == 2 and time.monotonic() - t0 < 1.5


def test_rate_limit_spaces_requests(server: Server, run: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock that only the throttle's sleeps advance: the spacing is checked exactly, whatever
    # the machine's load does to real request times.
    import jisik.pipeline.sources.rest as rest_module

    clock = {"now": 1000.0}
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["now"] += seconds

    fake_time = types.SimpleNamespace(monotonic=lambda: clock["now"], sleep=fake_sleep, time=time.time)
    monkeypatch.setattr(rest_module, "time", fake_time)  # only the rest module sees the fake clock
    source = _rest(server, "/items", items_fields=["data.items"], pagination={"style": "page"},
                   http={**FAST, "rate_limit_per_s": 10})
    source.extract(run)
    assert len([p for _, p, _, _ in server.requests if p == "/items"]) == 3
    assert len(sleeps) == 2 and sleeps == pytest.approx([0.1, 0.1])  # 3 requests at 10/s: two 100 ms gaps


def test_header_auth_and_client_errors(server: Server, run: RunContext) -> None:
    [e] = _rest(server, "/header-auth", items_fields=["items"],
                auth={"env": "TEST_API_KEY", "header": "Authorization", "prefix": "Bearer "}).extract(run)
    assert e.row_count == 1 and KEY not in repr(e)
    with pytest.raises(ConfigError, match="401"):
        _rest(server, "/header-auth", auth={"env": "TEST_API_KEY", "header": "X-Other"}).extract(run)
    with pytest.raises(InvalidInput, match="404"):
        _rest(server, "/missing").extract(run)
    with pytest.raises(Exception, match="JSON") as info:
        _rest(server, "/notjson").extract(run)
    assert type(info.value).__name__ == "CorruptData"
    with pytest.raises(ConfigError):
        _rest(server, "/items", pagination={"style": "page"})  # no way to know the last page
    with pytest.raises(InvalidInput, match="max_pages"):
        _rest(server, "/cursor", items_fields=["items"], pagination={"style": "cursor"},
              http={**FAST, "max_pages": 2}).extract(run)
