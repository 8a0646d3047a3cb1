"""The shrink guard: a full extract far smaller than the previous one is refused before it lands.

A *full* (non-incremental) extract is its source's complete state: the knowledge-store batch
deletes that source's documents missing from it (target ``sync``). A warehouse table truncated by a
failed ETL job, an empty export folder or an API that answers with an empty list would therefore
empty the collection. So before anything lands, :func:`check_shrink` compares the extract's rows (a
document without rows counts as one, :func:`~jisik.pipeline.landing.object_rows`) with the source's
previous run record and raises :class:`ShrinkRefused` when

* the previous run had rows and this one has none (always, by default), or
* it has fewer than ``min_rows_pct`` percent of them (a source option, default 0 = off).

Nothing lands, so the previous run record stays the source's state and the index keeps every
document. The operator accepts a real shrink with ``allow_shrink: true`` on the source or, for one
run, ``jisik pipeline run --allow-shrink`` (``Pipeline.run(allow_shrink=True)``). Incremental
(cursor) sources are never checked: a run with no new rows is normal for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jisik.core.errors import Conflict
from jisik.pipeline.landing import object_rows, record_rows
from jisik.pipeline.manifest import Extracted
from jisik.stores.objects.base import ObjectStore


class ShrinkRefused(Conflict):
    code = "extract_shrink"


def extract_rows(extracted: Sequence[Extracted]) -> int:
    return sum(object_rows(e.row_count) for e in extracted)


def check_shrink(store: ObjectStore, source: str, extracted: Sequence[Extracted], previous: dict[str, Any] | None,
                 *, min_rows_pct: float = 0.0) -> None:
    """Raise :class:`ShrinkRefused` when ``extracted`` is empty or below ``min_rows_pct`` % of ``previous``."""
    if previous is None:
        return
    before = record_rows(store, previous)
    if before <= 0:
        return
    now = extract_rows(extracted)
    pct = 100.0 * now / before
    if now > 0 and pct >= min_rows_pct:
        return
    limit = "no rows" if now == 0 else f"{pct:.1f}% of them (minimum {min_rows_pct:g}%)"
    raise ShrinkRefused(
        f"'{source}' 소스의 전체 추출이 {now}건으로 지난 실행의 {before}건보다 크게 줄어 적재하지 않았습니다. "
        "색인의 기존 문서는 그대로 유지됩니다.",
        f"Full extract of source '{source}' refused: {now} row(s) after {before} in run {previous.get('run_id')} "
        f"({limit}); nothing landed, the index keeps the source's documents.",
        hint="if the data really shrank, set allow_shrink: true on the source or run with --allow-shrink",
        details={"source": source, "rows": now, "previous_rows": before, "previous_run": previous.get("run_id"),
                 "min_rows_pct": min_rows_pct},
    )
