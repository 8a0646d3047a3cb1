"""Cache keys, question normalisation, ids and pseudonyms."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jisik.core.errors import InvalidInput
from jisik.core.pseudonym import Pseudonymizer, default_pseudonymizer, install_secret, is_pseudonym, keyed_hash
from jisik.pipeline.sources.tabular import Masker
from jisik.stores.conversations import ChatLog, Feedback, Message, answer_cache_key, new_id, normalise_question
from jisik.stores.conversations.records import check_id, feedback_id


def test_normalised_questions_share_a_cache_key() -> None:
    key = answer_cache_key("반품 기간은 며칠인가요?", collection="faq", index_version=7)
    for variant in ("반품  기간은 며칠인가요", " 반품 기간은 며칠인가요？ ", "반품 기간은\n며칠인가요!!"):
        assert answer_cache_key(variant, collection="faq", index_version=7) == key
    assert normalise_question("ＭＭＦ 한도?") == "mmf 한도"
    assert len(key) == 64 and int(key, 16) >= 0


def test_cache_key_changes_with_index_version_and_context() -> None:
    base = {"collection": "faq", "index_version": 7, "app": "faq", "provider": "openai", "model": "qwen3"}
    key = answer_cache_key("반품 기간", **base)  # type: ignore[arg-type]
    for field, other in (("index_version", 8), ("collection", "docs"), ("app", "bike"), ("provider", "local"),
                         ("model", "qwen2.5")):
        assert answer_cache_key("반품 기간", **{**base, field: other}) != key  # type: ignore[arg-type]
    assert answer_cache_key("반품 기간 ", **base) == key  # type: ignore[arg-type]
    # parts are length-prefixed: moving text between parts changes the key
    assert answer_cache_key("a", collection="bc", index_version=1) != answer_cache_key("ab", collection="c",
                                                                                       index_version=1)


def test_ids() -> None:
    ids = [new_id() for _ in range(200)]
    assert len(set(ids)) == 200 and all(len(i) == 24 for i in ids)
    assert ids[0][:12] <= ids[-1][:12]  # time-ordered prefix
    assert check_id("web-1:abc@x.y_z") == "web-1:abc@x.y_z"
    for bad in ("", " ", "a/b", "x" * 129, "한글"):
        with pytest.raises(InvalidInput) as err:
            check_id(bad, "세션 ID(session id)")
        assert "세션 ID" in err.value.message_ko and "Invalid" in err.value.message_en


def test_records_roundtrip_as_json() -> None:
    m = Message("assistant", "답변 [1]", citations=[{"doc_id": "d"}], meta={"latency_ms": 3}, seq=4)
    assert Message.from_dict(m.to_dict()) == m
    log = ChatLog(session_id="s", question="q", answer="a", latency_ms=5)
    assert ChatLog.from_dict(log.to_dict()) == log
    fb = Feedback(message_id="m1", rating="up", session_id="s")
    assert Feedback.from_dict({**fb.to_dict(), "unknown_future_field": 1}) == fb


def test_feedback_id_per_user_or_anonymous_session() -> None:
    assert feedback_id("m1", "u_1", "s1") == feedback_id("m1", "u_1", "s2")  # one vote per user and message
    assert feedback_id("m1", "", "s1") != feedback_id("m1", "", "s2")
    assert feedback_id("m1", "u_1", "") != feedback_id("m2", "u_1", "")


def test_pseudonymizer_is_keyed_and_idempotent() -> None:
    pz = Pseudonymizer(b"salt-a")
    p = pz("hong@example.com")
    assert is_pseudonym(p) and p == pz("hong@example.com") and pz(p) == p and pz("") == ""
    assert Pseudonymizer(b"salt-b")("hong@example.com") != p
    # the same keyed hash as the SQL source's "hash" masking, so both can share the helper
    assert p == "u_" + Masker("hash", b"salt-a")("hong@example.com")
    assert keyed_hash(b"salt-a", "hong@example.com") == p[2:]
    with pytest.raises(ValueError):
        Pseudonymizer(b"")


def test_install_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets" / "pseudonym.salt"
    first = install_secret(path, "JISIK_TEST_SALT_UNSET")
    assert len(first) == 64 and install_secret(path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    monkeypatch.setenv("JISIK_TEST_SALT", "shared-across-machines")
    assert install_secret(path, "JISIK_TEST_SALT") == b"shared-across-machines"
    monkeypatch.setenv("JISIK_PSEUDONYM_SALT", "fixed")
    assert default_pseudonymizer(tmp_path)("x") == Pseudonymizer(b"fixed")("x")
