"""The one mapping of errors to HTTP responses.

Every error body has the same shape::

    {"error": {"code": "not_found", "status": 404, "message_ko": "...", "message_en": "...",
               "hint": "...", "details": {...}, "request_id": "..."}}

* :class:`~jisik.core.errors.JisikError` -> its own status and code;
* request validation (pydantic) -> 422 ``invalid_input`` with the failing fields (never their values);
* Starlette's HTTP errors (unknown route 404, wrong method 405, ...) -> their status;
* anything else -> 500 ``internal_error`` with the request id only (the traceback goes to the log).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jisik.core.errors import JisikError
from jisik.core.logging import get_logger, request_id

log = get_logger("jisik.api")


class Unauthorized(JisikError):
    status = 401
    code = "unauthorized"


class Forbidden(JisikError):
    status = 403
    code = "forbidden"


class RateLimited(JisikError):
    status = 429
    code = "rate_limited"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}
_HTTP_KO = {404: "요청한 경로가 없습니다.", 405: "이 경로에서 허용되지 않는 메서드입니다.",
            413: "요청이 너무 큽니다.", 415: "지원하지 않는 콘텐츠 형식입니다."}


def error_body(code: str, status: int, message_ko: str, message_en: str, *, hint: str | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message_ko": message_ko, "message_en": message_en,
                      "hint": hint, "details": details or {}, "request_id": request_id.get()}}


def jisik_error_body(exc: JisikError) -> dict[str, Any]:
    return {"error": exc.to_dict() | {"request_id": request_id.get()}}


def error_response(exc: JisikError, headers: dict[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if exc.status == 503:
        extra.setdefault("Retry-After", "5")
    retry = exc.details.get("retry_after_s") if exc.details else None
    if retry is not None:
        extra["Retry-After"] = str(int(retry))
    return JSONResponse(jisik_error_body(exc), status_code=exc.status, headers=extra or None)


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and why, without the submitted values (they may hold personal data)."""
    return [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(JisikError)
    async def _jisik(request: Request, exc: JisikError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("request failed", extra={"code": exc.code, "status": exc.status})
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_details(exc)
        where = ", ".join(".".join(e["loc"]) for e in errors[:5])
        body = error_body("invalid_input", 422, f"요청 값이 올바르지 않습니다: {where}",
                          f"Invalid request: {where}", hint="/docs 의 요청 형식을 확인하세요. (See /docs.)",
                          details={"errors": errors})
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        code = _HTTP_CODES.get(status, f"http_{status}")
        detail = exc.detail if isinstance(exc.detail, str) else code
        body = error_body(code, status, _HTTP_KO.get(status, detail), detail)
        return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc, extra={"error": type(exc).__name__})
        body = error_body("internal_error", 500, "서버 내부 오류가 발생했습니다. 요청 ID를 알려 주세요.",
                          "Internal server error. Please report the request id.")
        return JSONResponse(body, status_code=500)
