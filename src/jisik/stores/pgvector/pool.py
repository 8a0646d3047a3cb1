"""A tiny thread-safe pool of autocommit connections."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from jisik.stores.pgvector.common import (
    Conn,
    psycopg,
)


class _Pool:
    """A tiny thread-safe pool of autocommit connections (reads and DDL)."""

    def __init__(self, connect: Any, max_idle: int) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[tuple[Conn, bool]]:
        """Yield (connection, reused) — ``reused`` tells callers a failure may be a stale socket."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect(autocommit=True)
        assert conn is not None
        try:
            yield conn, reused
        finally:
            # errors raised by our own checks leave the connection idle and reusable
            good = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                if good and not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            with contextlib.suppress(Exception):
                c.close()
