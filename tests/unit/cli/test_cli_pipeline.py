"""`jisik pipeline …` on a small SQLite warehouse + CSV file source (real stores, real e5-small)."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jisik.cli import app
from jisik.core.settings import get_settings
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.receipts import ReceiptStore
from jisik.pipeline.runner import Pipeline
from jisik.runtime import Runtime
from pipeline_fixtures import write_pipeline

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["pipeline", *args])
    assert result.exit_code == code, result.output
    return result.output


def invoke_json(*args: str) -> object:
    result = runner.invoke(app, ["pipeline", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path / "p", schedules="""
schedules:
  - sources: [events]
    cron: "*/10 9-18 * * 1-5"
  - sources: [faq]
    cron: "30 2 * * 0"
    timezone: UTC
""")


def search(collection: str, query: str) -> list[str]:
    rt = Runtime(get_settings())
    try:
        result = rt.retriever.retrieve(query, collection, top_k=3)
        return [h.chunk.title or "" for h in result.hits]
    finally:
        rt.close()


def test_run_indexes_everything_then_runs_lists_it(config: Path) -> None:
    out = invoke("run", str(config))
    assert "추출" in out and "색인" in out and "성공" in out

    report = invoke_json("run", str(config))  # again: nothing new, nothing re-indexed
    assert report["status"] == "ok"
    stages = {(s["stage"], s["name"]): s for s in report["stages"]}
    assert stages[("extract", "events")]["counts"]["unchanged"] == 1
    assert stages[("transfer", "landing->inbox")]["counts"]["delivered"] == 0

    assert search("events", "청년 적금 우대금리")[0] == "청년 적금 우대금리"
    assert search("faq", "예금자보호 한도")[0] == "예금자보호 한도는 얼마인가요?"

    listed = invoke_json("runs", str(config), "--limit", "5")
    assert listed[0]["run_id"] == report["run_id"] and len(listed) == 2
    assert all(r["status"] == "ok" for r in listed)
    assert report["run_id"] in invoke("runs", str(config))


def test_stage_commands_one_by_one(config: Path) -> None:
    extracted = invoke_json("extract", str(config), "--source", "events")
    assert [s["stage"] for s in extracted["stages"]] == ["extract"]
    assert extracted["stages"][0]["counts"]["rows"] == 3

    transferred = invoke_json("transfer", str(config))
    assert transferred["stages"][0]["counts"] == {"delivered": 1, "dead": 0}

    indexed = invoke_json("index", str(config))
    by_name = {s["name"]: s for s in indexed["stages"]}
    assert by_name["events"]["counts"]["added"] == 3
    assert by_name["faq"]["status"] == "skipped"  # its source was never extracted

    out = invoke("run", str(config), "--source", "faq", "--no-index")
    assert "faq" in out and "색인" not in out.split("실행")[-1]
    assert {r["run_id"] for r in invoke_json("runs", str(config))} >= {extracted["run_id"], indexed["run_id"]}


def test_config_and_argument_errors_exit_2(config: Path, tmp_path: Path) -> None:
    out = invoke("run", str(tmp_path / "missing.yaml"), code=2)
    assert "오류" in out and "not found" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - kind: file\n    name: x\n    pathz: [a]\n", encoding="utf-8")
    assert "pathz" in invoke("run", str(bad), code=2)
    assert "nope" in invoke("run", str(config), "--source", "nope", code=2)
    assert "nope" in invoke("extract", str(config), "--source", "nope", code=2)
    assert "rabbitmq" in invoke("consume", str(config), "--broker", "kafka", "--url", "x://", code=2)


def test_a_failed_stage_exits_1_and_is_reported(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path / "p", extra_source="""
  - kind: file
    name: missing
    paths: ["/nonexistent/jisik/*.md"]
""")
    out = invoke("run", str(config), code=1)
    assert "실패" in out
    report = json.loads(runner.invoke(app, ["pipeline", "run", str(config), "--json"]).stdout.strip())
    failed = [s for s in report["stages"] if s["status"] == "failed"]
    assert [(s["stage"], s["name"]) for s in failed] == [("extract", "missing")]
    assert {s["name"] for s in report["stages"] if s["stage"] == "index"} == {"events", "faq"}
    assert "missing" in invoke("runs", str(config))


def test_watch_once_transfers_and_indexes_what_landed(config: Path) -> None:
    invoke("extract", str(config), "--source", "faq")
    out = invoke("watch", str(config), "--once")
    assert "전송한 객체 1개" in out
    assert search("faq", "민원 처리 기간")[0] == "민원 처리 기간은 얼마나 걸리나요?"
    assert "전송한 객체 0개" in invoke("watch", str(config), "--once")  # nothing new


def test_dead_letters_and_requeue(config: Path) -> None:
    invoke("extract", str(config), "--source", "events")
    pipeline = Pipeline(load_pipeline_config(config), get_settings())
    [manifest_key] = [i.key for i in pipeline.landing.list("raw/events/") if i.key.endswith(".meta.json")]
    pipeline.close()
    # a delivery that gave up (what Transfer records after its last retry) for a real landed object
    from jisik.pipeline.landing import read_manifest
    from jisik.pipeline.receipts import Receipt

    receipts = ReceiptStore(f"sqlite:///{get_settings().home.resolve() / 'pipeline' / 'receipts.sqlite3'}")
    m = read_manifest(pipeline.landing, manifest_key)
    receipts.save(Receipt(manifest_key, m.sha256, m.key, "dead", attempts=5, source="events", run_id=m.run_id,
                          last_error="Unavailable: inbox down"))
    receipts.close()

    dead = invoke_json("dead-letters", str(config))
    assert [d["manifest_key"] for d in dead] == [manifest_key] and dead[0]["attempts"] == 5
    assert "Unavailable" in invoke("dead-letters", str(config))

    out = invoke("requeue", str(config), manifest_key)
    assert "전송됨" in out
    assert invoke_json("dead-letters", str(config)) == []
    assert invoke("requeue", str(config), manifest_key, code=2)  # no longer a dead letter
    assert invoke_json("index", str(config))["status"] == "ok"
    assert search("events", "카드 연회비")[0] == "카드 연회비 면제"


def test_schedule_list_shows_the_next_runs(config: Path) -> None:
    jobs = invoke_json("schedule", str(config))
    assert [(j["id"], j["sources"], j["cron"], j["timezone"]) for j in jobs] == [
        ("schedule-0-events", ["events"], "*/10 9-18 * * 1-5", "Asia/Seoul"),
        ("schedule-1-faq", ["faq"], "30 2 * * 0", "UTC"),
    ]
    first, second = (datetime.fromisoformat(j["next_run"]) for j in jobs)
    assert first.utcoffset() == timedelta(hours=9) and first.weekday() < 5 and 9 <= first.hour <= 18
    assert first.minute % 10 == 0
    assert second.utcoffset() == timedelta(0) and (second.weekday(), second.hour, second.minute) == (6, 2, 30)
    out = invoke("schedule", str(config), "--list")
    assert "스케줄" in out and "Asia/Seoul" in out and "UTC" in out


def test_config_path_from_the_environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JISIK_PIPELINE_CONFIG", str(config))
    assert [j["id"] for j in invoke_json("schedule")] == ["schedule-0-events", "schedule-1-faq"]
    assert invoke_json("runs") == []
