"""Reusable conformance suite for :class:`jisik.stores.objects.ObjectStore` implementations.

Usage::

    from object_store_conformance import ObjectStoreConformance

    class TestMyObjects(ObjectStoreConformance):
        @pytest.fixture
        def objects(self, tmp_path):
            yield MyObjectStore(...)   # empty, private to the test

The suite uses only the Protocol and :mod:`jisik.core.errors`, so the local directory store and
the S3 store (against a real S3-compatible server) must pass it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from jisik.core.errors import InvalidInput, NotFound
from jisik.core.hashing import sha256_file
from jisik.stores.objects import ObjectStore

BAD_KEYS = ["", "/abs/x", "../up", "a/../b", "a/./b", "a//b", "a\\b", "a/", "tab\there", ".jisik-meta/x",
            "x/.jisik-tmp-1", "C:/win", "a/" + "가" * 67 + "/b"]


class FailingReader(io.RawIOBase):
    """A non-seekable stream that raises after ``fail_at`` bytes (a dropped connection, a full disk)."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self._data = data
        self._pos = 0
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._fail_at:
            raise OSError("simulated read failure")
        n = min(len(buffer), self._fail_at - self._pos, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class ObjectStoreConformance:
    @pytest.fixture
    def objects(self) -> ObjectStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_bytes_round_trip_with_checksum_and_metadata(self, objects: ObjectStore) -> None:
        data = "가격표\n사과,1000\n".encode()
        info = objects.put_bytes("raw/s/2026-01-31/r1/가격 표.csv", data, content_type="text/csv",
                                 metadata={"source": "erp", "Run-Id": "r1"})
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.size == len(data)
        head = objects.head("raw/s/2026-01-31/r1/가격 표.csv")
        assert (head.sha256, head.size) == (info.sha256, len(data))
        assert head.content_type is not None and head.content_type.startswith("text/csv")
        assert head.metadata["source"] == "erp" and head.metadata["run-id"] == "r1"
        assert head.modified.tzinfo is not None
        assert objects.get_bytes("raw/s/2026-01-31/r1/가격 표.csv") == data
        assert objects.exists("raw/s/2026-01-31/r1/가격 표.csv")

    def test_file_round_trip(self, objects: ObjectStore, tmp_path: Path) -> None:
        src = tmp_path / "in.bin"
        src.write_bytes(os.urandom(300_000))
        info = objects.put_file("a/b/in.bin", src)
        assert info.sha256 == sha256_file(src)
        assert objects.head("a/b/in.bin").content_type  # guessed or default, never empty
        dest = objects.get_file("a/b/in.bin", tmp_path / "out" / "copy.bin")
        assert dest.read_bytes() == src.read_bytes()

    def test_streams_in_and_out(self, objects: ObjectStore) -> None:
        data = os.urandom(3 * (1 << 20) + 17)
        info = objects.put_stream("big/blob", io.BufferedReader(FailingReader(data, len(data) + 1)))
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        seekable = io.BytesIO(b"xx" + data)
        seekable.seek(2)
        assert objects.put_stream("big/blob2", seekable).sha256 == info.sha256
        chunks = []
        with objects.open("big/blob") as f:
            while block := f.read(1 << 18):
                chunks.append(block)
        assert len(chunks) > 1 and b"".join(chunks) == data

    def test_overwrite_replaces(self, objects: ObjectStore) -> None:
        objects.put_bytes("k/v.txt", b"one")
        info = objects.put_bytes("k/v.txt", b"two!")
        assert objects.get_bytes("k/v.txt") == b"two!"
        assert objects.head("k/v.txt").sha256 == info.sha256 == hashlib.sha256(b"two!").hexdigest()

    def test_missing_objects(self, objects: ObjectStore, tmp_path: Path) -> None:
        assert not objects.exists("no/such")
        for call in (objects.head, objects.get_bytes, objects.open):
            with pytest.raises(NotFound):
                call("no/such")
        with pytest.raises(NotFound):
            objects.get_file("no/such", tmp_path / "dest")
        assert not (tmp_path / "dest").exists()
        objects.delete("no/such")  # no-op

    def test_failed_write_leaves_nothing_visible(self, objects: ObjectStore) -> None:
        data = os.urandom(2 * (1 << 20))
        with pytest.raises(OSError):
            objects.put_stream("fail/new.bin", FailingReader(data, 1 << 20))
        assert not objects.exists("fail/new.bin")
        assert list(objects.list("fail/")) == []
        objects.put_bytes("fail/old.bin", b"old")
        with pytest.raises(OSError):
            objects.put_stream("fail/old.bin", FailingReader(data, 1 << 20))
        assert objects.get_bytes("fail/old.bin") == b"old"
        assert [o.key for o in objects.list("fail/")] == ["fail/old.bin"]

    def test_list_by_string_prefix(self, objects: ObjectStore) -> None:
        keys = ["raw/b/2.csv", "raw/a-x/1.csv", "raw/a/1.csv", "raw/a/10.csv", "raw/a/2.csv", "raw/한글/1.csv",
                "rawer/x", "other/y"]
        for k in keys:
            objects.put_bytes(k, k.encode())
        raw = [k for k in keys if k.startswith("raw/")]
        listed = [o.key for o in objects.list("raw/")]
        assert sorted(listed) == sorted(raw)  # each once; the order is the server's
        assert sorted(o.key for o in objects.list("raw/a")) == ["raw/a-x/1.csv", "raw/a/1.csv", "raw/a/10.csv",
                                                                "raw/a/2.csv"]
        assert sorted(o.key for o in objects.list("raw")) == sorted([*raw, "rawer/x"])
        assert sorted(o.key for o in objects.list()) == sorted(keys)
        assert list(objects.list("nothing/")) == []
        sizes = {o.key: o.size for o in objects.list("raw/a/")}
        assert sizes["raw/a/10.csv"] == len(b"raw/a/10.csv")

    def test_delete(self, objects: ObjectStore) -> None:
        objects.put_bytes("d/x/1", b"1")
        objects.put_bytes("d/x/2", b"2")
        objects.delete("d/x/1")
        assert not objects.exists("d/x/1")
        assert [o.key for o in objects.list("d/")] == ["d/x/2"]
        objects.delete("d/x/2")
        assert list(objects.list("d/")) == []
        objects.put_bytes("d/x", b"now a file")  # the former 'folder' name is free again
        assert objects.get_bytes("d/x") == b"now a file"

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_rejected(self, objects: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidInput):
            objects.put_bytes(key, b"x")
        with pytest.raises(InvalidInput):
            objects.head(key)
        with pytest.raises(InvalidInput):
            objects.delete(key)

    def test_bad_metadata_is_rejected(self, objects: ObjectStore) -> None:
        with pytest.raises(InvalidInput):
            objects.put_bytes("m/x", b"x", metadata={"이름": "v"})
        with pytest.raises(InvalidInput):
            objects.put_bytes("m/x", b"x", metadata={"name": "값"})
        assert not objects.exists("m/x")

    def test_uri_and_event_address(self, objects: ObjectStore) -> None:
        objects.put_bytes("u/한 글.txt", b"x")
        uri = objects.uri("u/한 글.txt")
        assert uri.startswith(("file:///", "s3://"))
        assert "u/" in uri
        bucket, full = objects.locate("u/한 글.txt")
        assert full.endswith("u/한 글.txt")
        assert objects.relative_key(bucket, full) == "u/한 글.txt"
        assert objects.relative_key(bucket + "-other", full) is None
