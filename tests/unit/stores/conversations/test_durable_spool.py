"""The spool keeps chat logs and feedback while their database is down and replays them once.

"Down" is real: the SQLite database path is a directory (SQLite cannot open it); removing the
directory brings the database back at the same path.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from jisik.core.errors import Unavailable
from jisik.core.pseudonym import Pseudonymizer
from jisik.stores.conversations import ChatLog, Feedback, LogQuery
from jisik.stores.conversations.durable import DurableChatLog, DurableFeedback, Spool
from jisik.stores.conversations.sql_chatlog import SqlChatLogStore, SqlFeedbackStore
from jisik.stores.conversations.sql_db import ConversationDb

PZ = Pseudonymizer(b"spool-test")


def test_append_and_drain(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "logs")
    assert not spool.pending() and spool.drain(lambda rows: None) == 0
    spool.append([{"i": 1}, {"i": 2}])
    spool.append([{"i": 3}])
    assert spool.pending()
    assert (tmp_path / "spool" / "logs.jsonl").stat().st_mode & 0o777 == 0o600
    got: list[dict[str, Any]] = []
    assert spool.drain(got.extend, batch=2) == 3
    assert [r["i"] for r in got] == [1, 2, 3] and not spool.pending()


def test_failed_drain_keeps_records_for_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "logs")
    spool.append([{"i": 1}])

    def down(rows: list[dict[str, Any]]) -> None:
        raise Unavailable("DB 중단", "DB down")

    with pytest.raises(Unavailable):
        spool.drain(down)
    spool.append([{"i": 2}])  # new records go to a fresh file meanwhile
    got: list[dict[str, Any]] = []
    assert spool.drain(got.extend) == 2 and sorted(r["i"] for r in got) == [1, 2]
    assert not spool.pending()


def test_torn_and_bad_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "logs")
    spool.append([{"i": 1}])
    with open(spool.path, "ab") as f:
        f.write(b'{"i": 2, "trunc')  # a process died mid-write
    spool.append([{"i": 3}])  # starts on a new line, so it is not glued to the torn one
    got: list[dict[str, Any]] = []
    assert spool.drain(got.extend) == 2 and [r["i"] for r in got] == [1, 3]
    assert (tmp_path / "logs.bad").read_bytes() == b'{"i": 2, "trunc\n'  # kept aside, not lost


def test_concurrent_appenders_threads_and_processes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "logs")
    code = ("import sys; from pathlib import Path; from jisik.stores.conversations.durable import Spool\n"
            "s = Spool(Path(sys.argv[1]), 'logs')\n"
            "for i in range(100): s.append([{'p': 'proc', 'i': i, 'pad': 'x' * 5000}])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    threads = [threading.Thread(target=lambda t=t: [spool.append([{"p": t, "i": i, "pad": "y" * 5000}])
                                                    for i in range(50)]) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.wait(timeout=60) == 0
    lines = spool.path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line whole
    assert len(rows) == 250 and sum(r["p"] == "proc" for r in rows) == 100


def _down_db(tmp_path: Path) -> tuple[ConversationDb, Path]:
    path = tmp_path / "conv.sqlite3"
    path.mkdir()
    return ConversationDb(f"sqlite:///{path}"), path


class CountingStore(SqlChatLogStore):
    """The real SQLite store, counting write attempts (to see the circuit breaker skip a dead store)."""

    attempts = 0

    def record(self, log_: ChatLog) -> ChatLog:
        self.attempts += 1
        return super().record(log_)


def test_durable_chat_log_spools_then_drains_on_next_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db, path = _down_db(tmp_path)
    store = CountingStore(db, PZ)
    logs = DurableChatLog(store, Spool(tmp_path / "spool", "chat_logs"), PZ, retry_after_s=60)
    with caplog.at_level(logging.DEBUG, logger="jisik"):
        a = logs.record(ChatLog(session_id="s", question="주민번호 900101-1234567 알려줘", answer="a",
                                user_id="hong@example.com"))
        b = logs.record(ChatLog(session_id="s", question="q2", answer="a", user_id="hong@example.com"))
    assert store.attempts == 1  # the second write did not wait on the dead store
    assert logs.spool.pending() and a.user_id == b.user_id == PZ("hong@example.com")
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "900101" not in logged and "hong" not in logged and "spooled" in logged
    with pytest.raises(Unavailable):
        logs.list(LogQuery())

    path.rmdir()  # the database is back
    logs.retry_after_s = 0
    logs._down_until = 0.0
    c = logs.record(ChatLog(session_id="s", question="q3", answer="a"))
    assert not logs.spool.pending()
    assert {x.log_id for x in logs.list(LogQuery()).items} == {a.log_id, b.log_id, c.log_id}
    assert logs.replay() == 0


def test_durable_feedback_newest_vote_wins_after_replay(tmp_path: Path) -> None:
    db, path = _down_db(tmp_path)
    fb = DurableFeedback(SqlFeedbackStore(db, PZ), Spool(tmp_path / "spool", "feedback"), PZ, retry_after_s=0)
    first = fb.record(Feedback(message_id="m1", rating="up", user_id="kim"))
    path.rmdir()
    second = fb.record(Feedback(message_id="m1", rating="down", user_id="kim"))  # stored, then the spool drains
    assert first.feedback_id == second.feedback_id and not fb.spool.pending()
    assert fb.get(first.feedback_id).rating == "down"  # the older spooled vote did not overwrite it
    assert fb.list().total == 1
