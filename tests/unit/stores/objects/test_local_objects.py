"""LocalObjectStore: the shared conformance suite plus local specifics (crash safety, sidecars)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jisik.core.errors import ConfigError, Conflict
from jisik.core.hashing import sha256_bytes
from jisik.stores.objects import LocalObjectStore, open_objects
from jisik.stores.objects.s3 import S3ObjectStore
from object_store_conformance import ObjectStoreConformance


class TestLocalObjects(ObjectStoreConformance):
    @pytest.fixture
    def objects(self, tmp_path: Path) -> LocalObjectStore:
        return LocalObjectStore(tmp_path / "objects")


def test_killed_writer_leaves_no_partial_object(tmp_path: Path) -> None:
    """SIGKILL in the middle of a write: the key never appears; the temp file is hidden and swept."""
    root = tmp_path / "objects"
    script = textwrap.dedent(f"""
        import io, sys, time
        from pathlib import Path
        from jisik.stores.objects import LocalObjectStore

        class Slow(io.RawIOBase):
            sent = 0
            def readable(self): return True
            def readinto(self, b):
                if self.sent >= 1 << 20:
                    print("half", flush=True)
                    time.sleep(60)
                n = min(len(b), 1 << 16)
                b[:n] = b"x" * n
                self.sent += n
                return n

        LocalObjectStore(Path({str(root)!r})).put_stream("raw/s/big.csv", Slow())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"half"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    store = LocalObjectStore(root)
    assert not store.exists("raw/s/big.csv")
    assert list(store.list()) == []
    temps = [p for p in root.rglob("*") if p.is_file()]
    assert len(temps) == 1 and temps[0].name.startswith(".jisik-tmp-") and temps[0].stat().st_size >= 1 << 20
    assert store.cleanup_temp(older_than_s=3600) == 0  # a fresh temp may be a live writer's
    assert store.cleanup_temp(older_than_s=0) == 1
    assert not temps[0].exists()


def test_stale_sidecar_is_ignored_and_checksum_recomputed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("a/x.txt", b"first", metadata={"k": "v"})
    # a crash between the data rename and the sidecar rename: new data, old sidecar
    data = tmp_path / "a" / "x.txt"
    replacement = tmp_path / "a" / "replacement"
    replacement.write_bytes(b"second")
    os.replace(replacement, data)
    head = store.head("a/x.txt")
    assert head.sha256 == sha256_bytes(b"second")
    assert head.metadata == {}


def test_file_and_folder_with_the_same_name_conflict(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("a/b", b"1")
    with pytest.raises(Conflict):
        store.put_bytes("a/b/c", b"2")
    with pytest.raises(Conflict):
        store.put_bytes("a", b"3")
    assert store.get_bytes("a/b") == b"1"


def test_relative_key_and_uri(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    assert store.relative_key("", "raw/x.csv") == "raw/x.csv"
    assert store.relative_key(tmp_path.resolve().as_uri(), "raw/x.csv") == "raw/x.csv"
    assert store.relative_key("other-bucket", "raw/x.csv") is None
    assert store.relative_key("", "../x") is None
    assert store.uri("raw/x.csv") == (tmp_path.resolve() / "raw" / "x.csv").as_uri()


def test_reads_do_not_see_internal_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("x", b"1")
    (tmp_path / ".jisik-tmp-abandoned").write_bytes(b"partial")
    assert [o.key for o in store.list()] == ["x"]
    assert (tmp_path / ".jisik-meta" / "x.json").is_file()


def test_open_objects_local_forms(tmp_path: Path) -> None:
    for url in (str(tmp_path / "p"), (tmp_path / "u").as_uri()):
        store = open_objects(url)
        assert isinstance(store, LocalObjectStore)
        store.put_bytes("k", b"v")
    assert (tmp_path / "p" / "k").read_bytes() == (tmp_path / "u" / "k").read_bytes() == b"v"


def test_open_objects_s3_url() -> None:
    store = open_objects("s3://landing/jisik/raw-zone/?endpoint=http://127.0.0.1:9&region=ap-northeast-2"
                         "&multipart_mb=8&max_attempts=1")
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == ("landing", "jisik/raw-zone/", "http://127.0.0.1:9")
    assert store.uri("raw/a.csv") == "s3://landing/jisik/raw-zone/raw/a.csv"
    assert store.relative_key("landing", "jisik/raw-zone/raw/a.csv") == "raw/a.csv"
    assert store.relative_key("landing", "elsewhere/raw/a.csv") is None
    assert store.relative_key("other", "jisik/raw-zone/raw/a.csv") is None
    assert open_objects("s3://bucket").prefix == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["ftp://x/y", "s3://user:secret@bucket/p", "s3://b/p?colour=red",
                                 "s3://b/p?addressing=sideways", "s3://b/p?multipart_mb=lots", "file://host/x",
                                 "s3:///nobucket"])
def test_open_objects_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_objects(url)


def test_s3_without_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "JISIK_S3_ACCESS_KEY_ID", "JISIK_S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError):
        open_objects("s3://landing?endpoint=http://127.0.0.1:9").head("x")


def test_unreachable_s3_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.core.errors import Unavailable

    monkeypatch.setenv("JISIK_S3_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("JISIK_S3_SECRET_ACCESS_KEY", "s")
    store = open_objects("s3://landing?endpoint=http://127.0.0.1:9&max_attempts=1")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.head("x")
    with pytest.raises(Unavailable):
        store.put_bytes("x", b"1")
    assert time.monotonic() - started < 10
