"""Transfer receipts: one row per landed object delivered (or not) to the knowledge-store inbox.

A SQLAlchemy Core table, so the same code runs on SQLite (embedded default), PostgreSQL and
MySQL/MariaDB. A receipt is identified by (manifest key, sha256); since keys may be up to
1024 characters, the primary key is a hash of both (``id``) and lookups by manifest key use a
hash column (``key_hash``) — long text columns cannot be indexed on MySQL.

Status: ``delivered`` (in the inbox; ``indexed_at`` set once the knowledge store indexed it),
``failed`` (last attempt failed, will be retried by the next delivery of the event) or
``dead`` (gave up: listed by :meth:`ReceiptStore.dead`, re-queued explicitly). Times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from jisik.core.errors import Unavailable
from jisik.core.hashing import content_hash

Status = Literal["delivered", "failed", "dead"]
UNKNOWN_SHA = ""  # the manifest could not be read, so the object's checksum is unknown


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Receipt:
    manifest_key: str
    sha256: str
    object_key: str
    status: Status
    attempts: int = 0
    source: str = ""
    run_id: str = ""
    byte_size: int | None = None
    inbox_key: str | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    delivered_at: datetime | None = None
    indexed_at: datetime | None = None
    index_version: str | None = None

    @property
    def id(self) -> str:
        return receipt_id(self.manifest_key, self.sha256)


def receipt_id(manifest_key: str, sha256: str) -> str:
    return content_hash("receipt", manifest_key, sha256, length=64)


def key_hash(manifest_key: str) -> str:
    return content_hash("manifest-key", manifest_key, length=64)


def _naive(t: datetime | None) -> datetime | None:
    return t.astimezone(UTC).replace(tzinfo=None) if t is not None else None


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class ReceiptStore:
    def __init__(self, url: str, *, table: str = "transfer_receipts") -> None:
        parsed = make_url(url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg"))
        self.engine: Engine = create_engine(url, **kwargs)
        self.meta = MetaData()
        self.table = Table(
            table, self.meta,
            Column("id", String(64), primary_key=True),
            Column("key_hash", String(64), nullable=False, index=True),
            Column("manifest_key", String(1024), nullable=False),
            Column("sha256", String(64), nullable=False),
            Column("object_key", String(1024), nullable=False),
            Column("source", String(255), nullable=False),
            Column("run_id", String(255), nullable=False),
            Column("byte_size", BigInteger),
            Column("status", String(16), nullable=False, index=True),
            Column("attempts", Integer, nullable=False),
            Column("inbox_key", String(1024)),
            Column("last_error", Text),
            Column("created_at", DateTime, nullable=False),
            Column("updated_at", DateTime, nullable=False),
            Column("delivered_at", DateTime),
            Column("indexed_at", DateTime),
            Column("index_version", String(64)),
        )
        with self._begin() as conn:
            self.meta.create_all(conn, checkfirst=True)

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise Unavailable("전송 영수증 DB에 연결할 수 없습니다.",
                              f"Receipt database unavailable: {type(e.orig).__name__}") from e

    def _row(self, row: Any) -> Receipt:
        m = row._mapping
        return Receipt(
            manifest_key=m["manifest_key"], sha256=m["sha256"], object_key=m["object_key"], status=m["status"],
            attempts=m["attempts"], source=m["source"], run_id=m["run_id"], byte_size=m["byte_size"],
            inbox_key=m["inbox_key"], last_error=m["last_error"], created_at=_aware(m["created_at"]),
            updated_at=_aware(m["updated_at"]), delivered_at=_aware(m["delivered_at"]),
            indexed_at=_aware(m["indexed_at"]), index_version=m["index_version"],
        )

    def get(self, manifest_key: str, sha256: str) -> Receipt | None:
        with self._begin() as conn:
            row = conn.execute(select(self.table).where(self.table.c.id == receipt_id(manifest_key, sha256))).first()
        return self._row(row) if row is not None else None

    def for_key(self, manifest_key: str) -> list[Receipt]:
        """Every receipt of a manifest key, newest first."""
        t = self.table
        with self._begin() as conn:
            rows = conn.execute(select(t).where(t.c.key_hash == key_hash(manifest_key))
                                .order_by(t.c.updated_at.desc())).all()
        return [self._row(r) for r in rows if r._mapping["manifest_key"] == manifest_key]

    def save(self, receipt: Receipt) -> Receipt:
        """Insert or replace (by id); ``created_at`` is kept, ``updated_at`` set now."""
        t = self.table
        now = now_utc()
        values = {
            "key_hash": key_hash(receipt.manifest_key), "manifest_key": receipt.manifest_key,
            "sha256": receipt.sha256, "object_key": receipt.object_key, "source": receipt.source,
            "run_id": receipt.run_id, "byte_size": receipt.byte_size, "status": receipt.status,
            "attempts": receipt.attempts, "inbox_key": receipt.inbox_key,
            "last_error": receipt.last_error[:4000] if receipt.last_error else None,
            "updated_at": _naive(now), "delivered_at": _naive(receipt.delivered_at),
            "indexed_at": _naive(receipt.indexed_at), "index_version": receipt.index_version,
        }
        with self._begin() as conn:
            done = conn.execute(update(t).where(t.c.id == receipt.id).values(**values)).rowcount
        if not done:
            try:
                with self._begin() as conn:
                    conn.execute(insert(t).values(id=receipt.id, created_at=_naive(now), **values))
            except IntegrityError:  # a concurrent writer inserted it first: ours becomes an update
                with self._begin() as conn:
                    conn.execute(update(t).where(t.c.id == receipt.id).values(**values))
        saved = self.get(receipt.manifest_key, receipt.sha256)
        assert saved is not None
        return saved

    def delete_unknown(self, manifest_key: str) -> None:
        """Drop the placeholder receipt of a manifest that could not be read (it was delivered since)."""
        with self._begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.id == receipt_id(manifest_key, UNKNOWN_SHA)))

    def by_status(self, status: Status, *, limit: int | None = None) -> list[Receipt]:
        t = self.table
        with self._begin() as conn:
            rows = conn.execute(select(t).where(t.c.status == status).order_by(t.c.updated_at, t.c.id)
                                .limit(limit)).all()
        return [self._row(r) for r in rows]

    def pending(self, *, limit: int | None = None) -> list[Receipt]:
        t = self.table
        q = select(t).where(t.c.status == "delivered", t.c.indexed_at.is_(None))
        with self._begin() as conn:
            rows = conn.execute(q.order_by(t.c.delivered_at, t.c.id).limit(limit)).all()
        return [self._row(r) for r in rows]

    def mark_indexed(self, manifest_keys: Iterable[str], index_version: int | str) -> int:
        t = self.table
        keys = list(dict.fromkeys(manifest_keys))
        n = 0
        with self._begin() as conn:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                rows = conn.execute(select(t.c.id, t.c.manifest_key).where(
                    t.c.key_hash.in_([key_hash(k) for k in part]), t.c.status == "delivered",
                    t.c.indexed_at.is_(None))).all()
                ids = [r.id for r in rows if r.manifest_key in set(part)]
                if ids:
                    n += conn.execute(update(t).where(t.c.id.in_(ids)).values(
                        indexed_at=_naive(now_utc()), index_version=str(index_version),
                        updated_at=_naive(now_utc()))).rowcount
        return n

    def drop(self) -> None:
        """Drop the table (tests)."""
        with self._begin() as conn:
            self.table.drop(conn, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()


def with_failure(r: Receipt, error: str, *, dead: bool) -> Receipt:
    return replace(r, status="dead" if dead else "failed", attempts=r.attempts + 1, last_error=error)
