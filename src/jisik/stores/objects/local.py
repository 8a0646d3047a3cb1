"""The embedded object store: a directory tree, one file per key.

Layout under ``root``::

    raw/erp/2026-01-31/run-1/products.csv         the object (key = relative path)
    .jisik-meta/raw/erp/.../products.csv.json      sha256, content type, user metadata
    raw/erp/2026-01-31/run-1/.jisik-tmp-<hex>      a write in progress (never listed)

A write goes to a temp file in the target's directory, is fsynced and renamed over the target
(``os.replace`` is atomic on POSIX), then the directory is fsynced: a crash leaves the old
object or the new one, plus at most a stray temp file (:meth:`LocalObjectStore.cleanup_temp`).
The metadata sidecar is written after the rename and records the data file's inode, size and
mtime; a sidecar that does not match its file (crash between the two renames) is ignored and
the sha256 is recomputed from the data, so the checksum reported is always the file's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import mimetypes
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from jisik.core.errors import Conflict, InvalidInput, NotFound
from jisik.core.hashing import sha256_file
from jisik.stores.objects.base import RESERVED_PREFIX, ObjectInfo, clean_metadata, validate_key, validate_prefix

CHUNK = 1 << 20
META_DIR = RESERVED_PREFIX + "-meta"
TMP_PREFIX = RESERVED_PREFIX + "-tmp-"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(target: Path, fill: Callable[[BinaryIO], None], *, fsync: bool = True) -> os.stat_result:
    """Write ``target`` through a temp file in its directory; returns the new file's stat."""
    tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    for attempt in range(3):  # a concurrent delete may prune the (empty) directory in between
        try:
            out = tmp.open("xb")
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out as f:
            fill(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(target.parent)
    return st


class LocalObjectStore:
    """:class:`~jisik.stores.objects.base.ObjectStore` on a local directory."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # paths -----------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / f"{key}.json"

    def _data_path(self, key: str) -> Path:
        p = self.path(key)
        if not p.is_file():
            raise NotFound(f"객체가 없습니다: {key}", f"No such object: {key}", details={"key": key})
        return p

    def _prepare_dir(self, key: str, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise Conflict(
                f"키의 상위 경로가 이미 객체로 쓰이고 있습니다: {key}",
                f"A parent of key {key!r} is an existing object (a local store cannot hold both)",
            ) from e
        if (directory / Path(key).name).is_dir():
            raise Conflict(f"키가 이미 다른 객체들의 폴더입니다: {key}", f"Key {key!r} is a folder of other objects")

    # writes ----------------------------------------------------------------------------------
    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        target = self.path(key)
        meta = clean_metadata(metadata)
        ctype = content_type or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        digest = hashlib.sha256()

        def fill(f: BinaryIO) -> None:
            while block := stream.read(CHUNK):
                digest.update(block)
                f.write(block)

        self._prepare_dir(key, target.parent)
        st = write_atomic(target, fill, fsync=self.fsync)
        sha = digest.hexdigest()
        sidecar = {"sha256": sha, "size": st.st_size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns,
                   "content_type": ctype, "metadata": meta}
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(meta_path, _writer(json.dumps(sidecar).encode()), fsync=self.fsync)
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), sha, sha, ctype, meta)

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        with Path(path).open("rb") as f:
            return self.put_stream(key, f, content_type=content_type, metadata=metadata)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data), content_type=content_type, metadata=metadata)

    def delete(self, key: str) -> None:
        p = self.path(key)
        for f in (p, self._meta_path(key)):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
            self._prune(f.parent)

    def _prune(self, directory: Path) -> None:
        """Remove empty directories up to the root (so 'a' can become a key after 'a/b' is gone)."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # reads -----------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        p = self._data_path(key)
        st = p.stat()
        side = self._sidecar(key, st)
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        if side is None:
            sha = sha256_file(p)
            ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            return ObjectInfo(key, st.st_size, modified, sha, sha, ctype, {})
        return ObjectInfo(key, st.st_size, modified, side["sha256"], side["sha256"], side["content_type"],
                          dict(side["metadata"]))

    def _sidecar(self, key: str, st: os.stat_result) -> dict[str, Any] | None:
        try:
            side = json.loads(self._meta_path(key).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(side, dict):
            return None
        same = (side.get("ino"), side.get("size"), side.get("mtime_ns")) == (st.st_ino, st.st_size, st.st_mtime_ns)
        return side if same else None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def get_bytes(self, key: str) -> bytes:
        return self._data_path(key).read_bytes()

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            return self._data_path(key).open("rb")
        except FileNotFoundError as e:  # deleted between the check and the open
            raise NotFound(f"객체가 없습니다: {key}", f"No such object: {key}") from e

    def get_file(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open(key) as src:
            write_atomic(dest, lambda f: _copy(src, f), fsync=False)
        return dest

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        found: list[tuple[bytes, str, os.stat_result]] = []
        if base.is_dir():
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if name.startswith(RESERVED_PREFIX):
                        continue
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            found.append((key.encode(), key, os.stat(os.path.join(dirpath, name))))
        found.sort(key=lambda t: t[0])
        for _, key, st in found:
            yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    # addressing ------------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def locate(self, key: str) -> tuple[str, str]:
        return "", validate_key(key)

    def relative_key(self, bucket: str, key: str) -> str | None:
        if bucket not in ("", self.root.as_uri()):
            return None
        try:
            return validate_key(key)
        except InvalidInput:
            return None

    def cleanup_temp(self, older_than_s: float = 3600.0) -> int:
        """Delete temp files left by crashed writers (older than ``older_than_s``); returns how many."""
        cutoff = time.time() - older_than_s
        removed = 0
        for dirpath, _dirs, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    p = Path(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):
                        if p.stat().st_mtime < cutoff:
                            p.unlink()
                            removed += 1
        return removed

    def close(self) -> None:
        return None


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    while block := src.read(CHUNK):
        dst.write(block)


def _writer(body: bytes) -> Callable[[BinaryIO], None]:
    def fill(f: BinaryIO) -> None:
        f.write(body)

    return fill
