"""FAQ ingestion (idempotent, with the prototype file), the default path rules, the CLI command,
and the registered app."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faq_fixtures import FaqKB
from jisik.apps.base import APPS, get_app
from jisik.apps.faq import FAQ_REFUSAL, FaqOffTopicFilter, RetrievalSuggester, faq_app, ingest_faq
from jisik.apps.faq import ingest as ingest_mod
from jisik.apps.faq.prototypes import load_prototypes, prototypes_path
from jisik.core.errors import CorruptData, NotFound
from jisik.core.settings import Settings, get_settings
from jisik.runtime import Runtime


def test_ingest_indexes_every_entry_once_with_prototypes(faq_kb: FaqKB) -> None:
    r = faq_kb.report
    n = len(faq_kb.pairs)
    assert r.index.documents_seen == n and r.index.added == n and r.prototypes == n and r.prototypes_rebuilt
    info = faq_kb.runtime.store.get_collection("faq")
    assert info.documents == n and info.chunks == n  # one chunk per entry (answers here are short)
    protos = load_prototypes(Path(r.prototypes_path))
    assert protos is not None and protos.vectors.shape == (n, faq_kb.runtime.embedder.dim)
    assert protos.embedder_id == faq_kb.runtime.embedder.model_id
    assert abs(float((protos.vectors ** 2).sum(1).mean()) - 1.0) < 1e-4

    again = ingest_faq(faq_kb.runtime, faq_kb.pkl)  # idempotent: nothing indexed, no new version
    assert again.index.unchanged == n and again.index.added == again.index.updated == again.index.deleted == 0
    assert not again.prototypes_rebuilt
    assert faq_kb.runtime.store.get_collection("faq").version == info.version


def test_entries_removed_from_the_pickle_are_deleted(faq_kb: FaqKB, tmp_path: Path) -> None:
    few = dict(list(faq_kb.pairs.items())[:4])
    pkl = tmp_path / "few.pkl"
    pkl.write_bytes(pickle.dumps(few))
    rt = Runtime(Settings(home=tmp_path / "home"))
    try:
        assert ingest_faq(rt, pkl, "faq-small").index.added == 4
        pkl.write_bytes(pickle.dumps(dict(list(few.items())[:3])))
        out = ingest_faq(rt, pkl, "faq-small")
        assert (out.index.deleted, out.index.unchanged, out.prototypes, out.prototypes_rebuilt) == (1, 3, 3, True)
        assert rt.store.get_collection("faq-small").documents == 3
    finally:
        rt.close()


def test_default_path_env_and_shared_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JISIK_FAQ_PKL", str(tmp_path / "mine.pkl"))
    assert ingest_mod.default_faq_path() == tmp_path / "mine.pkl"
    monkeypatch.delenv("JISIK_FAQ_PKL")
    shared = tmp_path / "shared"
    (shared / "smartstore_faq").mkdir(parents=True)
    (shared / "smartstore_faq" / "final_result.pkl").write_bytes(pickle.dumps({"q": "a"}))
    monkeypatch.setenv("JISIK_SHARED_DATA", str(shared))
    assert ingest_mod.default_faq_path() == shared / "smartstore_faq" / "final_result.pkl"
    monkeypatch.setenv("JISIK_SHARED_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(ingest_mod, "_REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound) as exc:
        ingest_mod.default_faq_path()
    assert "JISIK_FAQ_PKL" in (exc.value.hint or "")


def test_cli_faq_ingest_json(faq_kb: FaqKB, monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.cli import app

    monkeypatch.setenv("JISIK_HOME", str(faq_kb.runtime.settings.home))
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["faq", "ingest", str(faq_kb.pkl), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["collection"] == "faq" and out["unchanged"] == len(faq_kb.pairs) and out["prototypes_rebuilt"] is False
    missing = CliRunner().invoke(app, ["faq", "ingest", str(faq_kb.pkl.with_name("none.pkl"))])
    assert missing.exit_code == 2 and "파일이 없습니다" in missing.output


def test_corrupt_prototype_file_is_a_clear_error(tmp_path: Path) -> None:
    path = prototypes_path(tmp_path, "faq")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz file")
    with pytest.raises(CorruptData):
        load_prototypes(path)
    assert load_prototypes(tmp_path / "absent.npz") is None


def test_faq_app_is_registered() -> None:
    assert "faq" in APPS
    app = get_app("faq")
    assert (app.name, app.collection, app.prompt) == ("faq", "faq", "faq")
    assert isinstance(app.offtopic, FaqOffTopicFilter) and isinstance(app.suggester, RetrievalSuggester)
    assert app.refusal == FAQ_REFUSAL and "스마트스토어" in app.refusal and "죄송합니다" in app.refusal
    assert app.title and app.description and len(app.examples) >= 3 and 1 <= app.top_k <= 10
    other = faq_app(Settings(embedder="use-multilingual"))  # not calibrated: the gate stays open, and says so
    assert other.offtopic is not None
    decision = other.offtopic.check("김치찌개 끓이는 법", [])
    assert decision.on_topic and "uncalibrated" in decision.reason
