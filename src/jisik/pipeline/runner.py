"""The pipeline's stage functions and the run that chains them (CLI, scheduler, Celery and Airflow call these).

0. :meth:`Pipeline.sweep` (start of every :meth:`Pipeline.run`) — removes what killed runs left:
   landed data objects without a manifest (the run's sources, the last :data:`SWEEP_DAYS` days),
   the object stores' temp files and the work dir's temp trees, each only when older than
   ``JISIK_PIPELINE_SWEEP_GRACE_S`` (default 1 h) so a concurrent writer's upload in flight is kept;
   what it removed is the run report's ``sweep`` stage.
1. :func:`extract_and_land` — a source writes staging files; a *full* extract far smaller than the
   previous one is refused (:mod:`~jisik.pipeline.shrink`: it would delete the source's documents);
   their schemas are checked against the
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

**Poisoned objects** (index time): an object that cannot be read, parsed or chunked (corrupt PDF,
duplicate row keys, an inbox copy that no longer matches its checksum) fails the whole batch — nothing
is published — and its receipt becomes a dead letter with the error (``jisik pipeline dead-letters``;
:class:`ObjectDeadLettered` in the run report). Later batches skip dead-lettered objects: their other
objects are indexed, and the documents the dead object would have replaced are kept (never deleted by
a full source's sync). The object is indexed again once its source delivers different bytes (a new
checksum) or after ``jisik pipeline requeue KEY``. Failures that are not the object's (a store or
database unavailable, a configuration error: ``indexing.NOT_THE_OBJECTS_FAULT``) never dead-letter anything.

Each stage is idempotent, so a run killed at any point is simply run again: landing skips identical
bytes, transfer skips objects with a receipt, indexing skips unchanged documents, and an unpublished
batch leaves the previous index version in service (tested by SIGKILLing runs at every stage,
``tests/integration/test_pipeline_crash.py``). Every stage outcome goes into a :class:`RunReport`,
saved as JSON under ``{home}/pipeline/runs/`` when the run starts and after every stage (a killed
run stays listed as ``running``). A stage hook (``on_stage``) sees every stage start (status
``running``), its progress while indexing (``counts`` documents / chunks) and its end: the CLI's
progress display, the scheduler's log and the Celery task state use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from jisik.core.errors import Conflict, CorruptData, JisikError, NotFound
from jisik.core.hashing import sha256_file
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.core.types import Document
from jisik.pipeline.config import PipelineConfig, Target
from jisik.pipeline.events.local import LocalWatcher
from jisik.pipeline.landing import land, latest_run_record, read_manifest, sweep_incomplete, write_run_record
from jisik.pipeline.manifest import Manifest
from jisik.pipeline.receipts import ReceiptStore
from jisik.pipeline.schema_drift import SchemaHistory
from jisik.pipeline.shrink import check_shrink
from jisik.pipeline.sources.base import RunContext, SqliteStateStore, build_source, new_run_id
from jisik.pipeline.sources.parsers import documents_from_object, object_name
from jisik.pipeline.transfer import RetryPolicy, Transfer
from jisik.stores.factory import open_index
from jisik.stores.objects.base import ObjectStore
from jisik.stores.objects.factory import open_objects
from jisik.text.chunking import make_chunker

log = get_logger(__name__)
_TEMP_PREFIXES = ("staging-", "batch-", "jisik-transfer-")
SWEEP_DAYS = 7  # the sweep looks at this many days of a source's landing keys (raw/{source}/{day}/) back
Status = Literal["ok", "failed", "skipped", "running"]
# where a document came from, not what it says: re-delivering unchanged content (also at another
# row position) re-indexes nothing; the stored chunks keep the lineage of the run that first
# delivered that content, whose landed object holds it at the stored position
LINEAGE_FIELDS = ("lineage_key", "run_id", "source_uri", "locator.rows")


@dataclass(slots=True)
class StageReport:
    stage: str  # sweep | extract | transfer | index
    name: str  # source or collection
    status: Status = "ok"
    counts: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the keys a sweep removed


# called with a copy of the stage's report: at its start (status "running"), with progress counts while
# it runs (index stages: documents, chunks) and at its end (ok | failed | skipped)
StageHook = Callable[[StageReport], None]


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


class ObjectDeadLettered(CorruptData):
    """An object could not be indexed; its receipt is a dead letter and the batch was not published."""

    code = "dead_letter"


class _ObjectFailed(Exception):
    """Reading one planned object failed (carried from the document stream to the index stage)."""

    def __init__(self, manifest: Manifest, error: Exception) -> None:
        super().__init__(str(error))
        self.manifest, self.error = manifest, error


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, JisikError):
        out = exc.to_dict()
        out["type"] = type(exc).__name__
        return out
    return {"type": type(exc).__name__, "message_ko": f"예기치 않은 오류: {exc}", "message_en": str(exc),
            "trace": traceback.format_exception_only(exc)[-1].strip()}


class _Stage:
    """Times a stage, tells the hook, and turns an exception into a failed StageReport (the run goes on)."""

    def __init__(self, report: RunReport, stage: str, name: str, emit: Callable[[StageReport], None]) -> None:
        self.rep = StageReport(stage, name, status="running")
        self.emit = emit
        report.stages.append(self.rep)

    def __enter__(self) -> StageReport:
        self._t = time.perf_counter()
        self.emit(self.rep)
        return self.rep

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        self.rep.seconds = round(time.perf_counter() - self._t, 3)
        handled = exc is not None and isinstance(exc, Exception)
        if handled:
            self.rep.status = "failed"
            self.rep.error = _error(exc)  # type: ignore[arg-type]
            log.error("pipeline stage failed", extra={"stage": self.rep.stage, "target": self.rep.name,
                                                      "error": type(exc).__name__})
        elif self.rep.status == "running":
            self.rep.status = "ok"
        if exc is None or handled:
            self.emit(self.rep)
        return handled


class Pipeline:
    """A configured pipeline: opens its stores lazily, runs stages, writes run reports."""

    def __init__(self, config: PipelineConfig, settings: Settings | None = None, *,
                 on_stage: StageHook | None = None) -> None:
        self.config = config
        self.settings = settings or get_settings()
        self.on_stage = on_stage
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
        return Transfer(self.landing, self.inbox, self.receipts, workdir=self.work,
                        retry=RetryPolicy.from_settings(self.settings))

    def close(self) -> None:
        for store in (self._landing, self._inbox, self._receipts):
            if store is not None:
                store.close()

    # -- stage reports and the hook -----------------------------------------------------------
    def _stage(self, report: RunReport, stage: str, name: str) -> _Stage:
        return _Stage(report, stage, name, self._emit)

    def _emit(self, rep: StageReport) -> None:
        if self.on_stage is None:
            return
        try:  # a progress display must never fail a stage
            self.on_stage(replace(rep, counts=dict(rep.counts), details=dict(rep.details)))
        except Exception as exc:
            log.warning("stage hook failed", extra={"stage": rep.stage, "error": type(exc).__name__})

    # -- stage 0 ------------------------------------------------------------------------------
    def sweep(self, report: RunReport, sources: list[str]) -> StageReport:
        """Remove incomplete landings of ``sources``, temp files and temp dirs that killed runs left."""
        with self._stage(report, "sweep", "landing") as rep:
            grace = timedelta(seconds=self.settings.pipeline_sweep_grace_s)
            now = datetime.now(UTC)
            keys = [key for source in sources for day in range(SWEEP_DAYS + 1)
                    for key in sweep_incomplete(self.landing, f"raw/{source}/{now - timedelta(days=day):%Y-%m-%d}/",
                                                older_than=grace, now=now)]
            temp = 0
            for store in (self.landing, self.inbox):
                cleanup = getattr(store, "cleanup_temp", None)  # the local store's stray temp files
                if callable(cleanup):
                    temp += int(cleanup(grace.total_seconds()))
            dirs = self.sweep_work()
            rep.counts = {"incomplete": len(keys), "temp_files": temp, "work_dirs": len(dirs)}
            rep.details = {k: v[:100] for k, v in (("incomplete", keys), ("work_dirs", dirs)) if v}
        return rep

    # -- stage 1 ------------------------------------------------------------------------------
    def extract_and_land(self, source_name: str, run_id: str | None = None, *,
                         allow_shrink: bool = False) -> StageReport:
        report = RunReport(run_id or new_run_id(), _now())
        self._extract(report, source_name, allow_shrink=allow_shrink)
        return report.stages[-1]

    def _extract(self, report: RunReport, source_name: str, *, allow_shrink: bool = False) -> None:
        with self._stage(report, "extract", source_name) as rep:
            cfg = self.config.source(source_name)
            source = build_source(cfg)
            incremental = getattr(cfg, "cursor_column", None) is not None
            staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.work))
            state = SqliteStateStore(self.work / "state.sqlite3")
            schemas = SchemaHistory(self.work / "state.sqlite3")
            ctx = RunContext(report.run_id, datetime.now(UTC), staging, state)
            try:
                extracted = source.extract(ctx)
                if not (incremental or cfg.allow_shrink or allow_shrink) and self._synced(source_name):
                    # before landing: a refused extract leaves the previous run record as the source's state
                    check_shrink(self.landing, source_name, extracted, latest_run_record(self.landing, source_name),
                                 min_rows_pct=cfg.min_rows_pct)
                if not cfg.allow_schema_drift:
                    schemas.check(source_name, extracted)  # before landing: drift lands nothing
                results = [land(self.landing, e, ctx.run_id, ctx.extracted_at) for e in extracted]
                # the run record first, the cursor last: a crash in between re-extracts, never skips
                write_run_record(self.landing, source_name, ctx.run_id, [r.manifest for r in results],
                                 incremental=incremental)
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

    def _synced(self, source: str) -> bool:
        """True when a target deletes this (full) source's documents that a run no longer delivers."""
        return any(t.sync is not False for t in self.config.targets_of(source))

    # -- stage 2 ------------------------------------------------------------------------------
    def transfer_landed(self, report: RunReport | None = None) -> StageReport:
        report = report or RunReport(new_run_id(), _now())
        with self._stage(report, "transfer", "landing->inbox") as rep:
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
                with self._stage(report, "index", target.collection) as rep:
                    out.append(rep)
                    if store is None:  # inside the stage: an unreachable index fails the stage, not the run
                        store = open_index(self.urls["index"])
                    self._index_target(target, rt, store, rep)
        finally:
            if store is not None:
                store.close()
        return out

    def _index_target(self, target: Target, rt: Any, store: Any, rep: StageReport) -> None:
        from jisik.pipeline.indexing import DocumentFailed, Indexer

        pending = [r for r in self.receipts.pending() if r.source in target.sources]
        plan: list[tuple[Manifest, str]] = []  # (landing manifest, inbox key)
        sync_prefixes: list[str] = []
        keep: list[str] = []  # doc id prefixes of dead-lettered objects: skipped, their documents kept
        done_keys = [r.manifest_key for r in pending]
        for source in target.sources:
            record = latest_run_record(self.landing, source)
            full = record is not None and not record["incremental"]
            sync = target.sync if target.sync is not None else full
            if sync and record is not None:
                for manifest, inbox_key in map(self._plan_entry, record["manifests"]):
                    if inbox_key is None:
                        keep.append(f"{manifest.source}/{object_name(manifest)}")
                    else:
                        plan.append((manifest, inbox_key))
                sync_prefixes.append(f"{source}/")
            else:
                # oldest extraction first, so when two runs delivered the same row the newer one wins
                delivered = [(m, k) for m, k in map(self._plan_entry, (r.manifest_key for r in pending
                                                                        if r.source == source)) if k is not None]
                plan += sorted(delivered, key=lambda mk: (mk[0].extracted_at, mk[0].key))
        skipped = {"dead_skipped": len(keep)} if keep else {}
        if not plan and not sync_prefixes:
            rep.status = "skipped"
            rep.counts = {"objects": 0, **skipped}
            return

        def progress(documents: int, chunks: int) -> None:
            rep.counts = {"documents": documents, "chunks": chunks}
            self._emit(rep)

        indexer = Indexer(store, rt.embedder, rt.tokenizer, make_chunker(target.chunker), volatile=LINEAGE_FIELDS)
        try:
            result = indexer.index(target.collection, self._documents(plan), sync=bool(sync_prefixes),
                                   sync_prefixes=sync_prefixes, keep_prefixes=keep, progress=progress,
                                   note=f"pipeline: {len(plan)} object(s)")
        except _ObjectFailed as failed:
            raise self._dead_letter(failed.manifest, failed.error, rep, len(plan)) from failed.error
        except DocumentFailed as exc:
            culprit = next((m for m, _ in plan if m.key == exc.details.get("lineage_key")), None)
            if culprit is None:
                raise
            raise self._dead_letter(culprit, exc, rep, len(plan)) from exc
        self.receipts.mark_indexed(done_keys, result.version)
        rep.counts = {"objects": len(plan), **skipped, **{k: v for k, v in result.to_dict().items()
                                                          if k in ("version", "added", "updated", "unchanged",
                                                                   "deleted", "chunks_indexed", "documents_seen")}}

    def _plan_entry(self, manifest_key: str) -> tuple[Manifest, str | None]:
        """A delivered object's manifest and inbox key; the key is None for a dead letter (skipped)."""
        manifest = read_manifest(self.landing, manifest_key)
        receipt = self.receipts.get(manifest.manifest_key, manifest.sha256)
        if receipt is not None and receipt.status == "dead":
            return manifest, None
        if receipt is None or receipt.status != "delivered" or receipt.inbox_key is None:
            raise Conflict(f"아직 전달되지 않은 객체가 있어 색인하지 않았습니다: {manifest.key}",
                           f"Not indexed: {manifest.key} has not been delivered to the inbox "
                           f"({receipt.status if receipt else 'no receipt'}).",
                           details={"key": manifest.key})
        return manifest, receipt.inbox_key

    def _dead_letter(self, m: Manifest, error: Exception, rep: StageReport, objects: int) -> ObjectDeadLettered:
        """Turn ``m``'s receipt into a dead letter (so the next batch goes on without it); the stage's error."""
        what = error.message_en if isinstance(error, JisikError) else str(error)
        receipt = self.receipts.get(m.manifest_key, m.sha256)
        if receipt is not None:
            self.receipts.save(replace(receipt, status="dead", last_error=f"index: {type(error).__name__}: {what}",
                                       indexed_at=None, index_version=None))
        rep.counts = {"objects": objects, "dead_letters": 1}
        log.error("object dead-lettered at index time", extra={"key": m.key, "error": type(error).__name__})
        ko = error.message_ko if isinstance(error, JisikError) else str(error)
        return ObjectDeadLettered(
            f"색인할 수 없는 객체를 dead letter로 옮겼습니다: {m.key} — {ko}. 이번 배치는 게시하지 않았고, "
            "다음 실행은 이 객체 없이 색인합니다.",
            f"Object dead-lettered at index time: {m.key}: {type(error).__name__}: {what}. Nothing was published; "
            "the next run indexes the other objects without it.",
            hint=f"fix the source (a new extraction is indexed again) or `jisik pipeline requeue {m.manifest_key}`",
            details={"key": m.key, "manifest_key": m.manifest_key, "error": type(error).__name__},
        )

    def _documents(self, plan: list[tuple[Manifest, str]]) -> Iterator[Document]:
        """Documents of the delivered objects; lineage keeps the landed key (raw/...)."""
        from jisik.pipeline.indexing import NOT_THE_OBJECTS_FAULT

        with tempfile.TemporaryDirectory(prefix="batch-", dir=self.work) as tmp:
            for i, (m, inbox_key) in enumerate(plan):
                try:
                    local = self.inbox.get_file(inbox_key, Path(tmp) / f"{i}.{m.format}")
                except NotFound as exc:  # the inbox lost it (a requeue copies it again); other errors: the store's
                    raise _ObjectFailed(m, exc) from exc
                try:
                    if sha256_file(local) != m.sha256:
                        raise CorruptData(f"수신함 객체가 매니페스트와 다릅니다: {inbox_key}",
                                          f"Inbox object differs from its manifest: {inbox_key}")
                    for doc in documents_from_object(local, m):
                        doc.metadata["run_id"] = m.run_id
                        yield doc
                except NOT_THE_OBJECTS_FAULT:
                    raise  # a service, the configuration or the machine: the next run tries again
                except Exception as exc:
                    raise _ObjectFailed(m, exc) from exc
                local.unlink(missing_ok=True)

    # -- the whole run ------------------------------------------------------------------------
    def run(self, sources: list[str] | None = None, *, index: bool = True, runtime: Any = None,
            on_stage: StageHook | None = None, allow_shrink: bool = False) -> RunReport:
        """Sweep, extract + land the given sources (default: all), transfer, then index every target.

        ``on_stage`` (else the pipeline's hook) sees every stage; ``allow_shrink`` accepts full
        extracts the shrink guard would refuse (this run only).
        """
        hook, self.on_stage = self.on_stage, on_stage or self.on_stage
        try:
            names = sources or [s.name for s in self.config.sources]
            report = RunReport(new_run_id(), _now())
            self.save_report(report)  # saved after every stage: a run killed midway stays listed as "running"
            self.sweep(report, names)
            for name in names:
                self._extract(report, name, allow_shrink=allow_shrink)
                self.save_report(report)
            self.transfer_landed(report)
            self.save_report(report)
            if index:
                self.index_delivered(report, runtime=runtime)
            report.finished_at = _now()
            report.status = "failed" if report.failed else "ok"
            self.save_report(report)
            return report
        finally:
            self.on_stage = hook

    def sweep_work(self, older_than_s: float = 24 * 3600) -> list[str]:
        """Remove temp dirs (staging, index batch, transfer) that killed runs left in the work dir.

        Only trees with nothing written for ``older_than_s`` go: a run in progress keeps its own
        (a day, not the landing grace: an index batch may read one large object for hours).
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
