"""Child process of ``test_pipeline_crash.py``: one ``Pipeline.run`` that SIGKILLs itself at a chosen point.

Usage: ``python pipeline_crash_child.py CONFIG.yaml HOME [POINT]``. The kill points are injected here,
by wrapping the stores and stage internals the run calls — production code knows nothing of them:

* ``extract``       source extracted to staging, nothing landed
* ``land-data``     a data object landed, its manifest not (an incomplete landing)
* ``land-marker``   manifest landed, the dedup marker and the run record not
* ``cursor``        everything landed and recorded, the cursor not committed
* ``transfer``      an object copied to the inbox, its inbox manifest and receipt not
* ``index-mid``     the index batch has written a group of documents, nothing published
* ``index-commit``  the new index version is published, the receipts are not marked indexed

Prints ``ready`` before the run starts and the run report's id, status and failed stages as one
JSON line when it completes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jisik.core.settings import Settings
from jisik.pipeline import indexing, runner
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.receipts import ReceiptStore
from jisik.pipeline.sources.base import SqliteStateStore


def die(*_: Any, **__: Any) -> Any:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_on_put(store: Any, when: Any) -> None:
    original = store.put_bytes

    def put_bytes(key: str, *args: Any, **kwargs: Any) -> Any:
        if when(key):
            die()
        return original(key, *args, **kwargs)

    store.put_bytes = put_bytes


def inject(p: runner.Pipeline, point: str) -> None:
    if point == "extract":
        runner.land = die  # type: ignore[assignment]
    elif point == "land-data":
        kill_on_put(p.landing, lambda key: key.endswith(".meta.json") and "/_runs/" not in key)
    elif point == "land-marker":
        kill_on_put(p.landing, lambda key: "/_index/" in key)
    elif point == "cursor":
        SqliteStateStore.commit_cursor = die  # type: ignore[method-assign]
    elif point == "transfer":
        kill_on_put(p.inbox, lambda key: key.endswith(".meta.json"))
    elif point == "index-mid":
        original = indexing.Indexer._index_group

        def index_group(self: Any, batch: Any, todo: Any, *args: Any) -> None:
            original(self, batch, todo, *args)
            if todo:  # a group of documents is in the open batch
                die()

        indexing.Indexer._index_group = index_group  # type: ignore[method-assign]
    elif point == "index-commit":
        ReceiptStore.mark_indexed = die  # type: ignore[method-assign]
    elif point:
        raise SystemExit(f"unknown kill point {point!r}")


def main() -> None:
    config, home = Path(sys.argv[1]), Path(sys.argv[2])
    point = sys.argv[3] if len(sys.argv) > 3 else ""
    p = runner.Pipeline(load_pipeline_config(config), Settings(home=home, embedder="use-multilingual"))
    inject(p, point)
    print("ready", flush=True)  # imports done: the parent's kill timer starts now
    report = p.run()
    p.close()
    print(json.dumps({"run_id": report.run_id, "status": report.status,
                      "failed": [asdict(s) for s in report.failed]}, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
