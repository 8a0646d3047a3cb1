"""`jisik demo` (the README's main job) as a real process: it builds the demo knowledge base, then
serves the API and the web UI over it; Ctrl-C stops it cleanly."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from api_env import wait_until_ok
from chat_fixtures import free_port


def test_demo_builds_the_knowledge_base_and_serves_the_web_ui_and_api(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    # USE (a real offline model) keeps the demo's indexing fast; the default e5-small takes minutes here
    env = {**os.environ, "COLUMNS": "200", "JISIK_HOME": str(tmp_path / "home"), "JISIK_EMBEDDER": "use-multilingual",
           "JISIK_LLM": "extractive"}
    env.pop("JISIK_DEFAULT_COLLECTION", None)
    env.pop("JISIK_ADMIN_API_KEY", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jisik.cli", "demo", "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{base}/health/ready", proc, log, timeout_s=300)
        page = httpx.get(f"{base}/ui/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        r = httpx.post(f"{base}/query", json={"query": "예금자보호 한도는 얼마인가요?"}, timeout=60)
        body = r.json()
        assert r.status_code == 200 and body["collection"] == "demo" and body["citations"], body
        apps = httpx.get(f"{base}/api/v1/apps", timeout=10).json()
        assert {"demo", "marketing"} <= {c["name"] for c in apps["collections"]}
        key = next(line.split(": ", 1)[1].strip() for line in log.read_text(encoding="utf-8").splitlines()
                   if line.startswith("관리자 키"))
        stats = httpx.get(f"{base}/api/v1/admin/stats/overview", headers={"X-API-Key": key}, timeout=10)
        assert stats.status_code == 200 and stats.json()["questions"] >= 1  # the printed key opens the dashboard
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(encoding="utf-8")
    assert "준비됨 demo" in text and f"http://127.0.0.1:{port}/ui/" in text
