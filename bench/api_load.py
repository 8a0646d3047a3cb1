"""Load test of the API: POST /query with 16 concurrent clients, and time to the first SSE event.

Starts the real server (uvicorn, one worker, extractive provider) in a subprocess over the
Smartstore FAQ (2,717 entries, indexed once into bench/.cache/api_load/index; passage embeddings
come from the shared embedding cache when the other benchmarks ran). Workloads, each for
``--seconds`` with ``--clients`` httpx clients in one asyncio process:

* ``cached``   — 120 paraphrased questions repeated (FAQ traffic repeats): answer-cache hits;
* ``warm``     — the same questions with ``use_cache: false``: retrieval + extractive answer + chat
                 log per request, query embeddings from the embedder's cache;
* ``cold``     — every request a question never seen (FAQ titles), ``use_cache: false``: the full
                 path including the e5-small query embedding.

Then time to the first SSE event (``retrieval``) and to the first ``token`` of
/api/v1/chat/stream, sequentially, for unseen questions. The load generator shares the machine's
2 cores with the server. Results: bench/results/api_load.json (bench/report.py renders them).

    python bench/api_load.py [--seconds 20] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from common import CACHE, ROOT, datasets, write_result

COLLECTION = "faq"
WORK = CACHE / "api_load"


def build_index(corpus: Path) -> tuple[str, int]:
    """The FAQ collection in its own index (embeddings from the shared cache under JISIK_HOME)."""
    from jisik.core.settings import Settings
    from jisik.eval.autorag import load_corpus
    from jisik.runtime import Runtime
    from jisik.text.chunking import make_chunker

    index_url = (WORK / "index").resolve().as_uri()
    home = Path(os.environ.get("JISIK_HOME", CACHE / "home"))
    rt = Runtime(Settings(home=home, index_url=index_url))
    try:
        rt.indexer(make_chunker("whole")).index(COLLECTION, load_corpus(corpus), sync=True, note="api_load")
        return index_url, rt.store.get_collection(COLLECTION).chunks
    finally:
        rt.close()


def questions(corpus: Path, qa: Path) -> tuple[list[str], list[str]]:
    repeat = [json.loads(line)["query"] for line in qa.open(encoding="utf-8") if line.strip()]
    titles = []
    for line in corpus.open(encoding="utf-8"):
        if line.strip():
            titles.append(json.loads(line)["contents"].split("\n", 1)[0].strip())
    return repeat, list(dict.fromkeys(t for t in titles if t))


def start_server(index_url: str, port: int) -> subprocess.Popen[bytes]:
    home = WORK / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "JISIK_HOME": str(home), "JISIK_INDEX_URL": index_url, "JISIK_DEFAULT_COLLECTION": COLLECTION,
           "JISIK_RATE_LIMIT_PER_MIN": "0", "JISIK_LLM": "extractive", "JISIK_LOG_LEVEL": "WARNING",
           "JISIK_SPOOL_REPLAY_INTERVAL_S": "0"}
    log = (WORK / "server.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "jisik.api.app:serve_app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: see {WORK / 'server.log'}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))], 2)  # nearest rank


async def load(url: str, seconds: float, clients: int, make_body: Any) -> dict[str, Any]:
    """Closed loop: ``clients`` coroutines, each sending its next request when the last one returned.

    The client is aiohttp, not httpx: it shares the 2 cores with the server, and httpx spent about as
    much CPU per request as the server did, so the load generator itself capped the rate."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cached = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def client(s: aiohttp.ClientSession) -> None:
        nonlocal cached
        while time.perf_counter() < deadline:
            body = make_body(next(counter))
            t = time.perf_counter()
            try:
                async with s.post(f"{url}/query", json=body) as r:
                    data = await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif json.loads(data).get("cached"):
                cached += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:
        started = time.perf_counter()
        await asyncio.gather(*(client(s) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors, "cache_hits": cached, "seconds": round(elapsed, 1),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "p99_ms": pct(latencies, 99), "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
            "client": f"aiohttp {aiohttp.__version__}"}


def first_events(url: str, items: list[str]) -> dict[str, Any]:
    """Sequential SSE requests: ms to the first event (retrieval) and to the first token, and the
    server's own split of each answer (retrieval vs. generation by the extractive provider)."""
    first, token, retrieval, generation = [], [], [], []
    with httpx.Client(base_url=url, timeout=60) as c:
        for q in items:
            t = time.perf_counter()
            seen: set[str] = set()
            with c.stream("POST", "/api/v1/chat/stream", json={"question": q, "use_cache": False}) as r:
                event = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        now = (time.perf_counter() - t) * 1000
                        if not seen:
                            first.append(now)
                        if event == "token" and "token" not in seen:
                            token.append(now)
                        seen.add(event)
                    elif line.startswith("data: ") and event == "done":
                        timings = json.loads(line[6:])["timings_ms"]
                        retrieval.append(timings.get("retrieval", 0.0))
                        generation.append(timings.get("generation", 0.0))
    return {"requests": len(items), "first_event_p50_ms": pct(first, 50), "first_event_p95_ms": pct(first, 95),
            "first_token_p50_ms": pct(token, 50), "first_token_p95_ms": pct(token, 95),
            "retrieval_p50_ms": pct(retrieval, 50), "generation_p50_ms": pct(generation, 50)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--port", type=int, default=8931)
    args = ap.parse_args()
    ds = datasets()["faq"]
    load_start = round(os.getloadavg()[0], 2)
    WORK.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    index_url, chunks = build_index(ds.corpus)
    print(f"index ready ({chunks} chunks, {time.perf_counter() - t:.0f} s)", flush=True)
    repeat, unseen = questions(ds.corpus, ds.qa)
    url = f"http://127.0.0.1:{args.port}"
    proc = start_server(index_url, args.port)
    try:
        wait_ready(url, proc)
        results: dict[str, Any] = {}
        # warm-up: every repeated question once (fills the answer cache and the query-embedding cache)
        for q in repeat:
            httpx.post(f"{url}/query", json={"query": q}, timeout=60)
        workloads = {
            "cached": lambda i: {"query": repeat[i % len(repeat)]},
            "warm": lambda i: {"query": repeat[i % len(repeat)], "use_cache": False},
            "cold": lambda i: {"query": unseen[(i + 200) % len(unseen)], "use_cache": False},
        }
        for name, body in workloads.items():
            cpu = cpu_seconds(proc.pid)
            results[name] = asyncio.run(load(url, args.seconds, args.clients, body))
            # the server's own CPU per request: comparable across runs even when the machine is busy
            used = cpu_seconds(proc.pid) - cpu
            results[name]["server_cpu_ms_per_request"] = round(used * 1000 / max(1, results[name]["requests"]), 2)
            print(name, results[name], flush=True)
        sse = first_events(url, unseen[:30])
        print("sse", sse, flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    path = write_result("api_load", {
        "server": {"workers": 1, "llm": "extractive", "embedder": os.environ.get("JISIK_EMBEDDER", "e5-small"),
                   "collection_chunks": chunks, "stores": "embedded (SQLite sessions/chat logs, in-process cache)"},
        "clients": args.clients, "seconds": args.seconds, "workloads": results, "sse": sse,
        "target": "POST /query p95 <= 50 ms at 16 concurrent clients (issue #4)",
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
    })
    print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
