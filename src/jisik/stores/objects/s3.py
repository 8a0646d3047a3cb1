"""The server object store: an S3 bucket (AWS S3 or an S3-compatible server) through boto3.

Store keys live under an optional ``prefix`` in the bucket (``landing/`` + ``raw/...``).
Objects become visible only when complete: small files go up in one PUT, large ones in a
multipart upload (``TransferConfig``) that boto3 completes at the end or aborts on failure,
so a partial upload is never listed or readable. The sha256 of the bytes is computed before
the upload and stored as user metadata ``x-amz-meta-sha256``.

Credentials, in order: the constructor arguments; ``JISIK_S3_ACCESS_KEY_ID`` /
``JISIK_S3_SECRET_ACCESS_KEY`` (/ ``JISIK_S3_SESSION_TOKEN``); boto3's default chain
(``AWS_ACCESS_KEY_ID``..., ``~/.aws``, instance roles). Secrets never appear in URLs or logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mimetypes
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from jisik.core.errors import ConfigError, JisikError, NotFound, Unavailable
from jisik.core.hashing import sha256_file
from jisik.stores.objects.base import ObjectInfo, clean_metadata, validate_key, validate_prefix

CHUNK = 1 << 20
SPOOL_MAX = 8 << 20  # non-seekable streams are spooled (memory up to this, then a temp file)
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}


_SESSION: boto3.session.Session | None = None
_SESSION_LOCK = threading.Lock()


class _BodyReader(io.RawIOBase):
    """Raw adapter so a botocore StreamingBody can sit under an ``io.BufferedReader``."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ObjectStore:
    """:class:`~jisik.stores.objects.base.ObjectStore` on an S3 bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str | None = None,
        multipart_threshold: int = 64 << 20,
        multipart_chunksize: int = 16 << 20,
        max_attempts: int = 3,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        page_size: int = 1000,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 버킷 이름이 없습니다.", "S3 bucket name is empty", hint="s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            validate_prefix(self.prefix)
        self.endpoint_url = endpoint_url
        self.page_size = page_size
        env = os.environ
        key_id = access_key_id or env.get("JISIK_S3_ACCESS_KEY_ID")
        secret = secret_access_key or env.get("JISIK_S3_SECRET_ACCESS_KEY")
        token = session_token or env.get("JISIK_S3_SESSION_TOKEN")
        config = Config(
            region_name=region or ("us-east-1" if endpoint_url else None),
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            # S3-compatible servers differ in support for the newer default CRC checksums
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        if key_id and secret:
            # one shared session: its loader caches the service model (a client costs ms, not 100 ms)
            with _SESSION_LOCK:
                global _SESSION
                if _SESSION is None:
                    _SESSION = boto3.session.Session()
                self._client = _SESSION.client("s3", endpoint_url=endpoint_url, config=config,
                                               aws_access_key_id=key_id, aws_secret_access_key=secret,
                                               aws_session_token=token)
        else:  # boto3's default chain, resolved by a session of our own (it caches what it finds)
            self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=multipart_chunksize)

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint_url!r})"

    @property
    def client(self) -> Any:
        """The boto3 client (for operations outside the Protocol)."""
        return self._client

    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _fail(self, e: Exception, key: str | None = None) -> NoReturn:
        where = f"s3://{self.bucket}/{self.prefix}{key or ''}"
        if isinstance(e, NoCredentialsError):
            raise ConfigError("S3 자격 증명이 없습니다.", "No S3 credentials found",
                              hint="set JISIK_S3_ACCESS_KEY_ID and JISIK_S3_SECRET_ACCESS_KEY") from e
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise NotFound(f"S3 버킷이 없습니다: {self.bucket}", f"No such S3 bucket: {self.bucket}",
                               hint="create the bucket first (S3ObjectStore.ensure_bucket())") from e
            if code in _MISSING:
                raise NotFound(f"객체가 없습니다: {key}", f"No such object: {where}", details={"key": key}) from e
            if code in _DENIED:
                raise ConfigError(f"S3 접근이 거부되었습니다 ({code}).", f"S3 access denied ({code}) for {where}",
                                  hint="check the S3 credentials and bucket policy") from e
            raise Unavailable(f"S3 요청이 실패했습니다 ({code}).", f"S3 request failed ({code}) for {where}") from e
        raise Unavailable("S3 서버에 연결할 수 없습니다.", f"S3 server unreachable for {where}: {e}",
                          hint=f"is the S3 endpoint {self.endpoint_url or 'AWS'} up?") from e

    @contextlib.contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except JisikError:
            raise
        except (ClientError, BotoCoreError) as e:
            self._fail(e, key)
        except Exception as e:  # boto3's S3UploadFailedError wraps the ClientError in a message
            if type(e).__module__.startswith(("boto3", "s3transfer")):
                self._fail(e, key)
            raise

    # writes ----------------------------------------------------------------------------------
    def _extra(self, key: str, sha: str, content_type: str | None, metadata: Mapping[str, str] | None
               ) -> dict[str, Any]:
        meta = clean_metadata(metadata)
        meta["sha256"] = sha
        ctype = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        return {"Metadata": meta, "ContentType": ctype}

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        full = self._full(key)
        sha = sha256_file(Path(path))
        with self._errors(key):
            self._client.upload_file(str(path), self.bucket, full, Config=self._transfer,
                                     ExtraArgs=self._extra(key, sha, content_type, metadata))
        return self.head(key)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        full = self._full(key)
        extra = self._extra(key, hashlib.sha256(data).hexdigest(), content_type, metadata)
        with self._errors(key):
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data, **extra)
        return self.head(key)

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        full = self._full(key)
        seekable = getattr(stream, "seekable", lambda: False)()
        with contextlib.ExitStack() as stack:
            digest = hashlib.sha256()
            if seekable:  # hash pass, then upload from the same position
                start = stream.tell()
                while block := stream.read(CHUNK):
                    digest.update(block)
                stream.seek(start)
                source: BinaryIO = stream
            else:
                spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX))
                while block := stream.read(CHUNK):
                    digest.update(block)
                    spool.write(block)
                spool.seek(0)
                source = spool  # type: ignore[assignment]
            extra = self._extra(key, digest.hexdigest(), content_type, metadata)
            with self._errors(key):
                self._client.upload_fileobj(source, self.bucket, full, Config=self._transfer, ExtraArgs=extra)
        return self.head(key)

    def delete(self, key: str) -> None:
        full = self._full(key)
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (needs the permission to do so)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) not in _MISSING | {"NoSuchBucket"}:
                self._fail(e)
        except BotoCoreError as e:
            self._fail(e)
        with self._errors():
            self._client.create_bucket(Bucket=self.bucket)

    # reads -----------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        with self._errors(key):
            r = self._client.head_object(Bucket=self.bucket, Key=full)
        meta = {k.lower(): v for k, v in (r.get("Metadata") or {}).items()}
        return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"].astimezone(UTC), meta.get("sha256"),
                          str(r.get("ETag", "")).strip('"') or None, r.get("ContentType"), meta)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        full = self._full(key)
        with self._errors(key):
            body = self._client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return io.BufferedReader(_BodyReader(body), CHUNK)

    def get_file(self, key: str, dest: Path) -> Path:
        """Download (s3transfer writes a temp file beside ``dest`` and renames it when complete)."""
        full = self._full(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(key):
            self._client.download_file(self.bucket, full, str(dest), Config=self._transfer)
        return dest

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix,
                                   PaginationConfig={"PageSize": self.page_size})
        with self._errors():
            for page in pages:
                for obj in page.get("Contents", []):
                    modified = obj["LastModified"].astimezone(UTC)
                    etag = str(obj.get("ETag", "")).strip('"') or None
                    yield ObjectInfo(obj["Key"][len(self.prefix):], int(obj["Size"]), modified, None, etag)

    # addressing ------------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def locate(self, key: str) -> tuple[str, str]:
        return self.bucket, self._full(key)

    def relative_key(self, bucket: str, key: str) -> str | None:
        if bucket != self.bucket or not key.startswith(self.prefix):
            return None
        rel = key[len(self.prefix):]
        try:
            return validate_key(rel)
        except JisikError:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
