"""The FSS finlife open API (금융감독원 금융상품통합비교공시) and its products as documents.

Endpoints ``/finlifeapi/depositProductsSearch.json`` and ``savingProductsSearch.json`` take
``auth`` (the API key), ``topFinGrpNo`` (020000 banks, 030300 savings banks, ...) and ``pageNo``,
and answer ``{"result": {err_cd, err_msg, total_count, max_page_no, now_page_no, baseList,
optionList}}``: one ``baseList`` row per product, one ``optionList`` row per product x term,
joined by ``fin_co_no`` + ``fin_prdt_cd``. :class:`FinlifeSource` writes one JSON file per product
type (all groups and pages merged, same layout); :func:`finlife_documents` makes one readable
Korean document per product from such a file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jisik.core.errors import ConfigError, CorruptData, InvalidInput, JisikError, Unavailable
from jisik.core.logging import get_logger
from jisik.core.types import Document
from jisik.pipeline.manifest import Extracted
from jisik.pipeline.sources.base import CONTENT_TYPES, RunContext
from jisik.pipeline.sources.config import ApiKeyAuth, FinlifeSourceConfig, PageNumberPagination, RestSourceConfig
from jisik.pipeline.sources.rest import RestSource

log = get_logger(__name__)

ENDPOINTS = {"deposit": "/finlifeapi/depositProductsSearch.json", "saving": "/finlifeapi/savingProductsSearch.json"}
PRODUCT_NAMES = {"deposit": "정기예금", "saving": "적금"}
_JOIN_DENY = {"1": "제한없음", "2": "서민전용", "3": "일부제한"}
_ITEMS = ["result.baseList", "result.optionList"]


def check_finlife(body: Any) -> None:
    """Raise the typed error for a finlife answer whose ``err_cd`` is not ``000``."""
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise CorruptData("finlife 응답에 result가 없습니다.", "The finlife answer has no 'result' object.")
    code = str(result.get("err_cd", "000"))
    if code == "000":
        return
    msg = str(result.get("err_msg", ""))[:200]
    details = {"err_cd": code}
    ko, en = f"finlife API 오류 {code}: {msg}", f"finlife API error {code}: {msg}"
    error: JisikError
    if code == "020":  # daily request limit exceeded
        error = Unavailable(ko, en, hint="the daily request limit is used up; try tomorrow", details=details)
    elif code.startswith("0"):  # 010-013 unknown / stopped / deleted / sample key, 021 IP not allowed
        error = ConfigError(ko, en, hint="check the API key (FSS_API_KEY)", details=details)
    elif code.startswith("1"):
        error = InvalidInput(ko, en, details=details)
    else:
        error = Unavailable(ko, en, details=details)
    raise error


class FinlifeSource:
    kind = "finlife"

    def __init__(self, config: FinlifeSourceConfig, *, client: Any = None) -> None:
        self.config = config
        self.client = client

    @property
    def name(self) -> str:
        return self.config.name

    def _rest(self, product: str) -> RestSource:
        cfg = self.config
        return RestSource(RestSourceConfig(
            name=cfg.name, base_url=cfg.base_url, path=ENDPOINTS[product],
            auth=ApiKeyAuth(env=cfg.api_key_env, param="auth"),
            pagination=PageNumberPagination(page_param="pageNo", start=1, max_page_field="result.max_page_no"),
            items_fields=_ITEMS, http=cfg.http, output=product,
        ), check=check_finlife, client=self.client)

    def extract(self, run: RunContext) -> list[Extracted]:
        cfg = self.config
        out = []
        for product in cfg.products:
            rest = self._rest(product)
            pages = [page for grp in cfg.top_fin_grp_no for page in rest.fetch_pages({"topFinGrpNo": grp})]
            merged = rest.merge(pages)
            result = dict(merged["result"])
            result.setdefault("prdt_div", "D" if product == "deposit" else "S")
            result["total_count"] = len(result["baseList"])
            result.pop("now_page_no", None)
            result.pop("max_page_no", None)
            path = run.staging_for(cfg.name) / f"{product}.json"
            path.write_text(json.dumps({"result": result}, ensure_ascii=False), encoding="utf-8")
            log.info("finlife extracted", extra={"source": cfg.name, "product": product,
                                                 "products": len(result["baseList"]), "pages": len(pages)})
            out.append(Extracted(
                path=path, name=product, fmt="json", source=cfg.name, source_kind="rest", query=rest.endpoint,
                params={"topFinGrpNo": list(cfg.top_fin_grp_no), "product": product, "_parser": "finlife"},
                row_count=len(result["baseList"]), page_count=len(pages), content_type=CONTENT_TYPES["json"],
            ))
        return out


def is_finlife(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("result"), dict) and "baseList" in obj["result"]


def _rate(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _fmt_rate(value: Any) -> str:
    rate = _rate(value)
    return "-" if rate is None else f"{rate:g}%"


def _product_type(result: dict[str, Any], options: list[dict[str, Any]], hint: str | None) -> str:
    if hint in PRODUCT_NAMES:
        return hint
    div = str(result.get("prdt_div", "")).upper()
    if div in ("D", "S"):
        return "deposit" if div == "D" else "saving"
    return "saving" if any("rsrv_type_nm" in o or "rsrv_type" in o for o in options) else "deposit"


def _option_line(o: dict[str, Any]) -> str:
    term = o.get("save_trm")
    kinds = ", ".join(str(o[k]) for k in ("intr_rate_type_nm", "rsrv_type_nm") if o.get(k))
    head = f"{term}개월" + (f" ({kinds})" if kinds else "")
    return f"- {head}: 기본 {_fmt_rate(o.get('intr_rate'))}, 최고 우대 {_fmt_rate(o.get('intr_rate2'))}"


def _product_text(base: dict[str, Any], options: list[dict[str, Any]], kind: str) -> str:
    fields = [
        ("금융회사", base.get("kor_co_nm")), ("상품명", base.get("fin_prdt_nm")), ("상품 종류", PRODUCT_NAMES[kind]),
        ("가입 방법", base.get("join_way")), ("가입 대상", base.get("join_member")),
        ("가입 제한", _JOIN_DENY.get(str(base.get("join_deny")), base.get("join_deny"))),
        ("우대 조건", base.get("spcl_cnd")), ("만기 후 이자율", base.get("mtrt_int")),
        ("최고 한도", base.get("max_limit")), ("기타 유의사항", base.get("etc_note")),
        ("공시 제출월", base.get("dcls_month")),
    ]
    lines = [f"{label}: {str(value).strip()}" for label, value in fields if value not in (None, "")]
    if options:
        ordered = sorted(options, key=lambda o: (_rate(o.get("save_trm")) or 0, str(o.get("rsrv_type_nm") or "")))
        lines.append("저축 기간별 금리:")
        lines.extend(_option_line(o) for o in ordered)
    return "\n".join(lines)


def finlife_documents(path: Path, prefix: str, product_hint: str | None = None) -> Iterator[Document]:
    """One document per product; doc id ``{prefix}/{fin_co_no}-{fin_prdt_cd}``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptData(f"JSON 파일을 읽을 수 없습니다: {path.name}", f"Cannot read the JSON file {path.name}: {exc}",
                          details={"file": path.name}) from None
    if not is_finlife(obj):
        raise InvalidInput(f"finlife 형식(result.baseList)이 아닙니다: {path.name}",
                           f"{path.name} is not a finlife answer (no result.baseList).")
    result = obj["result"]
    options: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for o in result.get("optionList") or []:
        options[(str(o.get("fin_co_no", "")), str(o.get("fin_prdt_cd", "")))].append(o)
    all_options = [o for opts in options.values() for o in opts]
    kind = _product_type(result, all_options, product_hint)
    seen: set[str] = set()
    for i, base in enumerate(result.get("baseList") or []):
        key = (str(base.get("fin_co_no", "")), str(base.get("fin_prdt_cd", "")))
        doc_id = f"{prefix}/{key[0]}-{key[1]}"
        if doc_id in seen:
            log.warning("duplicate finlife product skipped", extra={"entry": i})
            continue
        seen.add(doc_id)
        opts = options.get(key, [])
        meta: dict[str, Any] = {"kind": "finlife", "product_type": kind, "bank": str(base.get("kor_co_nm", "")),
                                "fin_co_no": key[0], "product_code": key[1], "terms": len(opts)}
        rates = [r for o in opts for r in (_rate(o.get("intr_rate")), _rate(o.get("intr_rate2"))) if r is not None]
        if rates:
            meta["max_rate"] = max(rates)
        base_rates = [r for o in opts if (r := _rate(o.get("intr_rate"))) is not None]
        if base_rates:
            meta["max_base_rate"] = max(base_rates)
        yield Document(
            doc_id=doc_id, text=_product_text(base, opts, kind),
            title=f"{base.get('kor_co_nm', '')} {base.get('fin_prdt_nm', '')}".strip(),
            locator={"entry": i, "product": key[1]}, metadata=meta,
        )
