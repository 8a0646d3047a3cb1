"""Landing into the local object store: layout, manifests, dedup, incomplete landings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jisik.core.errors import Conflict, CorruptData, InvalidInput, NotFound
from jisik.core.hashing import sha256_file
from jisik.pipeline.landing import (
    index_key,
    iter_manifest_keys,
    land,
    read_manifest,
    sweep_incomplete,
)
from jisik.pipeline.manifest import ColumnSchema, CursorRange, Extracted
from jisik.stores.objects import LocalObjectStore

AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def extracted(path: Path, name: str = "products", source: str = "erp") -> Extracted:
    return Extracted(
        path=path, name=name, fmt="csv", source=source, source_kind="sql", query="SELECT * FROM products",
        params={"since": "2026-01-01"}, row_count=2, content_type="text/csv",
        schema=[ColumnSchema(name="id", type="integer"), ColumnSchema(name="이름", type="string")],
        masked_columns=["phone"], cursor=CursorRange(column="updated_at", start=None, end="2026-01-31"),
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "landing")


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    p = tmp_path / "stage" / "products.csv"
    p.parent.mkdir()
    p.write_text("id,이름\n1,사과\n2,배\n", encoding="utf-8")
    return p


def test_land_writes_object_manifest_and_marker(store: LocalObjectStore, staged: Path) -> None:
    result = land(store, extracted(staged), "run-1", AT)
    assert result.landed
    m = result.manifest
    assert m.key == "raw/erp/2026-01-31/run-1/products.csv"
    assert store.get_bytes(m.key) == staged.read_bytes()
    body = json.loads(store.get_bytes(m.key + ".meta.json"))
    assert body["sha256"] == sha256_file(staged) and body["byte_size"] == staged.stat().st_size
    assert body["schema"] == [{"name": "id", "type": "integer"}, {"name": "이름", "type": "string"}]
    assert body["masked_columns"] == ["phone"] and body["row_count"] == 2 and body["run_id"] == "run-1"
    assert body["query"] == "SELECT * FROM products" and body["cursor"]["end"] == "2026-01-31"
    assert read_manifest(store, m.key) == m == read_manifest(store, m.manifest_key)
    assert store.get_bytes(index_key("erp", m.sha256)).decode() == m.manifest_key
    assert store.head(m.key).metadata["run-id"] == "run-1"
    assert list(iter_manifest_keys(store)) == [m.manifest_key]


def test_identical_object_is_not_landed_twice(store: LocalObjectStore, staged: Path, tmp_path: Path) -> None:
    first = land(store, extracted(staged), "run-1", AT)
    copy = tmp_path / "again.csv"
    copy.write_bytes(staged.read_bytes())
    second = land(store, extracted(copy, name="renamed"), "run-2", AT + timedelta(days=1))
    assert not second.landed
    assert second.manifest == first.manifest
    assert list(iter_manifest_keys(store)) == [first.manifest.manifest_key]
    # the same bytes from another source are that source's own landing
    third = land(store, extracted(copy, source="crm"), "run-2", AT)
    assert third.landed and third.manifest.key.startswith("raw/crm/")


def test_changed_content_lands_again(store: LocalObjectStore, staged: Path) -> None:
    land(store, extracted(staged), "run-1", AT)
    staged.write_text("id,이름\n1,사과\n", encoding="utf-8")
    second = land(store, extracted(staged), "run-2", AT)
    assert second.landed and second.manifest.key.endswith("/run-2/products.csv")


def test_same_run_with_other_content_conflicts(store: LocalObjectStore, staged: Path) -> None:
    land(store, extracted(staged), "run-1", AT)
    staged.write_text("id\n9\n", encoding="utf-8")
    with pytest.raises(Conflict):
        land(store, extracted(staged), "run-1", AT)


def test_marker_of_deleted_landing_is_ignored(store: LocalObjectStore, staged: Path) -> None:
    m = land(store, extracted(staged), "run-1", AT).manifest
    store.delete(m.manifest_key)
    store.delete(m.key)
    again = land(store, extracted(staged), "run-3", AT)
    assert again.landed and again.manifest.run_id == "run-3"


def test_incomplete_landing_is_invisible_and_swept(store: LocalObjectStore, staged: Path) -> None:
    # a landing that died after the data upload: data object, no manifest
    store.put_file("raw/erp/2026-01-31/run-0/products.csv", staged)
    done = land(store, extracted(staged), "run-1", AT).manifest
    assert done.key.endswith("/run-1/products.csv")  # the orphan did not count as landed
    assert list(iter_manifest_keys(store)) == [done.manifest_key]
    assert sweep_incomplete(store) == []  # still within the grace period
    removed = sweep_incomplete(store, older_than=timedelta(0), now=datetime.now(UTC) + timedelta(seconds=5))
    assert removed == ["raw/erp/2026-01-31/run-0/products.csv"]
    assert store.exists(done.key) and store.exists(done.manifest_key)
    assert store.exists(index_key("erp", done.sha256))


def test_read_manifest_errors(store: LocalObjectStore) -> None:
    with pytest.raises(NotFound):
        read_manifest(store, "raw/x/2026-01-01/r/a.csv")
    store.put_bytes("raw/x/2026-01-01/r/a.csv.meta.json", b"{not json")
    with pytest.raises(CorruptData):
        read_manifest(store, "raw/x/2026-01-01/r/a.csv")
    store.put_bytes("raw/x/2026-01-01/r/b.csv.meta.json", json.dumps({"key": "raw/x/b.csv"}).encode())
    with pytest.raises(CorruptData):
        read_manifest(store, "raw/x/2026-01-01/r/b.csv.meta.json")


@pytest.mark.parametrize(("field", "value"), [("source", "../etc"), ("source", "_index"), ("name", "a/b"),
                                              ("run_id", ""), ("fmt", "c sv"),
                                              ("name", "이름" * 30)])
def test_unsafe_names_are_rejected(store: LocalObjectStore, staged: Path, field: str, value: str) -> None:
    e = extracted(staged)
    run_id = "run-1"
    if field == "run_id":
        run_id = value
    else:
        setattr(e, field, value)
    with pytest.raises(InvalidInput):
        land(store, e, run_id, AT)
    assert list(store.list()) == []


def test_missing_staging_file_and_naive_time(store: LocalObjectStore, tmp_path: Path, staged: Path) -> None:
    with pytest.raises(NotFound):
        land(store, extracted(tmp_path / "gone.csv"), "run-1", AT)
    with pytest.raises(InvalidInput):
        land(store, extracted(staged), "run-1", datetime(2026, 1, 31))
