"""The HTTP API (FastAPI): :func:`create_app`. Imported lazily, so that light modules of this
package (the Celery ingest worker) do not pull in FastAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
