// Shared by the chat page and the admin dashboard: API calls (same origin only), Korean error
// messages, key storage, small DOM and formatting helpers.

const baseMeta = document.querySelector('meta[name="jisik-api-base"]');
/** The API root, relative to the page (works behind a reverse proxy under a path prefix). */
export const API_BASE = new URL(baseMeta ? baseMeta.content : "../", document.baseURI);

export function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  return url.toString();
}

// ---- storage (localStorage may be unavailable: private mode, policies) ----
export const STORE_KEYS = { apiKey: "jisik.apiKey", adminKey: "jisik.adminKey", userId: "jisik.userId",
  target: "jisik.target" };

export function load(name) {
  try { return window.localStorage.getItem(name) || ""; } catch { return ""; }
}

export function save(name, value) {
  try {
    if (value) window.localStorage.setItem(name, value); else window.localStorage.removeItem(name);
  } catch { /* not persisted: the value lives for this page only */ }
}

/** A random id (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function randomId(prefix) {
  const bytes = new Uint8Array(12);
  window.crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- errors ----
export class ApiError extends Error {
  constructor(status, code, messageKo, { hint = null, requestId = null } = {}) {
    super(messageKo);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.requestId = requestId;
  }
}

const NETWORK_KO = "서버에 연결할 수 없습니다. 네트워크 연결과 jisik 서버가 켜져 있는지 확인하세요.";

/** A banner's title and detail for an error, in Korean. */
export function describeError(err) {
  if (!(err instanceof ApiError)) {
    return { title: "알 수 없는 오류가 발생했습니다.", detail: String(err && err.message ? err.message : err) };
  }
  const server = err.message || "";
  switch (err.status) {
    case 0:
      return { title: NETWORK_KO, detail: "" };
    case 401:
      return { title: "API 키가 필요하거나 올바르지 않습니다.",
        detail: `${server} 화면 위의 'API 키' 버튼을 눌러 관리자에게 받은 키를 입력하세요.` };
    case 403:
      return { title: "이 기능을 사용할 권한이 없습니다.", detail: server };
    case 429:
      return { title: "요청이 너무 많습니다. 잠시 후 다시 시도하세요.", detail: server };
    case 503:
      return { title: "서비스를 잠시 사용할 수 없습니다 (LLM 서버 또는 저장소가 응답하지 않습니다).",
        detail: `${server} 잠시 후 다시 시도하세요. 계속되면 관리자에게 알려 주세요.` };
    default:
      if (err.status >= 500) {
        return { title: "서버 오류가 발생했습니다. 잠시 후 다시 시도하세요.",
          detail: err.requestId ? `요청 ID: ${err.requestId}` : server };
      }
      return { title: server || `요청이 실패했습니다 (HTTP ${err.status}).`, detail: err.hint || "" };
  }
}

async function errorFrom(resp) {
  let info = {};
  try {
    const body = await resp.json();
    info = (body && body.error) || {};
  } catch { /* not JSON (a proxy's page) */ }
  return new ApiError(resp.status, info.code || `http_${resp.status}`, info.message_ko || "",
    { hint: info.hint || null, requestId: info.request_id || resp.headers.get("X-Request-ID") });
}

/** fetch() against the jisik API; throws ApiError (status 0 = no connection) unless 2xx. */
export async function api(path, { method = "GET", params, body, key, signal, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["X-API-Key"] = key;
  let resp;
  try {
    resp = await fetch(apiUrl(path, params), {
      method, headers, signal, cache: "no-store", credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", NETWORK_KO);
  }
  if (!resp.ok) throw await errorFrom(resp);
  return resp;
}

export async function apiJson(path, options) {
  const resp = await api(path, options);
  return resp.status === 204 ? null : resp.json();
}

// ---- DOM ----
/** h("button", {class: "btn", onclick: f, "aria-label": "..."}, "text", child, ...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Show one banner in ``container`` (role=alert there); ``actions`` = [{label, onclick}]. */
export function showBanner(container, { kind = "error", title, detail = "", actions = [], id } = {}) {
  if (id) {
    const old = container.querySelector(`[data-banner="${id}"]`);
    if (old) old.remove();
  }
  const close = h("button", { type: "button", class: "btn small", "aria-label": "알림 닫기" }, "닫기");
  const banner = h("div", { class: `banner ${kind}`, dataset: id ? { banner: id } : undefined },
    h("div", {}, h("p", { class: "title" }, h("strong", {}, title)), detail ? h("p", { class: "detail" }, detail) : null),
    h("div", { class: "actions" },
      actions.map((a) => h("button", { type: "button", class: "btn small", onclick: a.onclick }, a.label)), close));
  close.addEventListener("click", () => banner.remove());
  container.append(banner);
  return banner;
}

export function clearBanners(container, id) {
  for (const b of container.querySelectorAll(id ? `[data-banner="${id}"]` : ".banner")) b.remove();
}

// ---- formatting (Korean) ----
const dateTime = new Intl.DateTimeFormat("ko-KR", { dateStyle: "medium", timeStyle: "short" });
const numberFmt = new Intl.NumberFormat("ko-KR");

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function fmtNum(n) {
  return n === null || n === undefined ? "—" : numberFmt.format(n);
}

export function fmtPct(x) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}초` : `${Math.round(ms)}ms`;
}

/** Where a passage sits in its source, in Korean (page, table rows, keys, FAQ entry...). */
export function fmtLocator(loc) {
  if (!loc || typeof loc !== "object") return "";
  const parts = [];
  if (loc.page !== undefined) parts.push(`${loc.page}쪽`);
  if (loc.table !== undefined) parts.push(`표 ${loc.table}`);
  if (Array.isArray(loc.rows) && loc.rows.length === 2) {
    const [a, b] = loc.rows.map((r) => Number(r) + 1);
    parts.push(a === b ? `${a}행` : `${a}–${b}행`);
  }
  if (loc.keys && typeof loc.keys === "object") {
    parts.push(Object.entries(loc.keys).map(([k, v]) => `${k}=${v}`).join(", "));
  }
  if (loc.entry !== undefined) parts.push(`항목 #${loc.entry}`);
  for (const [k, v] of Object.entries(loc)) {
    if (!["page", "table", "rows", "keys", "entry", "row_keys"].includes(k) && (typeof v !== "object" || v === null)) {
      parts.push(`${k}: ${v}`);
    }
  }
  return parts.join(" · ");
}

/** True for a URI a browser can open from this page (http/https). */
export function isWebLink(uri) {
  return /^https?:\/\//i.test(uri || "");
}
