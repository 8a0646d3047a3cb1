"""`jisik pipeline consume` on the real RabbitMQ and Redis of this machine: S3 notifications for landed
manifests drive transfer + index; a malformed message is dead-lettered, never blocks the queue.
Fails (never skips) when the broker is unreachable."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jisik.cli import app
from jisik.core.errors import Unavailable
from jisik.core.settings import get_settings
from jisik.pipeline.events.s3format import publish_s3_event
from jisik.pipeline.jobs import extract_job, open_pipeline
from jisik.runtime import Runtime
from pipeline_fixtures import write_pipeline

pytestmark = pytest.mark.integration
RABBITMQ = os.environ.get("JISIK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("JISIK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
runner = CliRunner()


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str, Any]]:
    """(broker, url, queue or stream, publisher) with unique names, removed afterwards."""
    name = f"jisik-test-{uuid.uuid4().hex[:12]}"
    if request.param == "rabbitmq":
        from jisik.pipeline.events.rabbitmq import RabbitMqEventPublisher

        publisher: Any = RabbitMqEventPublisher(RABBITMQ, name, exchange=f"{name}.x")
        url = RABBITMQ
    else:
        from jisik.pipeline.events.redis_streams import RedisStreamEventPublisher

        publisher = RedisStreamEventPublisher(REDIS, name)
        url = REDIS
    try:
        publisher.publish({"Event": "s3:TestEvent"})  # reachability check (and a message to skip)
    except Unavailable as e:
        pytest.fail(f"{request.param} is unreachable: {e}", pytrace=False)
    try:
        yield request.param, url, name, publisher
    finally:
        if request.param == "rabbitmq":
            publisher.delete_queues()
        else:
            publisher._redis.delete(name, f"{name}:dead")
            publisher.close()


def test_consume_transfers_and_indexes_notified_objects(broker: tuple[str, str, str, Any], tmp_path: Path) -> None:
    kind, url, name, publisher = broker
    config = write_pipeline(tmp_path / "p")
    for source in ("events", "faq"):
        assert extract_job(config, source).status == "ok"
    with open_pipeline(config) as p:
        keys = sorted(i.key for i in p.landing.list("raw/") if i.key.endswith(".meta.json"))
        for key in keys:
            publish_s3_event(publisher, p.landing, key)
        publisher.publish(b"not json")
        publish_s3_event(publisher, p.landing, keys[0])  # a duplicate notification

    args = ["pipeline", "consume", str(config), "--broker", kind, "--url", url, "--queue", name,
            "--idle", "0.5", "--exit-when-idle", "--batch", "10"]
    if kind == "rabbitmq":
        args += ["--exchange", f"{name}.x"]
    else:
        args += ["--group", f"{name}-g"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "처리한 메시지 5개" in result.output  # test event, two objects, the malformed one, the duplicate

    with open_pipeline(config) as p:
        report = p.reports(1)[0]
        assert [r.status for r in p.receipts.by_status("delivered")] == ["delivered", "delivered"]
    stages = {(s["stage"], s["name"]): s for s in report["stages"]}
    assert stages[("transfer", "notifications")]["counts"] == {"delivered": 3}
    assert stages[("index", "events")]["counts"]["added"] == 3 and stages[("index", "faq")]["counts"]["added"] == 2
    rt = Runtime(get_settings())
    try:
        assert rt.retriever.retrieve("카드 연회비", "events", top_k=1).hits[0].chunk.title == "카드 연회비 면제"
    finally:
        rt.close()

    again = runner.invoke(app, args)  # nothing left: the malformed message went to the dead letters
    assert again.exit_code == 0 and "처리한 메시지 0개" in again.output

