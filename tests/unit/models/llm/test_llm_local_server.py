"""LocalLlamaServer's failure paths with the real xllamacpp child (no model needed: they fail fast).
The happy path, with the real GGUF model, is tests/integration/test_local_llm.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jisik.core.errors import ModelNotInstalled, Unavailable
from jisik.core.settings import Settings
from jisik.models.llm import LocalLlamaServer, create_llm


def test_a_file_llama_cpp_cannot_load_fails_the_start_with_the_log(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)  # the magic, then garbage
    server = LocalLlamaServer(bogus, alias="broken", threads=1, context_tokens=512, startup_timeout_s=60)
    with pytest.raises(Unavailable) as err:
        server.start()
    assert "시작하지 못했습니다" in err.value.message_ko and "failed to start" in err.value.message_en
    assert err.value.details["model"] == str(bogus) and isinstance(err.value.details["log_tail"], list)
    assert not server.running and server.pid is None
    with pytest.raises(Unavailable):
        _ = server.base_url
    server.stop()  # idempotent


def test_missing_xllamacpp_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what an uninstalled package looks like to imports
    with pytest.raises(ModelNotInstalled) as err:
        create_llm(Settings(llm=f"local:{gguf}"))
    assert err.value.status == 503 and err.value.hint == "pip install xllamacpp"
    with pytest.raises(ModelNotInstalled):
        LocalLlamaServer(gguf).start()
