"""Prometheus metrics of one API process, and the ASGI middleware that gives every request an id,
a metric sample and one access-log line (method, route template, status, milliseconds: no query
strings, no bodies, no personal data).

Metrics live in a registry per app (several apps in one process, as in tests, do not collide).
With several uvicorn workers each process has its own numbers: scrape each worker, or run one
worker per container behind the load balancer (the usual deployment).
"""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jisik.core.logging import get_logger, request_id
from jisik.stores.conversations import new_id

log = get_logger("jisik.api.access")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("jisik_http_requests_total", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("jisik_http_request_duration_seconds", "HTTP request latency (whole stream)",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("jisik_http_requests_in_flight", "Requests being served", registry=r)
        self.retrieval = Histogram("jisik_retrieval_seconds", "Retrieval latency (embed + search + fuse)",
                                   buckets=_LATENCY_BUCKETS, registry=r)
        self.generation = Histogram("jisik_generation_seconds", "LLM generation latency (whole answer)",
                                    ["provider"], buckets=_LATENCY_BUCKETS, registry=r)
        self.first_token = Histogram("jisik_first_token_seconds", "LLM time to first token", ["provider"],
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("jisik_llm_tokens_total", "LLM tokens", ["provider", "kind"], registry=r)
        self.cache = Counter("jisik_answer_cache_total", "Answer cache lookups", ["result"], registry=r)
        self.answers = Counter("jisik_answers_total", "Answers by outcome", ["app", "outcome"], registry=r)
        self.errors = Counter("jisik_chat_errors_total", "Failed answers by error code", ["code"], registry=r)
        self.cancelled = Counter("jisik_chat_cancelled_total", "Answers stopped by a client disconnect",
                                 registry=r)
        self.feedback = Counter("jisik_feedback_total", "Feedback received", ["rating"], registry=r)
        self.rate_limited = Counter("jisik_rate_limited_total", "Requests refused by the rate limit", registry=r)

    def observe_event(self, kind: str, data: dict[str, Any]) -> None:
        """Record what a chat event says (retrieval, done, error)."""
        if kind == "retrieval" and not data.get("cached"):
            ms = data.get("timings_ms", {}).get("retrieval")
            if ms is not None:
                self.retrieval.observe(ms / 1000)
        elif kind == "done":
            provider = str(data.get("provider", {}).get("name", ""))
            self.cache.labels("hit" if data.get("cached") else "miss").inc()
            self.answers.labels(str(data.get("app", "")), str(data.get("outcome", ""))).inc()
            timings = data.get("timings_ms", {})
            if "generation" in timings:
                self.generation.labels(provider).observe(timings["generation"] / 1000)
            if "first_token" in timings:
                self.first_token.labels(provider).observe(timings["first_token"] / 1000)
            usage = data.get("usage", {})
            for k in ("prompt_tokens", "completion_tokens"):
                if usage.get(k):
                    self.tokens.labels(provider, k.split("_")[0]).inc(int(usage[k]))
        elif kind == "error":
            self.errors.labels(str(data.get("code", ""))).inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class RequestContextMiddleware:
    """Request id (``X-Request-ID`` in and out, also on WebSocket), metrics and the access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.fullmatch(given) else new_id()
        token = request_id.set(rid)
        status = 0
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            status = status or 500
            raise
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "WS")
            if scope["type"] == "websocket":
                status = status or 101
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(seconds)
            log.info("request", extra={"method": method, "route": template, "status": status,
                                       "ms": round(seconds * 1000, 1)})
            request_id.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
