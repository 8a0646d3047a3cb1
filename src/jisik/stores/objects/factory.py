"""Open an object store from a URL (the settings field would be ``objects_url``).

URL forms::

    /srv/jisik/objects                      a local directory (LocalObjectStore)
    file:///srv/jisik/objects               the same, as a URL
    s3://bucket                             an S3 bucket (AWS; region and credentials from env)
    s3://bucket/some/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1

Query parameters of ``s3://``: ``endpoint`` (an S3-compatible server; path-style addressing is
then the default), ``region``, ``addressing`` (``path`` | ``virtual`` | ``auto``),
``multipart_mb`` (multipart threshold in MiB), ``max_attempts``. Credentials are never read
from the URL: see :mod:`jisik.stores.objects.s3`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from jisik.core.errors import ConfigError
from jisik.stores.objects.base import ObjectStore

_S3_PARAMS = {"endpoint", "region", "addressing", "multipart_mb", "max_attempts"}


def open_objects(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        from jisik.stores.objects.local import LocalObjectStore

        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL에는 호스트를 쓸 수 없습니다: {url}",
                              f"A file URL must be file:///absolute/path, got {url!r}")
        path = unquote(parsed.path) if parsed.scheme == "file" else url
        if not path:
            raise ConfigError("객체 저장소 경로가 비어 있습니다.", "Empty object store path")
        return LocalObjectStore(Path(path))
    if parsed.scheme == "s3":
        return _open_s3(url)
    raise ConfigError(
        f"지원하지 않는 객체 저장소 URL입니다: {parsed.scheme}://",
        f"Unsupported object store URL scheme '{parsed.scheme}'; use file:///dir, a path, or s3://bucket/prefix",
    )


def _open_s3(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.username or parsed.password:
        raise ConfigError("URL에 자격 증명을 넣지 마세요.", "Do not put credentials in the object store URL",
                          hint="use JISIK_S3_ACCESS_KEY_ID / JISIK_S3_SECRET_ACCESS_KEY")
    query = {k: v[-1] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
    unknown = set(query) - _S3_PARAMS
    if unknown:
        raise ConfigError(f"알 수 없는 S3 URL 옵션: {', '.join(sorted(unknown))}",
                          f"Unknown s3:// URL options: {', '.join(sorted(unknown))}",
                          hint=f"known: {', '.join(sorted(_S3_PARAMS))}")
    try:
        multipart = int(float(query.get("multipart_mb", "64")) * (1 << 20))
        attempts = int(query.get("max_attempts", "3"))
    except ValueError as e:
        raise ConfigError("S3 URL 옵션 값이 숫자가 아닙니다.", f"Non-numeric s3:// URL option: {e}") from e
    addressing = query.get("addressing")
    if addressing not in (None, "path", "virtual", "auto"):
        raise ConfigError(f"addressing 값이 올바르지 않습니다: {addressing}",
                          f"addressing must be path, virtual or auto, got {addressing!r}")
    from jisik.stores.objects.s3 import S3ObjectStore

    return S3ObjectStore(
        parsed.hostname or "", unquote(parsed.path),
        endpoint_url=query.get("endpoint") or None, region=query.get("region") or None,
        addressing_style=addressing, multipart_threshold=multipart, max_attempts=attempts,
    )
