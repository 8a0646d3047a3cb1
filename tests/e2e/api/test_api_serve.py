"""`jisik serve` starts the API on uvicorn (the app factory, its lifespan and logging) and stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from api_env import wait_until_ok
from chat_fixtures import free_port


def test_jisik_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "JISIK_HOME": str(tmp_path), "JISIK_API_KEYS": "k1", "JISIK_SPOOL_REPLAY_INTERVAL_S": "0"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from jisik.cli import main; main()", "serve", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/health", proc, log, timeout_s=180)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/").json()["llm"]["kind"] == "extractive"
        assert httpx.post(f"{base}/query", json={"query": "가입"}).status_code == 401
        missing = httpx.post(f"{base}/query", json={"query": "가입"}, headers={"X-API-Key": "k1"})
        assert missing.status_code == 404 and "default" in missing.json()["error"]["message_ko"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    # uvicorn shuts down gracefully, then re-raises the captured signal (exit status -15)
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in text, text
    assert "route=/query status=404" in text  # the access log line of the jisik logger
