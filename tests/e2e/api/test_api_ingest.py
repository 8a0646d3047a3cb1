"""Ingestion jobs: upload or path (inside the allowed roots only) -> 202 + job -> done -> the new
documents answer questions. Thread mode in-process; Celery mode with a REAL worker on the real
RabbitMQ (fails, never skips, when RabbitMQ is unreachable)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_env import MakeApp, asgi_client
from jisik.runtime import Runtime

pytestmark = pytest.mark.anyio
GUIDE = "# 사내 도서관 이용 안내\n\n사내 도서관은 평일 오전 9시부터 오후 6시까지 엽니다. 책은 2주 동안 빌릴 수 있습니다.\n"
BROKER = os.environ.get("JISIK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


async def wait_done(c: httpx.AsyncClient, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = (await c.get(f"/api/v1/ingest/{job_id}")).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.1)


async def test_upload_and_path_ingest_in_a_background_thread(make_app: MakeApp, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    (root / "hours.md").write_text(GUIDE.replace("도서관", "체력단련실"), "utf-8")
    outside = tmp_path / "secret.md"
    outside.write_text("비밀", "utf-8")
    name = f"up_{uuid.uuid4().hex[:8]}"
    async with asgi_client(make_app(ingest_roots=[root], max_upload_bytes=4096)) as c:
        r = await c.post("/api/v1/ingest", data={"collection": name}, files={"file": ("도서관 안내.md", GUIDE.encode())})
        assert r.status_code == 202 and r.json()["status"] in ("queued", "running") and r.json()["mode"] == "thread"
        job = await wait_done(c, r.json()["job_id"])
        assert job["status"] == "done" and job["report"]["added"] == 1 and job["source"].startswith("upload:")
        answer = (await c.post("/query", json={"query": "도서관은 몇 시에 여나요?", "collection": name})).json()
        assert "[1]" in answer["answer"] and "오전 9시" in answer["answer"]

        by_path = await c.post("/api/v1/ingest", data={"collection": name, "path": str(root)})
        assert by_path.status_code == 202
        assert (await wait_done(c, by_path.json()["job_id"]))["status"] == "done"
        gym = (await c.post("/query", json={"query": "체력단련실 운영 시간", "collection": name})).json()
        assert gym["citations"][0]["title"].startswith("사내 체력단련실")

        refused = await c.post("/api/v1/ingest", data={"collection": name, "path": str(outside)})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        both = await c.post("/api/v1/ingest", data={"collection": name, "path": str(root)},
                            files={"file": ("a.md", b"x")})
        assert both.status_code == 422
        assert (await c.post("/api/v1/ingest", data={"collection": name})).status_code == 422
        bad_name = await c.post("/api/v1/ingest", data={"collection": "Bad Name!"}, files={"file": ("a.md", b"x")})
        assert bad_name.status_code == 422
        big = await c.post("/api/v1/ingest", data={"collection": name}, files={"file": ("big.md", b"x" * 10_000)})
        assert big.status_code == 413
        assert (await c.get("/api/v1/ingest/0123456789abcdef01234567")).status_code == 404
    async with asgi_client(make_app()) as c:  # no roots configured: by path is off
        off = await c.post("/api/v1/ingest", data={"collection": name, "path": str(root)})
        assert off.status_code == 403 and "JISIK_INGEST_ROOTS" in off.json()["error"]["message_en"]


@pytest.fixture
def celery_worker(kb: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real worker (``jisik.api.ingest_worker``) on a unique queue, sharing the API's home and index."""
    from kombu import Connection, Queue

    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is unreachable at {BROKER.rsplit('@', 1)[-1]}: {exc}", pytrace=False)
    queue = f"jisik-test-ingest-{uuid.uuid4().hex[:10]}"
    home = tmp_path / "shared-home"
    env = {"JISIK_CELERY_BROKER_URL": BROKER, "JISIK_CELERY_QUEUE": queue, "JISIK_CELERY_RESULT_BACKEND": "",
           "JISIK_HOME": str(home), "JISIK_INDEX_URL": kb.settings.resolved_index_url()}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jisik.api.ingest_worker", "worker", "--pool=solo", "-Q", queue,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h"],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with Connection(BROKER, connect_timeout=3) as conn, conn.channel() as ch:
            Queue(queue).bind(ch).delete()


@pytest.mark.integration
async def test_celery_mode_queues_the_job_for_a_real_worker(make_app: MakeApp, celery_worker: Path) -> None:
    name = f"cel_{uuid.uuid4().hex[:8]}"
    app = make_app(ingest_mode="celery", home=celery_worker)
    async with asgi_client(app) as c:
        r = await c.post("/api/v1/ingest", data={"collection": name}, files={"file": ("guide.md", GUIDE.encode())})
        assert r.status_code == 202 and r.json()["mode"] == "celery"
        job = await wait_done(c, r.json()["job_id"], timeout_s=180)
        assert job["status"] == "done", (job, (celery_worker.parent / "worker.log").read_text()[-3000:])
        assert job["report"]["collection"] == name and job["report"]["added"] == 1
        answer = (await c.post("/query", json={"query": "책은 얼마 동안 빌릴 수 있나요?", "collection": name})).json()
        assert "2주" in answer["answer"]
