"""S3ObjectStore against a real S3-compatible server (SeaweedFS ``weed mini``)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest

from jisik.core.errors import ConfigError, NotFound
from jisik.stores.objects import open_objects
from jisik.stores.objects.s3 import S3ObjectStore
from jisik.stores.objects.seaweed import SeaweedServer
from object_store_conformance import ObjectStoreConformance
from objects_env import ACCESS_KEY, BUCKET, SECRET_KEY, s3_store

pytestmark = pytest.mark.integration
MiB = 1 << 20


class TestS3Objects(ObjectStoreConformance):
    @pytest.fixture
    def objects(self, s3_objects: S3ObjectStore) -> S3ObjectStore:
        return s3_objects


class FailOnSecondPass(io.RawIOBase):
    """Seekable: the hash pass reads everything; a later pass (the upload) fails after ``fail_at`` bytes."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self._data = data
        self._pos = 0
        self._fail_at = fail_at
        self.first_pass_done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: 0, 1: self._pos, 2: len(self._data)}[whence] + offset
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.first_pass_done and self._pos >= self._fail_at:
            raise OSError("simulated read failure")
        end = len(self._data) if not self.first_pass_done else min(len(self._data), self._fail_at)
        n = max(0, min(len(buffer), end - self._pos))
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        if self._pos >= len(self._data):
            self.first_pass_done = True
        return n


def test_interrupted_multipart_upload_is_aborted_and_invisible(seaweed: SeaweedServer) -> None:
    store = s3_store(seaweed, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(12 * MiB)
    reader = FailOnSecondPass(data, fail_at=7 * MiB)  # first 5 MiB part is uploaded, then the stream breaks
    with pytest.raises(OSError):
        store.put_stream("raw/big.bin", reader)
    assert reader.first_pass_done
    assert not store.exists("raw/big.bin")
    assert list(store.list()) == []
    uploads = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix).get("Uploads", [])
    assert uploads == []
    # the same upload that does not break: multipart, complete, checksum in the metadata
    info = store.put_stream("raw/big.bin", io.BytesIO(data))
    head = store.client.head_object(Bucket=BUCKET, Key=store.prefix + "raw/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-sha256"] == hashlib.sha256(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    store.delete("raw/big.bin")


def test_large_file_multipart_and_download(seaweed: SeaweedServer, tmp_path: Path) -> None:
    store = s3_store(seaweed, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    src = tmp_path / "big.parquet"
    src.write_bytes(os.urandom(11 * MiB))
    info = store.put_file("raw/s/big.parquet", src)
    assert info.size == src.stat().st_size and info.etag and info.etag.endswith("-3")
    out = store.get_file("raw/s/big.parquet", tmp_path / "down" / "big.parquet")
    assert out.read_bytes() == src.read_bytes()
    store.delete("raw/s/big.parquet")


def test_prefixes_isolate_stores(seaweed: SeaweedServer) -> None:
    a, b = s3_store(seaweed), s3_store(seaweed)
    a.put_bytes("raw/x", b"a")
    assert not b.exists("raw/x")
    assert [o.key for o in a.list()] == ["raw/x"]
    assert a.relative_key(BUCKET, a.prefix + "raw/x") == "raw/x"
    assert b.relative_key(BUCKET, a.prefix + "raw/x") is None
    a.delete("raw/x")


def test_factory_url_and_env_credentials(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JISIK_S3_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("JISIK_S3_SECRET_ACCESS_KEY", SECRET_KEY)
    prefix = f"f-{uuid.uuid4().hex[:8]}"
    store = open_objects(f"s3://{BUCKET}/{prefix}?endpoint={seaweed.endpoint}&region=us-east-1")
    store.put_bytes("k.txt", "안녕".encode())
    assert store.get_bytes("k.txt") == "안녕".encode()
    store.delete("k.txt")


def test_wrong_credentials_and_missing_bucket(seaweed: SeaweedServer) -> None:
    bad = S3ObjectStore(BUCKET, endpoint_url=seaweed.endpoint, access_key_id=ACCESS_KEY,
                        secret_access_key="wrong-secret", max_attempts=1)
    with pytest.raises(ConfigError):
        bad.put_bytes("x", b"1")
    nobucket = S3ObjectStore(f"nobucket-{uuid.uuid4().hex[:8]}", endpoint_url=seaweed.endpoint,
                             access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    with pytest.raises(NotFound) as err:
        nobucket.get_bytes("x")
    assert "bucket" in str(err.value).lower()
