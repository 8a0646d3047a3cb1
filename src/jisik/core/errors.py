"""One error hierarchy for the whole platform.

Every error carries an HTTP status, a stable machine code, a Korean message (what the user
reads first), an English message, and an optional hint saying what to do. The API layer maps
these to responses in one place; the CLI prints them without a traceback.
"""

from __future__ import annotations

from typing import Any


class JisikError(Exception):
    """Base of all expected errors. Unexpected failures are plain exceptions."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message_ko: str,
        message_en: str | None = None,
        *,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message_ko = message_ko
        self.message_en = message_en or message_ko
        self.hint = hint
        self.details = details or {}
        super().__init__(self.message_en)

    def __str__(self) -> str:
        text = f"{self.message_ko} ({self.message_en})" if self.message_en != self.message_ko else self.message_ko
        return f"{text} — {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        """The error as data: the API's error body, SSE ``error`` events and run reports share it."""
        return {"code": self.code, "status": self.status, "message_ko": self.message_ko,
                "message_en": self.message_en, "hint": self.hint, "details": dict(self.details or {})}


class InvalidInput(JisikError):
    """The caller sent something we cannot use (empty query, malformed filter, ...)."""

    status = 422
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "payload_too_large"


class NotFound(JisikError):
    status = 404
    code = "not_found"


class Conflict(JisikError):
    status = 409
    code = "conflict"


class Unavailable(JisikError):
    """A dependency (server, model, file) is missing or down; retrying later may help."""

    status = 503
    code = "unavailable"


class ModelNotInstalled(Unavailable):
    code = "model_not_installed"


class CorruptData(JisikError):
    """Stored data failed an integrity check (checksum, format, version)."""

    status = 500
    code = "corrupt_data"


class ConfigError(JisikError):
    status = 500
    code = "config_error"
