"""A reader opening a collection must not delete the snapshot a writer is committing right now
(found by the pipeline crash test: a `jisik search` during a pipeline commit failed that commit)."""

from pathlib import Path

import numpy as np

from jisik.core.types import Chunk
from jisik.stores.embedded import EmbeddedIndexStore


def _one_doc(store: EmbeddedIndexStore, name: str) -> None:
    store.ensure_collection(name, dim=4, embedder_id="test")
    with store.open_batch(name) as b:
        b.upsert_document("d", "fp", [Chunk("c", "d", "문서")], np.eye(1, 4, dtype=np.float32), [["문서"]])


def test_leftovers_are_kept_while_a_writer_holds_the_collection(tmp_path: Path) -> None:
    _one_doc(EmbeddedIndexStore(tmp_path), "c")
    writer = EmbeddedIndexStore(tmp_path)
    batch = writer.open_batch("c")  # holds the write lock, as a commit in progress does
    in_progress = [tmp_path / "c" / ".tmp-snap-000002-4242", tmp_path / "c" / "snap-000002"]
    for d in in_progress:
        d.mkdir()
        (d / "manifest.json").write_text("{}")

    reader = EmbeddedIndexStore(tmp_path)  # a fresh reader, e.g. another process's `jisik search`
    assert reader.get_collection("c").version == 1
    assert all(d.exists() for d in in_progress)

    batch.abort()  # the writer is gone: its leftovers go at the next open
    EmbeddedIndexStore(tmp_path).get_collection("c")
    assert not any(d.exists() for d in in_progress)
    assert (tmp_path / "c" / "snap-000001").is_dir()  # the published snapshot stays
