"""Keyed hashing of personal identifiers (user ids in chat logs, masked columns of extracted data).

``keyed_hash(salt, text)`` is the first 16 hex digits of HMAC-SHA256(salt, text): equal values stay
equal (joins, per-user counts still work), but a value cannot be recovered or brute-forced
without the salt. This is exactly the ``hash`` masking of the SQL source
(:class:`jisik.pipeline.sources.tabular.Masker`), so both can share this helper.

``install_secret`` returns ``$env_name`` when set, otherwise a random per-installation secret kept
in a file (mode 0600, created once, race-free with ``O_EXCL``). Several machines writing into one
database must share the secret: set the environment variable on all of them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

PSEUDONYM_PREFIX = "u_"
_PSEUDONYM = re.compile(r"u_[0-9a-f]{16}")


def keyed_hash(salt: bytes, text: str, *, length: int = 16) -> str:
    return hmac.new(salt, text.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def install_secret(path: Path, env_name: str | None = None) -> bytes:
    """The secret from ``$env_name`` if set, else from ``path`` (created with a random value)."""
    if env_name and (value := os.environ.get(env_name)):
        return value.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes().strip()


class Pseudonymizer:
    """User id -> ``u_<16 hex>``; idempotent (a pseudonym maps to itself) and ``""`` stays ``""``.

    Idempotence lets callers pass either the raw id or the pseudonym an admin listing showed, and
    lets spooled records (already pseudonymised) be replayed through the same code path.
    """

    def __init__(self, salt: bytes) -> None:
        if not salt:
            raise ValueError("empty pseudonymisation salt")
        self._salt = salt

    def __call__(self, user_id: str) -> str:
        if not user_id or is_pseudonym(user_id):
            return user_id
        return PSEUDONYM_PREFIX + keyed_hash(self._salt, user_id)


def is_pseudonym(value: str) -> bool:
    return _PSEUDONYM.fullmatch(value) is not None


def default_pseudonymizer(home: Path, env_name: str = "JISIK_PSEUDONYM_SALT") -> Pseudonymizer:
    """The installation's pseudonymizer: ``$JISIK_PSEUDONYM_SALT`` or ``{home}/secrets/pseudonym.salt``."""
    return Pseudonymizer(install_secret(home / "secrets" / "pseudonym.salt", env_name))
