"""Long-running `jisik pipeline` commands as real processes: a signal stops them cleanly, and a second
scheduler on the same JISIK_HOME is refused while the first one runs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_fixtures import write_pipeline


def _start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "jisik.cli", "pipeline", *args], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(encoding="utf-8", errors="replace"):
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
        time.sleep(0.1)


def test_scheduler_process_holds_the_lock_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path / "p", schedules='schedules:\n  - sources: [events]\n    cron: "0 3 * * *"\n')
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start("schedule", str(config), log=first_log)
    try:
        _wait_for(first_log, "스케줄러 실행 중", first)  # printed once the lock is held
        second = _start("schedule", str(config), log=second_log)
        assert second.wait(60) == 1
        assert "already runs" in second_log.read_text(encoding="utf-8")
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, first_log.read_text(encoding="utf-8")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "schedule-0-events" in first_log.read_text(encoding="utf-8")


def test_watch_process_stops_on_ctrl_c(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path / "p")
    log = tmp_path / "watch.log"
    proc = _start("watch", str(config), "--interval", "0.2", log=log)
    try:
        _wait_for(log, "감시 중", proc)  # printed once Ctrl-C is handled
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "전송한 객체 0개" in log.read_text(encoding="utf-8")
