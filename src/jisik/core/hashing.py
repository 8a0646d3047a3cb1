"""Stable content hashes (chunk ids, embedding-cache keys, object checksums)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_hash(*parts: str, length: int = 32) -> str:
    """A stable hex digest of text parts (separated so ("ab","c") != ("a","bc"))."""
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:length]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
