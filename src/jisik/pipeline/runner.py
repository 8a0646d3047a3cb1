"""The pipeline's stage functions and the run that chains them (CLI, scheduler, Celery and Airflow call these).

1. :func:`extract_and_land` — a source writes staging files; their schemas are checked against the
   previous run's (:mod:`~jisik.pipeline.schema_drift`: drift fails the stage before anything
   lands, unless the source allows it); each is landed (data, then manifest);
   the source's cursor is committed only after everything landed; a run record
   ``raw/{source}/_runs/{run_id}.json`` lists every object of the run, including identical ones
   landed earlier (so a full extract knows its complete set even when nothing changed).
2. :func:`transfer_landed` — new manifests in the landing store (polled) are delivered to the
   knowledge store's inbox with receipts (:class:`~jisik.pipeline.transfer.Transfer`).
3. :func:`index_delivered` — per target collection: parse the delivered objects into documents,
   index them incrementally as ONE new version (published only if the whole batch succeeded),
   delete documents a full-extract source no longer has, then mark the receipts indexed. Pending
   extractions are indexed oldest first (a row delivered twice ends with its newest content). Every
   chunk carries its lineage (``lineage_key`` = landed object key, ``run_id``, ``source``; the
   citation's ``source_uri`` and locator with table + row keys); lineage alone never makes a
   document "changed" (:data:`LINEAGE_FIELDS`), so unchanged rows are not re-embedded.

Each stage is idempotent, so a run killed at any point is simply run again: landing skips identical
bytes, transfer skips objects with a receipt, indexing skips unchanged documents, and an unpublished
batch leaves the previous index version in service (tested by SIGKILLing runs at every stage,
``tests/integration/test_pipeline_crash.py``). Every stage outcome goes into a :class:`RunReport`,
saved as JSON under ``{home}/pipeline/runs/`` when the run starts and after every stage (a killed
run stays listed as ``running``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jisik.core.errors import Conflict, CorruptData, JisikError
from jisik.core.hashing import sha256_file
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.core.types import Document
from jisik.pipeline.config import PipelineConfig, Target
from jisik.pipeline.events.local import LocalWatcher
from jisik.pipeline.landing import land, latest_run_record, read_manifest, write_run_record
from jisik.pipeline.manifest import Manifest
from jisik.pipeline.receipts import ReceiptStore
from jisik.pipeline.schema_drift import SchemaHistory
from jisik.pipeline.sources.base import RunContext, SqliteStateStore, build_source, new_run_id
from jisik.pipeline.sources.parsers import documents_from_object
from jisik.pipeline.transfer import Transfer
from jisik.stores.factory import open_index
from jisik.stores.objects.base import ObjectStore
from jisik.stores.objects.factory import open_objects
from jisik.text.chunking import make_chunker

log = get_logger(__name__)
_TEMP_PREFIXES = ("staging-", "batch-", "jisik-transfer-")
Status = Literal["ok", "failed", "skipped"]
# where a document came from, not what it says: re-delivering unchanged content (also at another
# row position) re-indexes nothing; the stored chunks keep the lineage of the run that first
# delivered that content, whose landed object holds it at the stored position
LINEAGE_FIELDS = ("lineage_key", "run_id", "source_uri", "locator.rows")


@dataclass(slots=True)
class StageReport:
    stage: str  # extract | transfer | index
    name: str  # source or collection
    status: Status = "ok"
    counts: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class RunReport:
    run_id: str
    started_at: str
    finished_at: str = ""
    status: Literal["ok", "failed", "running"] = "running"
    stages: list[StageReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed(self) -> list[StageReport]:
        return [s for s in self.stages if s.status == "failed"]


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, JisikError):
        out = exc.to_dict()
        out["type"] = type(exc).__name__
        return out
    return {"type": type(exc).__name__, "message_ko": f"예기치 않은 오류: {exc}", "message_en": str(exc),
            "trace": traceback.format_exception_only(exc)[-1].strip()}


class _Stage:
    """Times a stage and turns an exception into a failed StageReport (the run goes on)."""

    def __init__(self, report: RunReport, stage: str, name: str) -> None:
        self.rep = StageReport(stage, name)
        report.stages.append(self.rep)

    def __enter__(self) -> StageReport:
        self._t = time.perf_counter()
        return self.rep

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        self.rep.seconds = round(time.perf_counter() - self._t, 3)
        if exc is not None and isinstance(exc, Exception):
            self.rep.status = "failed"
            self.rep.error = _error(exc)
            log.error("pipeline stage failed", extra={"stage": self.rep.stage, "target": self.rep.name,
                                                      "error": type(exc).__name__})
            return True
        return False


class Pipeline:
    """A configured pipeline: opens its stores lazily, runs stages, writes run reports."""

    def __init__(self, config: PipelineConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings or get_settings()
        self.urls = config.stores.resolved(self.settings)
        self.work = self.settings.home.resolve() / "pipeline"
        self.work.mkdir(parents=True, exist_ok=True)
        self._landing: ObjectStore | None = None
        self._inbox: ObjectStore | None = None
        self._receipts: ReceiptStore | None = None

    # -- stores -----------------------------------------------------------------------------
    @property
    def landing(self) -> ObjectStore:
        if self._landing is None:
            self._landing = open_objects(self.urls["landing"])
        return self._landing

    @property
    def inbox(self) -> ObjectStore:
        if self._inbox is None:
            self._inbox = open_objects(self.urls["inbox"])
        return self._inbox

    @property
    def receipts(self) -> ReceiptStore:
        if self._receipts is None:
            self._receipts = ReceiptStore(self.urls["receipts"])
        return self._receipts

    def transfer(self) -> Transfer:
        return Transfer(self.landing, self.inbox, self.receipts, workdir=self.work)

    def close(self) -> None:
        for store in (self._landing, self._inbox, self._receipts):
            if store is not None:
                store.close()

    # -- stage 1 ------------------------------------------------------------------------------
    def extract_and_land(self, source_name: str, run_id: str | None = None) -> StageReport:
        report = RunReport(run_id or new_run_id(), _now())
        self._extract(report, source_name)
        return report.stages[-1]

    def _extract(self, report: RunReport, source_name: str) -> None:
        with _Stage(report, "extract", source_name) as rep:
            cfg = self.config.source(source_name)
            source = build_source(cfg)
            staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.work))
            state = SqliteStateStore(self.work / "state.sqlite3")
            schemas = SchemaHistory(self.work / "state.sqlite3")
            ctx = RunContext(report.run_id, datetime.now(UTC), staging, state)
            try:
                extracted = source.extract(ctx)
                if not cfg.allow_schema_drift:
                    schemas.check(source_name, extracted)  # before landing: drift lands nothing
                results = [land(self.landing, e, ctx.run_id, ctx.extracted_at) for e in extracted]
                # the run record first, the cursor last: a crash in between re-extracts, never skips
                write_run_record(self.landing, source_name, ctx.run_id, [r.manifest for r in results],
                                 incremental=getattr(cfg, "cursor_column", None) is not None)
                schemas.record(source_name, extracted, ctx.run_id)
                for e in extracted:
                    if e.cursor is not None and e.cursor.end is not None:
                        state.commit_cursor(source_name, e.cursor, run_id=ctx.run_id)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            rep.counts = {"objects": len(results), "landed": sum(r.landed for r in results),
                          "unchanged": sum(not r.landed for r in results),
                          "rows": sum(r.manifest.row_count or 0 for r in results),
                          "bytes": sum(r.manifest.byte_size for r in results)}

    # -- stage 2 ------------------------------------------------------------------------------
    def transfer_landed(self, report: RunReport | None = None) -> StageReport:
        report = report or RunReport(new_run_id(), _now())
        with _Stage(report, "transfer", "landing->inbox") as rep:
            transfer = self.transfer()
            watcher = LocalWatcher(self.landing, self.work / "watcher.sqlite3")
            delivered = dead = 0
            try:
                for event in watcher.poll():
                    receipt = transfer.handle(event)
                    watcher.mark_done(event)
                    if receipt is not None:
                        dead += receipt.status == "dead"
                        delivered += receipt.status == "delivered"
            finally:
                watcher.close()
            rep.counts = {"delivered": delivered, "dead": dead}
            if dead:
                rep.status = "failed"
                rep.error = {"type": "DeadLetter", "message_ko": f"{dead}개 객체를 전달하지 못했습니다 (dead letter).",
                             "message_en": f"{dead} object(s) could not be delivered (dead letters)."}
        return rep

    # -- stage 3 ------------------------------------------------------------------------------
    def index_delivered(self, report: RunReport | None = None, *, runtime: Any = None) -> list[StageReport]:
        from jisik.runtime import Runtime

        report = report or RunReport(new_run_id(), _now())
        rt = runtime or Runtime(self.settings)
        store: Any = None
        out: list[StageReport] = []
        try:
            for target in self.config.targets:
                with _Stage(report, "index", target.collection) as rep:
                    out.append(rep)
                    if store is None:  # inside the stage: an unreachable index fails the stage, not the run
                        store = open_index(self.urls["index"])
                    self._index_target(target, rt, store, rep)
        finally:
            if store is not None:
                store.close()
        return out

    def _index_target(self, target: Target, rt: Any, store: Any, rep: StageReport) -> None:
        from jisik.pipeline.indexing import Indexer

        pending = [r for r in self.receipts.pending() if r.source in target.sources]
        plan: list[tuple[Manifest, str]] = []  # (landing manifest, inbox key)
        sync_prefixes: list[str] = []
        done_keys = [r.manifest_key for r in pending]
        for source in target.sources:
            record = latest_run_record(self.landing, source)
            full = record is not None and not record["incremental"]
            sync = target.sync if target.sync is not None else full
            if sync and record is not None:
                plan += [self._delivered_manifest(k) for k in record["manifests"]]
                sync_prefixes.append(f"{source}/")
            else:
                # oldest extraction first, so when two runs delivered the same row the newer one wins
                delivered = [self._delivered_manifest(r.manifest_key) for r in pending if r.source == source]
                plan += sorted(delivered, key=lambda mk: (mk[0].extracted_at, mk[0].key))
        if not plan and not sync_prefixes:
            rep.status = "skipped"
            rep.counts = {"objects": 0}
            return
        indexer = Indexer(store, rt.embedder, rt.tokenizer, make_chunker(target.chunker), volatile=LINEAGE_FIELDS)
        result = indexer.index(target.collection, self._documents(plan), sync=bool(sync_prefixes),
                               sync_prefixes=sync_prefixes, note=f"pipeline: {len(plan)} object(s)")
        self.receipts.mark_indexed(done_keys, result.version)
        rep.counts = {"objects": len(plan), **{k: v for k, v in result.to_dict().items()
                                               if k in ("version", "added", "updated", "unchanged", "deleted",
                                                        "chunks_indexed", "documents_seen")}}

    def _delivered_manifest(self, manifest_key: str) -> tuple[Manifest, str]:
        manifest = read_manifest(self.landing, manifest_key)
        receipt = self.receipts.get(manifest.manifest_key, manifest.sha256)
        if receipt is None or receipt.status != "delivered" or receipt.inbox_key is None:
            raise Conflict(f"아직 전달되지 않은 객체가 있어 색인하지 않았습니다: {manifest.key}",
                           f"Not indexed: {manifest.key} has not been delivered to the inbox "
                           f"({receipt.status if receipt else 'no receipt'}).",
                           details={"key": manifest.key})
        return manifest, receipt.inbox_key

    def _documents(self, plan: list[tuple[Manifest, str]]) -> Iterator[Document]:
        """Documents of the delivered objects; lineage keeps the landed key (raw/...)."""
        with tempfile.TemporaryDirectory(prefix="batch-", dir=self.work) as tmp:
            for i, (m, inbox_key) in enumerate(plan):
                local = self.inbox.get_file(inbox_key, Path(tmp) / f"{i}.{m.format}")
                if sha256_file(local) != m.sha256:
                    raise CorruptData(f"수신함 객체가 매니페스트와 다릅니다: {inbox_key}",
                                      f"Inbox object differs from its manifest: {inbox_key}")
                for doc in documents_from_object(local, m):
                    doc.metadata["run_id"] = m.run_id
                    yield doc
                local.unlink(missing_ok=True)

    # -- the whole run ------------------------------------------------------------------------
    def run(self, sources: list[str] | None = None, *, index: bool = True, runtime: Any = None) -> RunReport:
        """Extract + land the given sources (default: all), transfer, then index every target."""
        report = RunReport(new_run_id(), _now())
        self.sweep_work()
        self.save_report(report)  # saved after every stage: a run killed midway stays listed as "running"
        for name in sources or [s.name for s in self.config.sources]:
            self._extract(report, name)
            self.save_report(report)
        self.transfer_landed(report)
        self.save_report(report)
        if index:
            self.index_delivered(report, runtime=runtime)
        report.finished_at = _now()
        report.status = "failed" if report.failed else "ok"
        self.save_report(report)
        return report

    def sweep_work(self, older_than_s: float = 24 * 3600) -> list[str]:
        """Remove temp dirs (staging, index batch, transfer) that killed runs left in the work dir.

        Only trees with nothing written for ``older_than_s`` go: a run in progress keeps its own.
        """
        removed = []
        cutoff = time.time() - older_than_s
        for path in self.work.iterdir():
            if path.is_dir() and path.name.startswith(_TEMP_PREFIXES) and _newest_mtime(path) < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        if removed:
            log.info("removed temp dirs of interrupted runs", extra={"count": len(removed)})
        return removed

    def save_report(self, report: RunReport) -> Path:
        runs = self.work / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        path = runs / f"{report.run_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
        return path

    def reports(self, limit: int = 20) -> list[dict[str, Any]]:
        runs = sorted((self.work / "runs").glob("*.json"), reverse=True)[:limit]
        return [json.loads(p.read_text(encoding="utf-8")) for p in runs]


def _newest_mtime(root: Path) -> float:
    newest = root.stat().st_mtime
    for dirpath, _dirs, files in os.walk(root):
        for name in [*files, *_dirs]:
            with contextlib.suppress(OSError):
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
