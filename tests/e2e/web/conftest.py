"""Web UI test fixtures: real uvicorn servers of the API (``make_app`` on the shared knowledge base
of tests/e2e/conftest.py: five Korean FAQ entries, apps ``shop`` and ``faq``, the extractive
provider) and headless Debian chromium driven by Playwright (``executable_path``, no browser
download). Every request a page makes is recorded (``Session.check_offline``). Screenshots go to
``$JISIK_TEST_ARTIFACTS/web`` (default ``test-artifacts/web``, git-ignored)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api_env import LiveServer, MakeApp

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("JISIK_CHROMIUM", "/usr/bin/chromium")


def artifacts_dir() -> Path:
    base = os.environ.get("JISIK_TEST_ARTIFACTS")
    path = (Path(base) if base else ROOT / "test-artifacts") / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


class WebServer(LiveServer):
    """A real uvicorn server of the API and its home directory (stores, jobs, run reports)."""

    def __init__(self, app: FastAPI, home: Path) -> None:
        super().__init__(app)
        self.home = home


@pytest.fixture
def serve(make_app: MakeApp, tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    """``serve(llm=None, **settings)`` -> a started server (own home; the extractive provider
    unless an ``llm`` provider is given); stopped after the test."""
    counter = iter(range(100))
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> WebServer:
            home = overrides.pop("home", tmp_path / f"server{next(counter)}")
            server = WebServer(make_app(home=home, **overrides), home)
            server.__enter__()
            stack.callback(server.__exit__, None, None, None)
            return server

        yield start


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium; when it cannot start the test fails under JISIK_STRICT_SERVICES=1."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        _no_browser(f"playwright is not installed: {exc}")
    manager = sync_playwright()
    pw = manager.start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    except Exception as exc:
        manager.__exit__(None, None, None)
        _no_browser(f"chromium did not start ({CHROMIUM}): {exc}")
    yield b
    b.close()
    manager.__exit__(None, None, None)


def _no_browser(reason: str) -> None:
    if os.environ.get("JISIK_STRICT_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class Session:
    """A browser context on one server: its pages, every request they made, their console problems."""

    server: WebServer
    context: Any
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.server.url

    def page(self, path: str = "/ui/") -> Any:
        page = self.context.new_page()
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.goto(self.origin + path)
        return page

    def _console(self, message: Any) -> None:
        text = message.text
        # the browser logs every non-2xx fetch; those are expected where a test provokes 401/503
        if message.type == "error" and not text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {text}")
        if "Content Security Policy" in text:
            self.problems.append(f"CSP violation: {text}")

    def screenshot(self, page: Any, name: str) -> Path:
        path = artifacts_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def check_offline(self) -> None:
        """Every request went to the jisik server (nothing to CDNs, font hosts, ...)."""
        assert self.requests, "no request was recorded"
        foreign = [u for u in self.requests if not (u == self.origin or u.startswith(self.origin + "/"))]
        assert not foreign, f"requests to other hosts: {foreign}"
        assert not self.problems, self.problems

    def finish(self, page: Any, name: str) -> None:
        """The last screenshot of a test, then :meth:`check_offline`."""
        self.screenshot(page, name)
        self.check_offline()


@pytest.fixture
def web(browser: Any, serve: Callable[..., WebServer], request: pytest.FixtureRequest
        ) -> Iterator[Callable[..., Session]]:
    """``web(server=None, **context_options)`` -> a recorded browser session on ``server`` (default: a
    new server with default settings); a failed test leaves screenshots of its pages."""
    sessions: list[Session] = []

    def open_session(server: WebServer | None = None, **options: Any) -> Session:
        server = server or serve()
        context = browser.new_context(locale="ko-KR", timezone_id="Asia/Seoul", **options)
        context.set_default_timeout(30_000)
        s = Session(server, context)
        context.on("request", lambda r: s.requests.append(r.url))
        sessions.append(s)
        return s

    yield open_session
    failed = getattr(request.node, "rep_call", None)
    for s in sessions:
        for i, page in enumerate(s.context.pages):
            if failed is not None and failed.failed:
                s.screenshot(page, f"FAILED-{request.node.name}-{i}")
        s.context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
