"""OpenAICompatibleEmbedder against a real local HTTP server (stdlib, in a thread)."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np
import pytest

from http_fixtures import send_json, serve_local
from jisik.core.errors import InvalidInput, Unavailable
from jisik.models import OpenAICompatibleEmbedder

DIM = 8


def fake_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b - 127.5 for b in digest[:DIM]]  # deliberately not normalised


class FakeServer:
    """Serves POST /v1/embeddings; ``script`` holds status codes to answer before succeeding."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/embeddings":
                    return send_json(self, 404, {"error": {"message": "no such route"}})
                if server.script:
                    status = server.script.pop(0)
                    return send_json(self, status, {"error": {"message": f"scripted {status}"}},
                                      {"Retry-After": "0"} if status == 429 else {})
                data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)}
                        for i, t in enumerate(body["input"])]
                data.reverse()  # servers may answer out of order; the client sorts by index
                send_json(self, 200, {"object": "list", "model": body["model"], "data": data})

        self.httpd, self.base_url, self.thread = serve_local(Handler)

    def inputs(self) -> list[list[str]]:
        return [r["input"] for r in self.requests]


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def client(base_url: str, **kw: Any) -> OpenAICompatibleEmbedder:
    kw.setdefault("backoff_s", 0.01)
    return OpenAICompatibleEmbedder(base_url, kw.pop("api_key", "sk-local"), kw.pop("model", "bge-m3"),
                                    timeout_s=kw.pop("timeout_s", 5.0), batch_size=kw.pop("batch_size", 2), **kw)


def test_success_batches_sorts_and_normalises(server: FakeServer) -> None:
    emb = client(server.base_url, query_prefix="query: ", passage_prefix="passage: ")
    texts = ["가", "나", "다", "라", "마"]
    out = emb.embed_passages(texts)
    assert out.dtype == np.float32 and out.shape == (5, DIM) and emb.dim == DIM
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    expected = np.array([fake_vector("passage: " + t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert server.inputs() == [["passage: 가", "passage: 나"], ["passage: 다", "passage: 라"], ["passage: 마"]]
    assert all(r["model"] == "bge-m3" for r in server.requests)
    assert server.headers[0]["authorization"] == "Bearer sk-local"
    q = emb.embed_queries(["가"])
    assert server.inputs()[-1] == ["query: 가"] and not np.allclose(q[0], out[0])
    assert emb.embed_queries([]).shape == (0, DIM)
    assert emb.model_id.startswith("openai/bge-m3#prefix=")
    assert client(server.base_url).model_id == "openai/bge-m3"


def test_dim_is_probed_when_unknown(server: FakeServer) -> None:
    emb = client(server.base_url)
    assert emb.dim == DIM and len(server.requests) == 1
    assert emb.embed_passages([]).shape == (0, DIM) and len(server.requests) == 1
    assert client(server.base_url, dim=DIM).embed_passages([]).shape == (0, DIM)
    assert len(server.requests) == 1


def test_retries_5xx_and_429_then_succeeds(server: FakeServer) -> None:
    server.script = [500, 429, 503]
    out = client(server.base_url).embed_passages(["재시도"])
    assert out.shape == (1, DIM)
    assert len(server.requests) == 4


def test_gives_up_after_max_retries(server: FakeServer) -> None:
    server.script = [502] * 10
    with pytest.raises(Unavailable) as err:
        client(server.base_url, max_retries=3).embed_passages(["x"])
    assert len(server.requests) == 4
    assert err.value.details["status"] == 502


def test_4xx_is_invalid_input_without_retry(server: FakeServer) -> None:
    server.script = [400]
    with pytest.raises(InvalidInput) as err:
        client(server.base_url).embed_passages(["x"])
    assert "400" in str(err.value) and "scripted 400" in err.value.message_en
    assert len(server.requests) == 1


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emb = client(f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(Unavailable) as err:
        emb.embed_passages(["연결"])
    assert "연결할 수 없습니다" in err.value.message_ko
    assert "Cannot reach" in err.value.message_en
    assert err.value.details["attempts"] == 3
    assert err.value.status == 503


def test_cache_answers_while_the_server_is_down(server: FakeServer, tmp_path: Any) -> None:
    from jisik.models import CachedEmbedder, EmbeddingCache

    cache = EmbeddingCache(tmp_path / "e.sqlite3")
    before = CachedEmbedder(client(server.base_url), cache).embed_passages(["캐시된 문장"])
    server.httpd.shutdown()
    server.httpd.server_close()
    down = CachedEmbedder(client(server.base_url, max_retries=0), cache)  # dim unknown, server gone
    np.testing.assert_array_equal(down.embed_passages(["캐시된 문장"]), before)
    with pytest.raises(Unavailable):
        down.embed_passages(["새 문장"])
