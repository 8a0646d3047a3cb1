"""Crash safety: the pipeline process is SIGKILLed at injected points of every stage and after seeded
random delays, while this process keeps querying the index; then it is run again to completion.

Invariants: while a run is alive or after it died, the served index version is the previous one
(or a completely published next one) and stays searchable; after the final run every row is indexed
exactly once (no row lost, no duplicate chunk), the cursor equals the highest id, no receipt is left
pending or dead, and the only incomplete landings are those of killed runs.

The child (``pipeline_crash_child.py``) is a real ``Pipeline.run`` on embedded defaults (local
landing/inbox, SQLite receipts, embedded index) with the real USE embedder."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from jisik.pipeline.landing import sweep_incomplete
from jisik.pipeline.receipts import ReceiptStore
from jisik.pipeline.sources.base import SqliteStateStore
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.stores.objects.local import LocalObjectStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHILD = Path(__file__).with_name("pipeline_crash_child.py")
COLLECTION = "crash"
EVENTS, NEW_EVENTS, PARTS, PART_ROWS, NEW_PART_ROWS = 400, 40, 4, 50, 10
# injected kill points (see the child), then seeded random delays after the run started: an early one
# (extract / land / transfer take well under a second) and a late one (model loading, embedding, commit)
POINTS = ["extract", "land-data", "land-marker", "cursor", "transfer", "index-mid", "index-commit",
          "random-early", "random-late"]
DELAYS = {"random-early": (0.0, 0.4), "random-late": (2.0, 10.0)}
STATUS = ["접수", "출고 준비", "배송 중", "배송 완료", "반품 요청"]


def event_row(i: int) -> tuple[int, str]:
    return i, f"주문번호 EV{i:05d} 배송 상태 {STATUS[i % 5]}, 고객 문의 유형 {i % 7}번"


def part_line(k: int, j: int) -> str:
    return f"CT{k}{j:04d},카탈로그 CT{k}{j:04d} 상품 설명 {STATUS[j % 5]} 단계 안내\n"


@dataclass
class World:
    """The sources (a SQLite table read incrementally, CSV files read in full) and the pipeline home."""

    root: Path
    events: int = 0
    parts: tuple[int, ...] = ()

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def config(self) -> Path:
        return self.root / "pipeline.yaml"

    def setup(self) -> None:
        with sqlite3.connect(self.root / "wh.db") as db:
            db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        (self.root / "catalog").mkdir()
        self.parts = (0,) * PARTS
        for k in range(PARTS):
            (self.root / "catalog" / f"part-{k}.csv").write_text("code,body\n", encoding="utf-8")
            self.grow_part(k, PART_ROWS)
        self.add_events(EVENTS)
        self.config.write_text(yaml.safe_dump({
            "sources": [
                {"kind": "sql", "name": "events", "url": f"sqlite:///{self.root / 'wh.db'}", "fmt": "csv",
                 "query": "SELECT id, body FROM events", "cursor_column": "id", "batch_size": 500},
                {"kind": "file", "name": "catalog", "paths": [str(self.root / "catalog")],
                 "hints": {"key_columns": ["code"]}},
            ],
            "targets": [{"collection": COLLECTION, "sources": ["events", "catalog"], "chunker": "whole"}],
        }, allow_unicode=True), encoding="utf-8")

    def add_events(self, n: int) -> None:
        with sqlite3.connect(self.root / "wh.db") as db:
            db.executemany("INSERT INTO events VALUES (?, ?)", [event_row(i) for i in range(self.events, self.events + n)])
        self.events += n

    def grow_part(self, k: int, n: int) -> None:
        start = self.parts[k]
        with (self.root / "catalog" / f"part-{k}.csv").open("a", encoding="utf-8") as f:
            f.writelines(part_line(k, j) for j in range(start, start + n))
        self.parts = tuple(v + n if i == k else v for i, v in enumerate(self.parts))

    def expected(self) -> set[str]:
        return ({f"events/events/id={i}" for i in range(self.events)}
                | {f"catalog/part-{k}/code=CT{k}{j:04d}" for k in range(PARTS) for j in range(self.parts[k])})

    def child(self, point: str = "") -> subprocess.Popen[str]:
        """A pipeline run in a new process; its log goes to ``{root}/child.log`` (a pipe could fill up)."""
        env = {**os.environ, "JISIK_HOME": str(self.home), "JISIK_LOG_LEVEL": "WARNING"}
        with (self.root / "child.log").open("a") as log:
            return subprocess.Popen([sys.executable, str(CHILD), str(self.config), str(self.home), point],
                                    stdout=subprocess.PIPE, stderr=log, text=True, env=env)

    def log_tail(self) -> str:
        return (self.root / "child.log").read_text(errors="replace")[-3000:]


@dataclass
class Served:
    version: int
    docs: list[str]
    texts: list[str]
    chunk_ids: list[str]


def served(home: Path) -> Served:
    """Every chunk of the collection's served version (a fresh reader, like a new `jisik search`)."""
    store = EmbeddedIndexStore(home / "index")
    try:
        info = store.get_collection(COLLECTION)
        probe = np.ones(info.dim, np.float32) / np.sqrt(info.dim)
        keys, _ = store.search_dense(COLLECTION, probe, max(info.chunks, 1), parse_filter(None))
        chunks = store.fetch(COLLECTION, keys.tolist())
        assert len(chunks) == info.chunks
        return Served(info.version, [c.doc_id for c in chunks], [c.text for c in chunks], [c.chunk_id for c in chunks])
    finally:
        store.close()


def probe(home: Path, row: int) -> tuple[int, int, bool]:
    """A fresh reader (like a new `jisik search`): served version, its documents, and whether a lexical
    query for an event row of the baseline run finds that row."""
    store = EmbeddedIndexStore(home / "index")
    try:
        info = store.get_collection(COLLECTION)
        keys, _ = store.search_lexical(COLLECTION, ["ev", f"{row:05d}"], 3, parse_filter(None))
        found = any(c.doc_id == f"events/events/id={row}" for c in store.fetch(COLLECTION, keys.tolist()))
        return info.version, info.documents, found
    finally:
        store.close()


def check_consistent(s: Served, expected: set[str]) -> None:
    assert len(s.docs) == len(set(s.docs)), "a document has two chunks (whole chunker: one per row)"
    assert len(s.chunk_ids) == len(set(s.chunk_ids)) and len(s.texts) == len(set(s.texts)), "duplicate chunks"
    assert set(s.docs) <= expected, sorted(set(s.docs) - expected)[:5]


def watch(world: World, proc: subprocess.Popen[str], before: Served, kill_after: float | None) -> None:
    """Query the index while the child runs: the served version is the previous one until a new one is
    published completely; SIGKILL the child after ``kill_after`` seconds."""
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready" (or "" when it died before)
    t0 = time.monotonic()
    rng = random.Random(len(before.docs))
    while proc.poll() is None:
        if kill_after is not None and time.monotonic() - t0 >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        version, documents, found = probe(world.home, rng.randrange(EVENTS))
        assert version in (before.version, before.version + 1)
        if version == before.version:
            assert documents == len(before.docs)
        assert found
        time.sleep(0.25)  # a reader every 250 ms; more would mostly slow the child down on 2 cores
    proc.wait(timeout=120)


def test_sigkill_at_any_point_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.setup()
    first = world.child()
    out, _ = first.communicate(timeout=180)
    assert first.returncode == 0 and json.loads(out.splitlines()[-1])["status"] == "ok", (out, world.log_tail())
    baseline = served(world.home)
    assert baseline.version == 1 and set(baseline.docs) == world.expected()

    rng = random.Random(3)
    killed_runs: set[str] = set()
    for n, point in enumerate(POINTS):
        world.add_events(NEW_EVENTS)
        world.grow_part(n % PARTS, NEW_PART_ROWS)
        before = served(world.home)
        runs_before = set(os.listdir(world.home / "pipeline" / "runs"))
        proc = world.child("" if point in DELAYS else point)
        watch(world, proc, before, rng.uniform(*DELAYS[point]) if point in DELAYS else None)
        if point not in DELAYS:
            out, _ = proc.communicate()
            assert proc.returncode == -signal.SIGKILL, (point, out[-2000:], world.log_tail())
        if proc.returncode == -signal.SIGKILL:
            killed_runs |= {r.removesuffix(".json") for r in set(os.listdir(world.home / "pipeline" / "runs"))
                            - runs_before}
        after = served(world.home)
        check_consistent(after, world.expected())
        if after.version == before.version:  # not published: exactly the previous version
            assert sorted(after.docs) == sorted(before.docs), point
        else:  # published completely before the kill (index-commit): nothing older went missing
            assert after.version == before.version + 1 and set(after.docs) >= set(before.docs), point
        assert probe(world.home, 7)[2]
        cursor = SqliteStateStore(world.home / "pipeline" / "state.sqlite3").get_cursor("events")
        assert cursor is not None  # committed by the baseline run at least, and never ahead of landing:
        assert LocalObjectStore(world.home / "landing").exists(f"raw/events/_runs/{cursor.run_id}.json"), point

    final = world.child()
    out, _ = final.communicate(timeout=180)
    assert final.returncode == 0, world.log_tail()
    report = json.loads(out.splitlines()[-1])
    assert report["status"] == "ok", report
    done = served(world.home)
    check_consistent(done, world.expected())
    assert set(done.docs) == world.expected()  # every row, exactly once
    assert len(done.chunk_ids) == world.events + sum(world.parts)

    cursor = SqliteStateStore(world.home / "pipeline" / "state.sqlite3").get_cursor("events")
    assert cursor is not None and cursor.value == str(world.events - 1)
    receipts = ReceiptStore(f"sqlite:///{world.home / 'pipeline' / 'receipts.sqlite3'}")
    assert receipts.pending() == [] and receipts.by_status("dead") == [] and receipts.by_status("failed") == []
    receipts.close()
    # incomplete landings (data object, no manifest) exist only for killed runs, and can be swept
    landing = LocalObjectStore(world.home / "landing")
    swept = sweep_incomplete(landing, older_than=timedelta(0))
    assert swept and all(any(f"/{run}/" in key for run in killed_runs) for key in swept), swept
