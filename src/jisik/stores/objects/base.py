"""The object store Protocol: where landed files live (a local directory or an S3 bucket).

Keys are ``/``-separated relative paths (``raw/erp/2026-01-31/run-1/products.csv``). Every
implementation follows the same rules, pinned by ``tests/object_store_conformance.py``:

* **Atomic writes.** A reader sees the old object, or the complete new one, never a partial
  file: the local store writes a temp file in the target directory, fsyncs and renames it;
  S3 makes an object visible only when its PUT or multipart upload completes (a failed
  multipart upload is aborted).
* **Checksums.** Every ``put_*`` computes the sha256 of the bytes written and stores it with
  the object (S3: user metadata ``x-amz-meta-sha256``); :meth:`ObjectStore.head` reports it.
* **Listing** yields every object under a *string* prefix (S3 semantics, not only directories)
  exactly once, fetched one page at a time. The order is the server's: AWS S3 and the local
  store use UTF-8 byte order, SeaweedFS walks its directory tree (``a/1`` before ``a-x/1``);
  callers that need an order sort the keys themselves.
* Missing objects raise :class:`~jisik.core.errors.NotFound`; bad keys raise
  :class:`~jisik.core.errors.InvalidInput`; an unreachable server raises
  :class:`~jisik.core.errors.Unavailable`; ``delete`` of a missing key is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from jisik.core.errors import InvalidInput

MAX_KEY_BYTES = 1024  # the S3 limit
MAX_SEGMENT_BYTES = 200  # file systems allow 255 per name; the local store adds suffixes to some
RESERVED_PREFIX = ".jisik"  # path segments starting with this are the local store's own files
_META_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str  # store-relative key
    size: int
    modified: datetime  # timezone-aware (UTC)
    sha256: str | None = None  # None in listings of stores that keep it in per-object metadata
    etag: str | None = None  # S3 ETag without quotes; the local store reports the sha256
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata (lower-case names)


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable-by-convention objects."""

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Upload a local file atomically; returns the stored object's info (with its sha256)."""
        ...

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo: ...

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload from a readable binary stream; if reading fails nothing becomes visible."""
        ...

    def get_file(self, key: str, dest: Path) -> Path:
        """Download to ``dest`` (written to a temp file beside it, then renamed)."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Stream a (large) object: ``with store.open(key) as f: f.read(1 << 20)``."""
        ...

    def head(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str:
        """A stable address for citations: ``file:///...`` or ``s3://bucket/prefix/key``."""
        ...

    def locate(self, key: str) -> tuple[str, str]:
        """(bucket, full key) as an S3 event notification names the object (local: ``("", key)``)."""
        ...

    def relative_key(self, bucket: str, key: str) -> str | None:
        """The inverse of :meth:`locate`: the store key, or None if (bucket, key) is not in this store."""
        ...

    def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Reject keys that could escape a root directory or mean different things on S3 and disk."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "empty key"
    elif len(key.encode("utf-8")) > MAX_KEY_BYTES:
        problem = f"longer than {MAX_KEY_BYTES} bytes"
    elif "\\" in key:
        problem = "backslash"
    elif "\x00" in key or any(ord(c) < 0x20 for c in key):
        problem = "control character"
    elif key.startswith("/") or (len(key) > 1 and key[1] == ":" and key[0].isalpha()):
        problem = "absolute path"
    else:
        for part in key.split("/"):
            if part in ("", ".", ".."):
                problem = "empty, '.' or '..' path segment"
                break
            if part.startswith(RESERVED_PREFIX):
                problem = f"segment starting with '{RESERVED_PREFIX}' (reserved)"
                break
            if len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
                problem = f"a path segment longer than {MAX_SEGMENT_BYTES} bytes"
                break
    if problem:
        raise InvalidInput(
            f"객체 키가 올바르지 않습니다 ({problem}): {key!r}",
            f"Invalid object key ({problem}): {key!r}",
            hint="use a relative path like 'raw/source/2026-01-31/run/name.csv'",
        )
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: '' or the start of a valid key (may end with '/')."""
    if prefix:
        validate_key(prefix.rstrip("/") or "/")
    return prefix


def clean_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata with portable names (lower-case ``[a-z0-9_-]``) and ASCII values."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        low = name.lower()
        if not low or not set(low) <= _META_KEY_CHARS or not str(value).isascii():
            raise InvalidInput(
                f"객체 메타데이터 이름/값이 올바르지 않습니다: {name!r}",
                f"Object metadata must have names [a-z0-9_-] and ASCII values: {name!r}",
            )
        out[low] = str(value)
    return out
