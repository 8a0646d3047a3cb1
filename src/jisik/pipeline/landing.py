"""Landing: copy a source's staging file into the object store, with its manifest beside it.

``land`` writes, in this order:

1. the data object ``raw/{source}/{yyyy-mm-dd}/{run_id}/{name}.{fmt}`` (atomic: see the store);
2. its manifest ``{key}.meta.json`` — **the manifest's presence means "landed"**: watchers and
   transfer react to manifests only, so a data object without a manifest (a landing that died
   between 1 and 2) is invisible downstream and removed later by :func:`sweep_incomplete`;
3. a dedup marker ``raw/{source}/_index/{sha256}`` holding the manifest key.

Duplicates: before uploading, ``land`` looks for the marker of the file's sha256 *for that
source* (one HEAD/GET, the same on disk and S3) and, if the manifest it names still exists,
returns that manifest with ``landed=False``. A listing of the source's manifests would cost a
full scan per landing and grow forever; the marker is O(1). It is written last, so it never
points at an incomplete landing; a marker whose manifest was deleted (retention) is ignored.
Two landings of identical bytes racing each other may both land: harmless, as transfer and
the knowledge store are idempotent per manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jisik.core.errors import Conflict, CorruptData, InvalidInput, NotFound
from jisik.core.hashing import sha256_file
from jisik.core.logging import get_logger
from jisik.pipeline.manifest import MANIFEST_SUFFIX, Extracted, Manifest, object_key
from jisik.stores.objects.base import ObjectStore

log = get_logger(__name__)
INDEX_DIR = "_index"
RUNS_DIR = "_runs"  # raw/{source}/_runs/{run_id}.json: every object of a run, landed or reused
_SEGMENT = re.compile(r"^[A-Za-z0-9가-힣][A-Za-z0-9가-힣._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class LandResult:
    manifest: Manifest
    landed: bool  # False: identical bytes were already landed for this source (manifest = the earlier one)


def _segment(value: str, what: str) -> str:
    # 150 bytes leaves room for ".{fmt}.meta.json" within the object store's segment limit
    if not _SEGMENT.match(value) or value in (INDEX_DIR, RUNS_DIR) or len(value.encode("utf-8")) > 150:
        raise InvalidInput(
            f"{what} 값은 경로에 쓸 수 있는 이름이어야 합니다: {value!r}",
            f"{what} must be a path-safe name (letters, digits, '.', '_', '-'): {value!r}",
        )
    return value


def index_key(source: str, sha256: str) -> str:
    return f"raw/{source}/{INDEX_DIR}/{sha256}"


def is_manifest_key(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX)


def manifest_key_for(key: str) -> str:
    """The manifest key of a data key (a manifest key is returned unchanged)."""
    return key if is_manifest_key(key) else key + MANIFEST_SUFFIX


def read_manifest(store: ObjectStore, key: str) -> Manifest:
    """Read ``{key}.meta.json`` (``key`` may be the data key or the manifest key)."""
    mkey = manifest_key_for(key)
    raw = store.get_bytes(mkey)
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as e:
        raise CorruptData(
            f"매니페스트를 읽을 수 없습니다: {mkey}", f"Invalid manifest {mkey}: {e.error_count()} error(s)",
            details={"key": mkey, "errors": [err["msg"] for err in e.errors()[:5]]},
        ) from e
    if manifest.manifest_key != mkey:
        raise CorruptData(f"매니페스트의 키가 위치와 다릅니다: {mkey}",
                          f"Manifest at {mkey} describes another object ({manifest.key})")
    return manifest


def _existing(store: ObjectStore, source: str, sha256: str) -> Manifest | None:
    try:
        mkey = store.get_bytes(index_key(source, sha256)).decode("utf-8").strip()
        manifest = read_manifest(store, mkey)
    except (NotFound, CorruptData, InvalidInput, UnicodeDecodeError):
        return None
    return manifest if manifest.sha256 == sha256 else None


def land(store: ObjectStore, extracted: Extracted, run_id: str, extracted_at: datetime) -> LandResult:
    """Land one staging file; idempotent for identical bytes of the same source."""
    _segment(extracted.source, "source")
    _segment(run_id, "run_id")
    _segment(extracted.name, "name")
    _segment(extracted.fmt, "fmt")
    if extracted_at.tzinfo is None:
        raise InvalidInput("extracted_at에 시간대가 필요합니다.", "extracted_at must be timezone-aware")
    path = extracted.path
    if not path.is_file():
        raise NotFound(f"추출 파일이 없습니다: {path.name}", f"Staging file not found: {path}")
    size = path.stat().st_size
    sha = sha256_file(path)

    earlier = _existing(store, extracted.source, sha)
    if earlier is not None:
        log.info("landing skipped: identical object already landed",
                 extra={"source": extracted.source, "existing": earlier.key, "sha256": sha})
        return LandResult(earlier, landed=False)

    key = object_key(extracted.source, extracted_at, run_id, extracted.name, extracted.fmt)
    manifest = Manifest(
        key=key, source=extracted.source, source_kind=extracted.source_kind, run_id=run_id,
        extracted_at=extracted_at, format=extracted.fmt, content_type=extracted.content_type, sha256=sha,
        byte_size=size, query=extracted.query, file=extracted.file, params=extracted.params,
        row_count=extracted.row_count, page_count=extracted.page_count, schema_=extracted.schema,
        masked_columns=extracted.masked_columns, cursor=extracted.cursor,
    )
    if store.exists(manifest.manifest_key):
        previous = read_manifest(store, manifest.manifest_key)
        if previous.sha256 != sha:
            raise Conflict(
                f"같은 실행(run_id)에서 다른 내용이 이미 적재되었습니다: {key}",
                f"{key} was already landed by run {run_id} with different content",
                hint="use a new run_id for a new extraction",
            )
        return LandResult(previous, landed=False)

    info = store.put_file(key, path, content_type=extracted.content_type,
                          metadata={"source": extracted.source, "run-id": run_id})
    if info.sha256 != sha or info.size != size:
        store.delete(key)
        raise Conflict(f"적재 중에 추출 파일이 바뀌었습니다: {path.name}",
                       f"Staging file {path.name} changed while it was being landed", hint="land it again")
    store.put_bytes(manifest.manifest_key, manifest.to_json().encode("utf-8"), content_type="application/json")
    store.put_bytes(index_key(extracted.source, sha), manifest.manifest_key.encode("utf-8"),
                    content_type="text/plain")
    log.info("landed", extra={"source": extracted.source, "key": key, "bytes": size, "sha256": sha})
    return LandResult(manifest, landed=True)


def iter_manifest_keys(store: ObjectStore, prefix: str = "raw/") -> Iterator[str]:
    """Manifest keys under ``prefix`` (complete landings only)."""
    for info in store.list(prefix):
        if is_manifest_key(info.key):
            yield info.key


def sweep_incomplete(store: ObjectStore, prefix: str = "raw/", older_than: timedelta = timedelta(hours=1),
                     now: datetime | None = None) -> list[str]:
    """Delete data objects that have no manifest and are older than ``older_than``; returns their keys.

    The grace period protects landings in progress (data written, manifest not yet).
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    infos = list(store.list(prefix))
    keys = {i.key for i in infos}
    removed = []
    for info in infos:
        k = info.key
        if (is_manifest_key(k) or f"/{INDEX_DIR}/" in k or f"/{RUNS_DIR}/" in k or k + MANIFEST_SUFFIX in keys
                or info.modified > cutoff):
            continue
        if store.exists(k + MANIFEST_SUFFIX):  # landed after we listed
            continue
        store.delete(k)
        removed.append(k)
    if removed:
        log.info("swept incomplete landings", extra={"count": len(removed)})
    return removed


def run_record_key(source: str, run_id: str) -> str:
    return f"raw/{source}/{RUNS_DIR}/{run_id}.json"


def object_rows(row_count: int | None) -> int:
    """What an object counts for in a run's size: its rows; a document without rows counts as one."""
    return 1 if row_count is None else row_count


def write_run_record(store: ObjectStore, source: str, run_id: str, manifests: list[Manifest], *,
                     incremental: bool) -> str:
    """Record the complete set of objects one run of ``source`` produced (reused duplicates too).

    A full extract's record is what the knowledge-store batch keeps (documents of that source
    outside it are deleted); an incremental source's record is informational. ``rows`` (see
    :func:`object_rows`) is what the next full extract is compared with (:mod:`~jisik.pipeline.shrink`).
    """
    record = {"source": source, "run_id": run_id, "incremental": incremental,
              "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "manifests": [m.manifest_key for m in manifests],
              "rows": sum(object_rows(m.row_count) for m in manifests)}
    key = run_record_key(source, run_id)
    store.put_bytes(key, json.dumps(record, ensure_ascii=False).encode("utf-8"), content_type="application/json")
    return key


def latest_run_record(store: ObjectStore, source: str) -> dict[str, Any] | None:
    """The newest run record of ``source`` (run ids sort by time), or None."""
    keys = sorted(info.key for info in store.list(f"raw/{source}/{RUNS_DIR}/"))
    if not keys:
        return None
    try:
        record: dict[str, Any] = json.loads(store.get_bytes(keys[-1]))
    except ValueError as exc:
        raise CorruptData(f"실행 기록을 읽을 수 없습니다: {keys[-1]}", f"Corrupt run record {keys[-1]}: {exc}") from exc
    return record


def record_rows(store: ObjectStore, record: dict[str, Any]) -> int:
    """The ``rows`` of a run record (read from its manifests for a record written before it had them)."""
    rows = record.get("rows")
    if isinstance(rows, int):
        return rows
    return sum(object_rows(read_manifest(store, key).row_count) for key in record.get("manifests", []))
