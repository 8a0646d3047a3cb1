"""Celery tasks on the real RabbitMQ of this machine, run by a REAL worker process (Redis result backend,
which the chord of ``pipeline_chain`` needs). Fails, never skips, when RabbitMQ or Redis is unreachable."""

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu import Connection, Queue

from jisik.core.settings import get_settings
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.events.s3format import object_created_message
from jisik.pipeline.runner import Pipeline
from jisik.pipeline.tasks import CelerySettings, make_app, pipeline_chain
from jisik.runtime import Runtime
from pipeline_fixtures import write_pipeline

pytestmark = pytest.mark.integration
BROKER = os.environ.get("JISIK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("JISIK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _require_services() -> None:
    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as e:
        pytest.fail(f"RabbitMQ is unreachable at {BROKER.rsplit('@', 1)[-1]}: {e}", pytrace=False)
    import redis

    try:
        redis.Redis.from_url(BACKEND, socket_connect_timeout=3).ping()
    except Exception as e:
        pytest.fail(f"Redis (result backend) is unreachable at {BACKEND}: {e}", pytrace=False)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Any, str, Path]]:
    """A celery worker subprocess on a unique queue; yields (client app, queue, worker log)."""
    _require_services()
    queue = f"jisik-test-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "JISIK_CELERY_BROKER_URL": BROKER, "JISIK_CELERY_RESULT_BACKEND": BACKEND,
           "JISIK_CELERY_QUEUE": queue, "JISIK_CELERY_RETRY_BACKOFF_S": "1", "JISIK_CELERY_MAX_RETRIES": "1"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jisik.pipeline.tasks", "worker", "--pool=solo", "-Q", queue,
             "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{queue}@%h", "--loglevel=INFO"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    client = make_app(CelerySettings(broker_url=BROKER, result_backend=BACKEND, queue=queue))
    try:
        yield client, queue, log
    finally:
        proc.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with Connection(BROKER, connect_timeout=3) as conn, conn.channel() as ch:
            Queue(queue).bind(ch).delete()


def wait(result: AsyncResult, log: Path, timeout_s: float = 120.0) -> Any:
    """The task's return value; fails early with the worker log when the worker died."""
    waited = 0.0
    while True:
        try:
            return result.get(timeout=2, propagate=True)
        except CeleryTimeout:
            waited += 2
            if waited >= timeout_s:
                pytest.fail(f"no result after {timeout_s:.0f} s; worker log:\n{log.read_text()[-4000:]}")


def search(collection: str, query: str) -> str:
    rt = Runtime(get_settings())
    try:
        return rt.retriever.retrieve(query, collection, top_k=1).hits[0].chunk.title or ""
    finally:
        rt.close()


def test_a_real_worker_runs_the_pipeline_tasks(worker: tuple[Any, str, Path], tmp_path: Path) -> None:
    client, queue, log = worker
    config = write_pipeline(tmp_path / "p")

    # 1. the whole run in one task
    result = client.send_task("jisik.pipeline.run_pipeline", args=[str(config), None], queue=queue)
    report = wait(result, log)
    result.forget()
    assert report["status"] == "ok", report
    assert {s["name"]: s["counts"].get("added") for s in report["stages"] if s["stage"] == "index"} == {
        "events": 3, "faq": 2}
    assert search("events", "소상공인 예금 금리") == "소상공인 특별 금리"
    pipeline = Pipeline(load_pipeline_config(config), get_settings())
    assert report["run_id"] in [r["run_id"] for r in pipeline.reports()]  # the worker saved it

    # 2. the canvas: extracts in parallel (a chord), then transfer, then index
    with sqlite3.connect(tmp_path / "p" / "warehouse.sqlite3") as db:
        db.execute("INSERT INTO events VALUES (4, '전통시장 결제 할인', '전통시장에서 결제하면 5% 청구 할인됩니다.', "
                   "'2025-02-01 09:00:00')")
    result = pipeline_chain(str(config), ["events", "faq"], app=client, queue=queue).apply_async()
    indexed = wait(result, log)
    assert indexed["status"] == "ok"
    assert {s["name"]: s["counts"].get("added", 0) for s in indexed["stages"]} == {"events": 1, "faq": 0}
    assert search("events", "전통시장 할인") == "전통시장 결제 할인"

    # 3. an S3 ObjectCreated notification drives transfer + index
    (tmp_path / "p" / "faq.csv").write_text(
        "id,question,answer\n3,카드 분실 신고는 어떻게 하나요?,고객센터나 앱에서 24시간 분실 신고를 할 수 있습니다.\n",
        encoding="utf-8")
    extracted = wait(client.send_task("jisik.pipeline.extract_source", args=[str(config), "faq"], queue=queue), log)
    assert extracted["stages"][0]["counts"]["landed"] == 1
    [key] = [i.key for i in pipeline.landing.list("raw/faq/")
             if i.key.endswith(".meta.json") and extracted["run_id"] in i.key]
    message = object_created_message(pipeline.landing, key)
    handled = wait(client.send_task("jisik.pipeline.handle_s3_event", args=[str(config), message], queue=queue), log)
    pipeline.close()
    stages = {(s["stage"], s["name"]): s for s in handled["stages"]}
    assert stages[("transfer", "notifications")]["counts"] == {"delivered": 1}
    assert stages[("index", "faq")]["counts"]["added"] == 1 and stages[("index", "faq")]["counts"]["deleted"] == 2
    assert search("faq", "카드 분실 신고") == "카드 분실 신고는 어떻게 하나요?"

    # 4. a task that cannot succeed fails at once (no retry), with the typed error
    bad = client.send_task("jisik.pipeline.extract_source", args=[str(config), "nope"], queue=queue)
    with pytest.raises(Exception, match="nope") as failure:
        wait(bad, log)
    assert type(failure.value).__name__ == "NotFound"
    assert "Retry in" not in log.read_text()
