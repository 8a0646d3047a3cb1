"""Fixtures of the LLM provider tests: the local streaming chat server (tests/llm_chat_server.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from llm_chat_server import ChatServer


@pytest.fixture()
def chat_server() -> Iterator[ChatServer]:
    srv = ChatServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture()
def closed_port() -> int:
    """A port on which nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port
