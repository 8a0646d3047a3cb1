"""Reusable conformance suites for the conversation stores (jisik.stores.conversations).

Usage (any test module; ``tests/`` is on ``sys.path``)::

    class TestMySessions(SessionConformance):
        @pytest.fixture
        def make_sessions(self, ...):  # (ttl_s, max_messages) -> a fresh, empty SessionStore
            ...

    class TestMyLogs(ChatLogConformance):
        @pytest.fixture
        def logs(self, ...):  # -> (ChatLogStore, FeedbackStore) on one fresh, empty database
            ...

    class TestMyCache(CacheConformance):
        @pytest.fixture
        def make_cache(self, ...):  # ttl_s -> a fresh AnswerCache
            ...

Only the Protocols are used, so the embedded (SQLite / in-process) and the server (Redis,
PostgreSQL, MariaDB) implementations must pass unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jisik.core.errors import Conflict, InvalidInput, NotFound
from jisik.core.pseudonym import is_pseudonym
from jisik.stores.conversations import (
    AnswerCache,
    ChatLog,
    ChatLogStore,
    Feedback,
    FeedbackStore,
    LogQuery,
    Message,
    SessionStore,
    answer_cache_key,
    new_id,
)

MakeSessions = Callable[[float, int], SessionStore]
MakeCache = Callable[[float], AnswerCache]
T0 = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)  # 2024-03-02 00:30 in Asia/Seoul


def _msgs(*texts: str) -> list[Message]:
    return [Message(role="user" if i % 2 == 0 else "assistant", text=t) for i, t in enumerate(texts)]


class SessionConformance:
    @pytest.fixture
    def sessions(self, make_sessions: MakeSessions) -> SessionStore:
        return make_sessions(3600, 5)

    def test_create_get_roundtrip(self, sessions: SessionStore) -> None:
        s = sessions.create(user_id="kim@example.com", app="faq", collection="smartstore", title="배송 문의")
        got = sessions.get(s.session_id)
        assert (got.user_id, got.app, got.collection, got.title) == ("kim@example.com", "faq", "smartstore", "배송 문의")
        assert (got.summary, got.summary_upto, got.message_count) == ("", 0, 0)
        assert got.created_at.tzinfo is not None and abs(got.created_at - s.created_at) < timedelta(seconds=1)

    def test_unknown_and_malformed_ids(self, sessions: SessionStore) -> None:
        with pytest.raises(NotFound):
            sessions.get(new_id())
        for bad in ("", "a b", "../etc", "x" * 129, "세션"):
            with pytest.raises(InvalidInput):
                sessions.get(bad)
        with pytest.raises(NotFound):
            sessions.append(new_id(), _msgs("q"))
        with pytest.raises(NotFound):
            sessions.history(new_id())

    def test_explicit_id_conflict(self, sessions: SessionStore) -> None:
        sid = f"web-{new_id()}"
        assert sessions.create(session_id=sid).session_id == sid
        with pytest.raises(Conflict):
            sessions.create(session_id=sid)

    def test_append_numbers_and_roundtrips_messages(self, sessions: SessionStore) -> None:
        s = sessions.create(user_id="u1")
        cites = [{"doc_id": "faq-7", "chunk_id": "c1", "locator": {"page": 3}, "scores": {"dense": 0.8}}]
        stored = sessions.append(s.session_id, [
            Message("user", "반품 배송비는 누가 내나요?"),
            Message("assistant", "구매자 변심이면 구매자가 부담합니다 [1].", citations=cites,
                    meta={"provider": "extractive", "latency_ms": 12, "cache_hit": False, "tokens": {"out": 9}}),
        ])
        assert [m.seq for m in stored] == [1, 2] and all(m.session_id == s.session_id for m in stored)
        hist = sessions.history(s.session_id)
        assert [(m.role, m.text, m.seq) for m in hist] == [
            ("user", "반품 배송비는 누가 내나요?", 1), ("assistant", "구매자 변심이면 구매자가 부담합니다 [1].", 2)]
        assert hist[1].citations == cites and hist[1].meta["tokens"] == {"out": 9}
        assert hist[0].message_id == stored[0].message_id and hist[0].created_at.tzinfo is not None
        sessions.append(s.session_id, _msgs("다음 질문"))
        assert [m.seq for m in sessions.history(s.session_id, limit=2)] == [2, 3]
        got = sessions.get(s.session_id)
        assert got.message_count == 3 and got.updated_at >= s.updated_at

    def test_append_is_all_or_nothing(self, sessions: SessionStore) -> None:
        s = sessions.create()
        with pytest.raises(InvalidInput):
            sessions.append(s.session_id, [Message("user", "ok"), Message("robot", "bad")])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            sessions.append(s.session_id, [])
        with pytest.raises(InvalidInput):
            sessions.append(s.session_id, [Message("user", "x", meta={"bad": {1, 2}})])
        assert sessions.history(s.session_id) == [] and sessions.get(s.session_id).message_count == 0

    def test_history_is_trimmed_to_max_messages(self, sessions: SessionStore) -> None:
        s = sessions.create()
        for i in range(4):
            sessions.append(s.session_id, _msgs(f"q{i}", f"a{i}"))
        hist = sessions.history(s.session_id)
        assert [m.seq for m in hist] == [4, 5, 6, 7, 8] and hist[-1].text == "a3"
        assert sessions.get(s.session_id).message_count == 8

    def test_summary(self, sessions: SessionStore) -> None:
        s = sessions.create()
        sessions.append(s.session_id, _msgs("q1", "a1", "q2", "a2"))
        got = sessions.set_summary(s.session_id, "이전 대화 요약:\n- 질문: q1", 2)
        assert (got.summary, got.summary_upto) == ("이전 대화 요약:\n- 질문: q1", 2)
        assert sessions.get(s.session_id).summary_upto == 2
        with pytest.raises(InvalidInput):
            sessions.set_summary(s.session_id, "x", 9)
        with pytest.raises(NotFound):
            sessions.set_summary(new_id(), "x", 0)

    def test_delete(self, sessions: SessionStore) -> None:
        s = sessions.create(user_id="u-del")
        sessions.append(s.session_id, _msgs("q"))
        assert sessions.delete(s.session_id) is True
        assert sessions.delete(s.session_id) is False
        with pytest.raises(NotFound):
            sessions.get(s.session_id)
        with pytest.raises(NotFound):
            sessions.append(s.session_id, _msgs("q"))
        assert sessions.list_by_user("u-del").total == 0
        assert sessions.create(session_id=s.session_id).message_count == 0  # the id is free again

    def test_list_by_user(self, sessions: SessionStore) -> None:
        ids = [sessions.create(user_id="lee", title=f"t{i}").session_id for i in range(3)]
        other = sessions.create(user_id="park")
        sessions.append(ids[0], _msgs("most recent"))
        page = sessions.list_by_user("lee", limit=2)
        assert page.total == 3 and page.items[0].session_id == ids[0] and len(page.items) == 2
        rest = sessions.list_by_user("lee", limit=2, offset=2)
        assert len(rest.items) == 1
        assert {s.session_id for s in page.items + rest.items} == set(ids)
        assert [s.session_id for s in sessions.list_by_user("park").items] == [other.session_id]
        assert sessions.list_by_user("nobody").items == []
        with pytest.raises(InvalidInput):
            sessions.list_by_user("lee", limit=0)

    def test_concurrent_appends_get_distinct_numbers(self, make_sessions: MakeSessions) -> None:
        store = make_sessions(3600, 100)
        s = store.create()
        errors: list[BaseException] = []

        def worker(w: int) -> None:
            try:
                for i in range(5):
                    store.append(s.session_id, [Message("user", f"w{w}-{i}"), Message("assistant", f"a{w}-{i}")])
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        hist = store.history(s.session_id)
        assert [m.seq for m in hist] == list(range(1, 41))
        for i in range(0, 40, 2):  # each append's pair stayed together, in order
            assert hist[i].text.startswith("w") and hist[i + 1].text == "a" + hist[i].text[1:]
        assert store.get(s.session_id).message_count == 40

    def test_sessions_expire_after_idle_ttl(self, make_sessions: MakeSessions) -> None:
        store = make_sessions(0.3, 10)
        s = store.create(user_id="ttl-user")
        store.append(s.session_id, _msgs("q"))
        assert store.list_by_user("ttl-user").total == 1
        time.sleep(0.45)
        with pytest.raises(NotFound):
            store.get(s.session_id)
        with pytest.raises(NotFound):
            store.append(s.session_id, _msgs("late"))
        assert store.list_by_user("ttl-user").items == []
        assert store.create(session_id=s.session_id).message_count == 0  # an expired id can be reused


def _log(i: int, **kw: object) -> ChatLog:
    base: dict[str, object] = {
        "session_id": f"s{i % 4}", "question": f"질문 {i}", "answer": f"답변 {i}", "user_id": f"user{i % 3}",
        "app": "faq", "collection": "smartstore", "latency_ms": 100 * (i + 1), "provider": "extractive",
        "created_at": T0 + timedelta(hours=i),
    }
    base.update(kw)
    return ChatLog(**base)  # type: ignore[arg-type]


class ChatLogConformance:
    @pytest.fixture
    def chatlogs(self, logs: tuple[ChatLogStore, FeedbackStore]) -> ChatLogStore:
        return logs[0]

    @pytest.fixture
    def feedback(self, logs: tuple[ChatLogStore, FeedbackStore]) -> FeedbackStore:
        return logs[1]

    def test_record_get_pseudonymises_and_is_idempotent(self, chatlogs: ChatLogStore) -> None:
        log = _log(0, user_id="hong.gildong@example.com", question="예금자 보호 한도는?", answer="5천만 원입니다.")
        stored = chatlogs.record(log)
        assert is_pseudonym(stored.user_id) and "hong" not in stored.user_id
        got = chatlogs.get(log.log_id)
        assert (got.user_id, got.question, got.answer, got.latency_ms) == (stored.user_id, "예금자 보호 한도는?",
                                                                           "5천만 원입니다.", 100)
        assert got.created_at == T0 and got.message_id == log.log_id and got.answered and not got.off_topic
        chatlogs.record(log)
        assert chatlogs.record_many([log, _log(1)]) == 1
        assert chatlogs.list(LogQuery()).total == 2
        with pytest.raises(NotFound):
            chatlogs.get(new_id())
        with pytest.raises(InvalidInput):
            chatlogs.record(_log(2, latency_ms=-1))

    def test_list_filters_and_paging(self, chatlogs: ChatLogStore) -> None:
        logs = [_log(i) for i in range(9)]
        logs.append(_log(9, app="finance", question="적금 금리 100% 가능?", answered=False, off_topic=True))
        chatlogs.record_many(logs)
        page = chatlogs.list(LogQuery(limit=4))
        assert page.total == 10 and [x.log_id for x in page.items] == [x.log_id for x in logs[::-1][:4]]
        assert [x.log_id for x in chatlogs.list(LogQuery(limit=4, offset=8)).items] == [logs[1].log_id, logs[0].log_id]
        assert chatlogs.list(LogQuery(user_id="user1")).total == 3
        pseudonym = chatlogs.get(logs[1].log_id).user_id
        assert chatlogs.list(LogQuery(user_id=pseudonym)).total == 3  # the pseudonym an admin saw works too
        assert chatlogs.list(LogQuery(app="finance")).items[0].log_id == logs[9].log_id
        q = LogQuery(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5))
        assert {x.log_id for x in chatlogs.list(q).items} == {logs[i].log_id for i in (2, 3, 4)}
        assert chatlogs.list(LogQuery(text="질문 7")).total == 1
        assert chatlogs.list(LogQuery(text="100%")).total == 1  # % is literal, not a wildcard
        assert chatlogs.list(LogQuery(text="답변")).total == 10
        assert chatlogs.list(LogQuery(answered=False)).total == 1 and chatlogs.list(LogQuery(off_topic=True)).total == 1
        assert chatlogs.list(LogQuery(session_id="s1")).total == 3
        with pytest.raises(InvalidInput):
            chatlogs.list(LogQuery(limit=0))

    def _dataset(self, chatlogs: ChatLogStore, feedback: FeedbackStore) -> list[ChatLog]:
        logs = [_log(i, answered=i % 4 != 0, off_topic=i == 9, collection="c2" if i >= 5 else "smartstore")
                for i in range(10)]
        logs.append(_log(10, user_id="", session_id="anon", app="bike", latency_ms=None))
        chatlogs.record_many(logs)
        feedback.record(Feedback(message_id=logs[0].message_id or logs[0].log_id, rating="up", user_id="user0",
                                 comment="정확해요", created_at=T0))
        feedback.record(Feedback(message_id=logs[5].log_id, rating="down", user_id="user2",
                                 created_at=T0 + timedelta(hours=9)))
        feedback.record(Feedback(message_id=logs[6].log_id, rating="down", session_id="anon",
                                 created_at=T0 + timedelta(hours=10)))
        return logs

    def test_overview(self, chatlogs: ChatLogStore, feedback: FeedbackStore) -> None:
        self._dataset(chatlogs, feedback)
        o = chatlogs.overview()
        assert (o.questions, o.users, o.sessions, o.answered, o.off_topic) == (11, 3, 5, 8, 1)
        assert o.answered_rate == pytest.approx(8 / 11) and o.off_topic_rate == pytest.approx(1 / 11)
        assert o.avg_latency_ms == pytest.approx(550.0) and o.p95_latency_ms == 1000
        assert (o.feedback_up, o.feedback_down) == (1, 2)
        f = chatlogs.overview(app="faq", since=T0 + timedelta(hours=1))
        assert (f.questions, f.feedback_up, f.feedback_down) == (9, 0, 2)
        assert f.p95_latency_ms == 1000 and f.avg_latency_ms == pytest.approx(600.0)
        empty = chatlogs.overview(app="none")
        assert (empty.questions, empty.answered_rate, empty.avg_latency_ms, empty.p95_latency_ms) == (0, 0.0, None, None)

    def test_trends_by_day_and_hour_in_a_time_zone(self, chatlogs: ChatLogStore, feedback: FeedbackStore) -> None:
        self._dataset(chatlogs, feedback)
        utc = chatlogs.trends(since=T0.replace(hour=0, minute=0), until=T0.replace(hour=0, minute=0) + timedelta(days=3))
        assert [(p.start.date().isoformat(), p.questions) for p in utc] == [
            ("2024-03-01", 9), ("2024-03-02", 2), ("2024-03-03", 0)]
        assert [p.conversations for p in utc] == [4, 2, 0]  # s0-s3 on the 1st; s1 and "anon" on the 2nd
        seoul = ZoneInfo("Asia/Seoul")
        kst = chatlogs.trends(since=datetime(2024, 3, 2, tzinfo=seoul), until=datetime(2024, 3, 4, tzinfo=seoul),
                              tz="Asia/Seoul")
        assert [(p.start.isoformat(), p.questions, p.answered, p.off_topic) for p in kst] == [
            ("2024-03-02T00:00:00+09:00", 11, 8, 1), ("2024-03-03T00:00:00+09:00", 0, 0, 0)]
        assert kst[0].avg_latency_ms == pytest.approx(550.0) and kst[1].avg_latency_ms is None
        assert [p.conversations for p in kst] == [5, 0]  # a session active in several hours counts once a day
        hours = chatlogs.trends(since=T0, until=T0 + timedelta(hours=3), bucket="hour", app="faq")
        assert [(p.start.hour, p.questions) for p in hours] == [(15, 1), (16, 1), (17, 1), (18, 0)]  # 18:30 excluded
        with pytest.raises(InvalidInput):
            chatlogs.trends(since=T0, until=T0, bucket="day")
        with pytest.raises(InvalidInput):
            chatlogs.trends(since=T0, until=T0 + timedelta(days=1), tz="Mars/Olympus")

    def test_feedback_stats(self, chatlogs: ChatLogStore, feedback: FeedbackStore) -> None:
        self._dataset(chatlogs, feedback)
        st = chatlogs.feedback_stats(tz="Asia/Seoul")
        assert (st.up, st.down, st.with_comment) == (1, 2, 1) and st.up_rate == pytest.approx(1 / 3)
        assert st.by_day == [("2024-03-02", 1, 2)]
        assert st.by_collection == [("c2", 0, 2), ("smartstore", 1, 0)]
        assert chatlogs.feedback_stats(app="bike").up == 0

    def test_top_and_unanswered_questions(self, chatlogs: ChatLogStore) -> None:
        asked = ["예금자 보호 한도는?", "예금자  보호 한도는", "ＭＭＦ도 보호되나요?", "mmf도 보호되나요", "예금자 보호 한도는?"]
        chatlogs.record_many([_log(i, question=q, answered=i != 2) for i, q in enumerate(asked)])
        top = chatlogs.top_questions()
        assert [(t.count, t.answered) for t in top] == [(3, 3), (2, 1)]
        assert top[0].question.startswith("예금자") and top[0].last_at == T0 + timedelta(hours=4)
        unanswered = chatlogs.top_questions(kind="unanswered")
        assert [(t.count, t.question) for t in unanswered] == [(1, "ＭＭＦ도 보호되나요?")]
        assert chatlogs.top_questions(kind="off_topic") == []
        assert len(chatlogs.top_questions(limit=1)) == 1

    def test_users(self, chatlogs: ChatLogStore, feedback: FeedbackStore) -> None:
        self._dataset(chatlogs, feedback)
        page = chatlogs.users()
        assert page.total == 3 and all(is_pseudonym(u.user_id) for u in page.items)
        assert [u.questions for u in page.items] == [4, 3, 3]
        first = page.items[0]
        assert (first.sessions, first.answered, first.off_topic, first.feedback_up) == (4, 3, 1, 1)
        assert (first.first_at, first.last_at) == (T0, T0 + timedelta(hours=9))
        assert sum(u.feedback_down for u in page.items) == 1  # the anonymous session's vote has no user
        assert len(chatlogs.users(limit=1, offset=2).items) == 1
        logs_of_first = chatlogs.list(LogQuery(user_id=first.user_id))
        assert logs_of_first.total == 4


class FeedbackConformance:
    @pytest.fixture
    def feedback(self, logs: tuple[ChatLogStore, FeedbackStore]) -> FeedbackStore:
        return logs[1]

    def test_one_per_message_and_user(self, feedback: FeedbackStore) -> None:
        mid = new_id()
        first = feedback.record(Feedback(message_id=mid, rating="up", user_id="choi", session_id="s1",
                                         citations=[{"doc_id": "d1"}], created_at=T0))
        assert is_pseudonym(first.user_id) and first.feedback_id
        again = feedback.record(Feedback(message_id=mid, rating="down", user_id="choi", comment="틀렸어요",
                                         session_id="s1", created_at=T0 + timedelta(minutes=1)))
        assert again.feedback_id == first.feedback_id
        got = feedback.get(first.feedback_id)
        assert (got.rating, got.comment, got.citations) == ("down", "틀렸어요", [])
        stale = Feedback(message_id=mid, rating="up", user_id="choi", session_id="s1", created_at=T0)
        feedback.record(stale)  # an older record (a late replay) does not overwrite the newer one
        assert feedback.get(first.feedback_id).rating == "down"
        feedback.record(Feedback(message_id=mid, rating="up", session_id="anon-1"))
        feedback.record(Feedback(message_id=mid, rating="up", session_id="anon-2"))
        assert feedback.list(message_id=mid).total == 3
        assert feedback.record_many([stale, Feedback(message_id=mid, rating="up", user_id="jung")]) == 1

    def test_list_filters(self, feedback: FeedbackStore) -> None:
        a, b = new_id(), new_id()
        feedback.record(Feedback(message_id=a, rating="up", user_id="u1", created_at=T0))
        feedback.record(Feedback(message_id=b, rating="down", user_id="u1", created_at=T0 + timedelta(hours=1)))
        feedback.record(Feedback(message_id=b, rating="down", user_id="u2", session_id="s9",
                                 created_at=T0 + timedelta(hours=2)))
        assert [f.message_id for f in feedback.list(user_id="u1").items] == [b, a]
        assert feedback.list(rating="down").total == 2 and feedback.list(session_id="s9").total == 1
        assert feedback.list(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)).total == 1
        assert len(feedback.list(limit=1, offset=1).items) == 1

    def test_invalid_feedback(self, feedback: FeedbackStore) -> None:
        with pytest.raises(InvalidInput):
            feedback.record(Feedback(message_id=new_id(), rating="meh", user_id="u"))  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            feedback.record(Feedback(message_id=new_id(), rating="up"))  # no user, no session
        with pytest.raises(InvalidInput):
            feedback.record(Feedback(message_id="bad id", rating="up", user_id="u"))
        with pytest.raises(NotFound):
            feedback.get(new_id())


class CacheConformance:
    def test_set_get_delete(self, make_cache: MakeCache) -> None:
        cache = make_cache(60)
        key = answer_cache_key("반품 기간은?", collection="faq", index_version=3)
        assert cache.get(key) is None
        value = {"answer": "7일 이내입니다 [1].", "citations": [{"doc_id": "d"}], "provider": "extractive"}
        cache.set(key, value)
        assert cache.get(key) == value
        cache.delete(key)
        assert cache.get(key) is None
        cache.delete(key)  # missing: no error

    def test_ttl(self, make_cache: MakeCache) -> None:
        cache = make_cache(60)
        short, never = new_id(), new_id()
        cache.set(short, {"a": 1}, ttl_s=0.2)
        cache.set(never, {"a": 2}, ttl_s=0)
        assert cache.get(short) == {"a": 1} and cache.get(never) is None
        time.sleep(0.3)
        assert cache.get(short) is None

    def test_invalid(self, make_cache: MakeCache) -> None:
        cache = make_cache(60)
        with pytest.raises(InvalidInput):
            cache.set("bad key", {"a": 1})
        with pytest.raises(InvalidInput):
            cache.set(new_id(), ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            cache.set(new_id(), {"nan": float("nan")})
