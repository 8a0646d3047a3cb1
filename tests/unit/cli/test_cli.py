"""The `jisik` CLI end to end on small real data (real Kiwi, real e5-small)."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jisik.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def faq_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "faq.jsonl"
    rows = [
        {"question": "[정산] 정산 계좌를 변경하고 싶어요.", "answer": "판매자 정보 메뉴에서 정산 계좌를 변경할 수 있습니다."},
        {"question": "[반품] 반품 배송비는 누가 내나요?", "answer": "구매자 단순 변심이면 구매자가 반품 배송비를 냅니다."},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    return path


def test_ingest_search_ask_and_index_commands(faq_jsonl: Path) -> None:
    out = json.loads(invoke("ingest", str(faq_jsonl), "-c", "faq", "--json").strip().splitlines()[-1])
    assert out["added"] == 2 and out["version"] == 1
    hits = json.loads(invoke("search", "정산 계좌 바꾸기", "-c", "faq", "--json").strip().splitlines()[-1])
    assert hits["hits"][0]["citation"]["title"] == "[정산] 정산 계좌를 변경하고 싶어요."
    answer = json.loads(invoke("ask", "정산 계좌는 어디서 바꿔요?", "-c", "faq", "--json").strip().splitlines()[-1])
    assert answer["grounded"] and "[1]" in answer["answer"] and answer["provider"] == "extractive"
    assert "faq" in invoke("index", "list")
    [listed] = json.loads(invoke("index", "list", "--json").strip().splitlines()[-1])
    assert listed["name"] == "faq" and listed["documents"] == 2 and listed["version"] == 1
    invoke("ingest", str(faq_jsonl), "-c", "faq")  # unchanged: no new version
    assert "current" in invoke("index", "versions", "faq")
    assert "스냅샷 재구축" in invoke("index", "rebuild", "faq")


def test_errors_are_clear_and_exit_2(faq_jsonl: Path) -> None:
    invoke("ingest", str(faq_jsonl), "-c", "faq")
    for args in (["search", "", "-c", "faq"], ["search", "가입", "-c", "없는컬렉션"], ["search", "가입", "-c", "nope"],
                 ["search", "가입", "-c", "faq", "--filter", "{bad json"], ["index", "rollback", "faq", "9"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "오류" in result.output


def test_eval_prints_metrics_json_last(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.parquet"
    qa = tmp_path / "qa.parquet"
    pq.write_table(pa.table({
        "doc_id": ["a - f.pdf - 1", "a - f.pdf - 2", "b - g.pdf - 1"],
        "contents": ["예금자보호 한도는 1억 원입니다.", "정기적금 중도해지 이율 안내", "신용카드 연회비 면제 조건"],
        "metadata": [{"last_modified_datetime": "2024"}] * 3,
    }), corpus)
    pq.write_table(pa.table({
        "qid": ["q1", "q2"], "query": ["예금자보호 한도가 얼마예요?", "카드 연회비 안 내려면?"],
        "retrieval_gt": [[["a - f.pdf - 1"]], [["b - g.pdf - 1"]]], "generation_gt": [["1억 원"], ["조건"]],
    }), qa)
    last = invoke("eval", "--qa", str(qa), "--corpus", str(corpus), "--json").strip().splitlines()[-1]
    metrics = json.loads(last)
    assert list(metrics)[:5] == ["recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"]
    assert metrics["recall@1"] == 1.0
    again = json.loads(invoke("eval", "--qa", str(qa), "--corpus", str(corpus), "--json").strip().splitlines()[-1])
    assert again["collection"] == metrics["collection"]  # scratch index reused (content hash)


def test_demo_builds_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo with the default e5-small takes minutes to embed on 2 cores; the USE embedder
    # (also a real offline model) keeps this end-to-end check fast
    from jisik.core.settings import get_settings

    monkeypatch.setenv("JISIK_EMBEDDER", "use-multilingual")
    get_settings.cache_clear()
    out = invoke("demo", "--ask", "예금자보호 한도는 얼마인가요?")  # answers and exits (no server)
    assert "준비됨" in out and "[1]" in out


def test_search_routes_to_a_described_collection(faq_jsonl: Path, tmp_path: Path) -> None:
    invoke("ingest", str(faq_jsonl), "-c", "faq")
    law = tmp_path / "law.jsonl"
    law.write_text(json.dumps({"id": "p1", "text": "보험금 청구 소송에서 대법원은 보험자의 설명의무 위반을 인정하였다."},
                              ensure_ascii=False), "utf-8")
    invoke("ingest", str(law), "-c", "law")
    result = runner.invoke(app, ["search", "반품 배송비", "-c", "auto"])
    assert result.exit_code == 2 and "index describe" in result.output  # no profiles yet: says what to do
    invoke("index", "describe", "faq", "-d", "스마트스토어 판매자 FAQ: 정산, 반품, 배송", "-k", "정산", "-k", "반품")
    invoke("index", "describe", "law", "-d", "대법원 판례: 보험, 손해배상 소송", "-k", "판례", "-k", "소송")
    out = json.loads(invoke("search", "반품하면 배송비는 누가 내요?", "-c", "auto", "--json").strip().splitlines()[-1])
    assert out["collection"] == "faq"
    out = json.loads(invoke("search", "보험 소송 판례 알려줘", "-c", "auto", "--json").strip().splitlines()[-1])
    assert out["collection"] == "law" and out["hits"][0]["citation"]["doc_id"] == "p1"
    assert runner.invoke(app, ["index", "describe", "nope", "-d", "x"]).exit_code == 2
