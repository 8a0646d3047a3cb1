"""REST APIs: GET JSON pages with pagination, retries, a client-side rate limit and an API key.

* Retries: timeouts, connection errors, 429 and 5xx are retried up to ``http.retries`` times with
  exponential backoff and jitter (``base * 2**attempt``, half of it random, capped at
  ``backoff_max_s``). A ``Retry-After`` header is honoured; one asking for more than
  ``backoff_max_s`` ends the run with :class:`Unavailable` instead of sleeping that long.
  401/403 are :class:`ConfigError` (check the key), other 4xx :class:`InvalidInput`.
* Rate limit: at most ``rate_limit_per_s`` requests per second, across pages and retries.
* API key: read from the environment variable named in ``auth.env`` at run time, sent as a
  query parameter or header. It never reaches a manifest, an error message or a log line (the
  ``httpx`` loggers, which print request URLs, get a filter that masks it).
* Output: one JSON file per run. With ``items_fields`` the first page's body with each of those
  lists replaced by the concatenation over all pages; without, ``{"pages": [body, ...]}``.
  All pages are held in memory: REST sources are expected to be small (thousands of records).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from jisik.core.errors import ConfigError, CorruptData, InvalidInput, Unavailable
from jisik.core.logging import get_logger
from jisik.pipeline.manifest import Extracted
from jisik.pipeline.sources.base import CONTENT_TYPES, ParseHints, RunContext, secret_from_env
from jisik.pipeline.sources.config import (
    CursorPagination,
    HttpOptions,
    NextLinkPagination,
    PageNumberPagination,
    RestSourceConfig,
)

log = get_logger(__name__)
PageCheck = Callable[[Any], None]
_RETRY_STATUS = {429, 500, 502, 503, 504}


class _RedactSecrets(logging.Filter):
    """Masks registered secrets in records of third-party HTTP loggers."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self.lock:
            self.secrets |= {secret, quote(secret, safe=""), quote(secret)}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            for s in self.secrets:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, ()
        return True


_REDACT = _RedactSecrets()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACT)


def get_path(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None when a step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def with_path(obj: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` (copying only the dicts on the path) with ``value`` at ``dotted``."""
    head, _, rest = dotted.partition(".")
    out = dict(obj)
    inner = obj.get(head)
    out[head] = with_path(inner if isinstance(inner, dict) else {}, rest, value) if rest else value
    return out


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended to its query (httpx's ``params=`` would replace the query)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HttpFetcher:
    """GET JSON with retries, backoff with jitter and a rate limit. ``label`` (no query string) is
    the only form of the URL that appears in errors."""

    def __init__(self, options: HttpOptions, label: str, client: httpx.Client | None = None) -> None:
        self.options = options
        self.label = label
        self.client = client or httpx.Client(timeout=options.timeout_s, follow_redirects=False)
        self._own_client = client is None
        self._next_slot = 0.0
        self.requests = 0

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def _throttle(self) -> None:
        if not self.options.rate_limit_per_s:
            return
        now = time.monotonic()
        if now < self._next_slot:
            time.sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + 1.0 / self.options.rate_limit_per_s

    def backoff_s(self, attempt: int) -> float:
        cap = min(self.options.backoff_max_s, self.options.backoff_base_s * 2**attempt)
        return cap / 2 + random.uniform(0, cap / 2)

    def get_json(self, url: str, params: Sequence[tuple[str, str]], headers: dict[str, str]) -> Any:
        opts = self.options
        problem = ""
        for attempt in range(opts.retries + 1):
            self._throttle()
            self.requests += 1
            delay: float | None = None
            try:
                resp = self.client.get(with_query(url, params), headers=headers, timeout=opts.timeout_s)
            except httpx.TimeoutException:
                problem = f"timeout after {opts.timeout_s:g}s"
            except httpx.TransportError as exc:
                problem = f"connection error ({type(exc).__name__})"
            else:
                status = resp.status_code
                if status in _RETRY_STATUS:
                    problem = f"HTTP {status}"
                    delay = retry_after_s(resp.headers.get("Retry-After"))
                    if delay is not None and delay > opts.backoff_max_s:
                        raise Unavailable(
                            f"API가 {delay:.0f}초 뒤에 다시 시도하라고 합니다: {self.label}",
                            f"{self.label} asks to retry after {delay:.0f}s (more than backoff_max_s).",
                            details={"status": status})
                elif status in (401, 403):
                    raise ConfigError(f"API 인증에 실패했습니다 (HTTP {status}): {self.label}",
                                      f"{self.label} refused the request (HTTP {status}).", hint="check the API key")
                elif status >= 400:
                    raise InvalidInput(f"API 요청이 거부되었습니다 (HTTP {status}): {self.label}",
                                       f"{self.label} rejected the request (HTTP {status}).",
                                       details={"status": status})
                else:
                    try:
                        return resp.json()
                    except ValueError:
                        raise CorruptData(f"API 응답이 JSON이 아닙니다: {self.label}",
                                          f"{self.label} did not answer with JSON.") from None
            if attempt < opts.retries:
                wait = delay if delay is not None else self.backoff_s(attempt)
                log.warning("http retry", extra={"endpoint": self.label, "problem": problem,
                                                 "attempt": attempt + 1, "wait_s": round(wait, 3)})
                time.sleep(wait)
        raise Unavailable(f"API 요청이 {opts.retries + 1}번 모두 실패했습니다 ({problem}): {self.label}",
                          f"{self.label} failed {opts.retries + 1} times ({problem}).",
                          hint="the server may be down or slow; try again later")


class RestSource:
    kind = "rest"

    def __init__(self, config: RestSourceConfig, *, check: PageCheck | None = None,
                 client: httpx.Client | None = None) -> None:
        p = config.pagination
        if isinstance(p, PageNumberPagination) and p.max_page_field is None and not config.items_fields:
            raise ConfigError("페이지 번호 방식에는 max_page_field나 items_fields가 필요합니다.",
                              "Page-number pagination needs max_page_field or items_fields to know when to stop.")
        self.config = config
        self.check = check
        self.client = client

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def endpoint(self) -> str:
        """base_url + path, without query string: the form used in manifests and errors."""
        return self.config.base_url.rstrip("/") + ("/" + self.config.path.lstrip("/") if self.config.path else "")

    def _auth(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        auth = self.config.auth
        if auth is None:
            return [], {}
        key = secret_from_env(auth.env, "API 키(API key)")
        _REDACT.add(key)
        if auth.param is not None:
            return [(auth.param, key)], {}
        assert auth.header is not None
        return [], {auth.header: auth.prefix + key}

    def _items(self, body: Any) -> list[list[Any]]:
        lists = []
        for field in self.config.items_fields:
            value = get_path(body, field)
            if value is None:
                value = []
            if not isinstance(value, list):
                raise CorruptData(f"API 응답의 '{field}'가 목록이 아닙니다: {self.endpoint}",
                                  f"'{field}' in the response of {self.endpoint} is not a list.")
            lists.append(value)
        return lists

    def fetch_pages(self, extra_params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every page body, in order (each passed to ``check`` first)."""
        cfg = self.config
        auth_params, auth_headers = self._auth()
        headers = {**cfg.headers, **auth_headers}
        base = [(k, _param(v)) for k, v in {**cfg.params, **(extra_params or {})}.items() if v is not None]
        fetcher = HttpFetcher(cfg.http, self.endpoint, self.client)
        p = cfg.pagination
        url, page_no, cursor = self.endpoint, getattr(p, "start", 1), None
        try:
            for n in range(cfg.http.max_pages + 1):
                if n == cfg.http.max_pages:
                    raise InvalidInput(f"페이지가 {n}개를 넘습니다: {self.endpoint}",
                                       f"{self.endpoint} has more than max_pages={n} pages.",
                                       hint="raise http.max_pages")
                params = list(base) if url == self.endpoint else []
                if isinstance(p, PageNumberPagination):
                    params.append((p.page_param, str(page_no)))
                    if p.page_size_param and p.page_size:
                        params.append((p.page_size_param, str(p.page_size)))
                elif isinstance(p, CursorPagination) and cursor is not None:
                    params.append((p.cursor_param, cursor))
                body = fetcher.get_json(url, params + auth_params, headers)
                if self.check is not None:
                    self.check(body)
                yield body
                empty = bool(cfg.items_fields) and not any(self._items(body))
                if isinstance(p, PageNumberPagination):
                    last = get_path(body, p.max_page_field) if p.max_page_field else None
                    if empty or (last is not None and page_no >= int(last)):
                        return
                    page_no += 1
                elif isinstance(p, CursorPagination):
                    nxt = get_path(body, p.next_cursor_field)
                    if not nxt or empty:
                        return
                    cursor = str(nxt)
                elif isinstance(p, NextLinkPagination):
                    link = get_path(body, p.next_field)
                    if not link or empty:
                        return
                    url = self._next_url(url, str(link), [k for k, _ in auth_params])
                else:
                    return
        finally:
            fetcher.close()

    def _next_url(self, current: str, link: str, drop: list[str]) -> str:
        nxt = urlsplit(urljoin(current, link))
        here = urlsplit(self.endpoint)
        if (nxt.scheme, nxt.netloc) != (here.scheme, here.netloc):
            raise InvalidInput("다음 페이지 링크가 다른 서버를 가리킵니다. 따라가지 않았습니다.",
                               f"The next-page link leaves {here.netloc}; not following it (the API key "
                               "would go to another host).")
        query = urlencode([(k, v) for k, v in parse_qsl(nxt.query, keep_blank_values=True) if k not in drop])
        return urlunsplit((nxt.scheme, nxt.netloc, nxt.path, query, ""))

    def merge(self, pages: list[Any]) -> Any:
        if not self.config.items_fields:
            return {"pages": pages}
        first = pages[0] if isinstance(pages[0], dict) else {}
        merged: dict[str, Any] = first
        per_page = [self._items(page) for page in pages]
        for i, field in enumerate(self.config.items_fields):
            merged = with_path(merged, field, [item for lists in per_page for item in lists[i]])
        return merged

    def extract(self, run: RunContext) -> list[Extracted]:
        cfg = self.config
        pages = list(self.fetch_pages())
        merged = self.merge(pages)
        name = cfg.output or cfg.name
        path = run.staging_for(cfg.name) / f"{name}.json"
        path.write_text(json.dumps(merged, ensure_ascii=False), encoding="utf-8")
        rows = len(get_path(merged, cfg.items_fields[0]) or []) if cfg.items_fields else None
        items_path = cfg.items_path or (cfg.items_fields[0] if cfg.items_fields else None)
        hints = ParseHints.from_table(cfg.hints, items_path=items_path)
        log.info("rest source extracted", extra={"source": cfg.name, "pages": len(pages), "rows": rows})
        return [Extracted(
            path=path, name=name, fmt="json", source=cfg.name, source_kind="rest", query=self.endpoint,
            params={**cfg.params, **hints.to_params()}, row_count=rows, page_count=len(pages),
            content_type=CONTENT_TYPES["json"],
        )]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
