"""Shared constants and helpers of the objects integration tests (imported by conftest and tests)."""

from __future__ import annotations

import uuid
from typing import Any

from jisik.stores.objects.s3 import S3ObjectStore
from jisik.stores.objects.seaweed import SeaweedServer

ACCESS_KEY = "jisik-test"
SECRET_KEY = "jisik-test-secret"
BUCKET = "jisik-landing"


def s3_store(server: SeaweedServer, bucket: str = BUCKET, prefix: str | None = None, **kwargs: Any) -> S3ObjectStore:
    """A store on the test server under a fresh prefix (unless given), its bucket created."""
    store = S3ObjectStore(bucket, prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}",
                          endpoint_url=server.endpoint, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                          **kwargs)
    store.ensure_bucket()
    return store
