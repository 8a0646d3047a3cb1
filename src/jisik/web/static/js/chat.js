// Chat page: pick an app or collection, ask, read the streamed answer with its [n] citations,
// rate it, follow a suggestion, go back to earlier sessions.
import {
  ApiError, STORE_KEYS, api, apiJson, apiUrl, clearBanners, describeError, fmtLocator, fmtMs, fmtNum, fmtTime, h,
  isWebLink, load, randomId, save, showBanner,
} from "./common.js";
import { readEvents } from "./sse.js";

const $ = (id) => document.getElementById(id);
const els = {
  banners: $("banners"), target: $("target"), keyButton: $("key-button"), keyDialog: $("key-dialog"),
  keyInput: $("api-key"), sessions: $("sessions"), sessionsToggle: $("sessions-toggle"), newChat: $("new-chat"),
  sessionList: $("session-list"), sessionsEmpty: $("sessions-empty"), intro: $("intro"),
  introTitle: $("intro-title"), introDescription: $("intro-description"), examples: $("examples"),
  messages: $("messages"), form: $("ask"), question: $("question"), send: $("send"), stop: $("stop"),
  providerNote: $("provider-note"), citationDialog: $("citation-dialog"), citationTitle: $("citation-title"),
  citationFacts: $("citation-facts"), citationText: $("citation-text"), citationActions: $("citation-actions"),
};

const state = {
  userId: load(STORE_KEYS.userId) || randomId("web-"),
  catalog: null, // GET /api/v1/apps
  sessionId: null,
  controller: null, // AbortController of the answer being streamed
  opener: null, // the element focused before a dialog opened
};
save(STORE_KEYS.userId, state.userId);

const key = () => load(STORE_KEYS.apiKey);
const OUTCOME_KO = { off_topic: "주제 밖 질문", not_found: "문서에서 찾지 못함" };
const DEP_KO = { index: "색인 저장소", sessions: "세션 저장소", chat_logs: "대화 로그 DB", cache: "답변 캐시",
  llm: "LLM 서버" };

// ---- errors ----
function showError(err, id = "chat") {
  const { title, detail } = describeError(err);
  const actions = err instanceof ApiError && err.status === 401
    ? [{ label: "API 키 입력", onclick: openKeyDialog }] : [];
  showBanner(els.banners, { kind: "error", title, detail, actions, id });
}

// ---- app / collection picker ----
function targetValue() {
  const [kind, ...rest] = (els.target.value || "").split(":");
  return { kind, name: rest.join(":") };
}

function targetParams() {
  const { kind, name } = targetValue();
  if (kind === "app") return { app: name };
  if (kind === "collection") return { collection: name };
  return {};
}

function currentApp() {
  const { kind, name } = targetValue();
  return kind === "app" && state.catalog ? state.catalog.apps.find((a) => a.name === name) : null;
}

async function loadCatalog() {
  try {
    state.catalog = await apiJson("api/v1/apps", { key: key() });
  } catch (err) {
    showError(err, "catalog");
    return;
  }
  clearBanners(els.banners, "catalog");
  const { apps, collections, default_collection: fallback } = state.catalog;
  els.target.replaceChildren();
  if (apps.length) {
    els.target.append(h("optgroup", { label: "앱" }, apps.map((a) => h("option", {
      value: `app:${a.name}`, disabled: !a.available,
    }, a.available ? a.title : `${a.title} (색인 없음)`))));
  }
  if (collections.length) {
    els.target.append(h("optgroup", { label: "컬렉션 (문서 직접 검색)" }, collections.map((c) => h("option", {
      value: `collection:${c.name}`,
    }, `${c.name} · 문서 ${fmtNum(c.documents)}개`))));
  }
  const options = [...els.target.querySelectorAll("option:not([disabled])")].map((o) => o.value);
  const saved = load(STORE_KEYS.target);
  const preferred = [saved, ...apps.filter((a) => a.available).map((a) => `app:${a.name}`),
    `collection:${fallback}`, options[0]];
  const chosen = preferred.find((v) => v && options.includes(v));
  if (chosen) els.target.value = chosen;
  if (!options.length) {
    showBanner(els.banners, { kind: "info", id: "catalog", title: "아직 색인된 문서가 없습니다.",
      detail: "관리자가 문서를 색인하면 질문할 수 있습니다 (jisik ingest 또는 POST /api/v1/ingest)." });
  }
  renderIntro();
  renderProvider(state.catalog.provider);
}

function renderIntro() {
  const app = currentApp();
  const { kind, name } = targetValue();
  els.introTitle.textContent = app ? app.title : kind === "collection" ? `컬렉션 '${name}'` : "무엇이든 물어보세요";
  els.introDescription.textContent = app && app.description ? app.description
    : "등록된 문서를 근거로 답하고, 답의 근거가 된 문단을 [번호]로 보여 줍니다.";
  els.examples.replaceChildren(...(app ? app.examples : []).map((q) => h("button", {
    type: "button", class: "chip", onclick: () => ask(q),
  }, q)));
}

function renderProvider(provider) {
  if (!provider) return;
  els.providerNote.textContent = provider.kind === "extractive"
    ? (provider.label_ko || "추출형 답변: LLM 없이 문서의 문장을 그대로 인용합니다.")
    : `답변 생성: ${provider.name} (${provider.model})`;
}

// ---- readiness: tell the user before they ask when the LLM or a store is down ----
async function checkReady() {
  let body;
  try {
    const resp = await fetch(apiUrl("health/ready"), { cache: "no-store" }); // 503 also carries the body
    body = await resp.json();
  } catch {
    showError(new ApiError(0, "network", ""), "ready");
    return;
  }
  const down = Object.entries(body.dependencies || {}).filter(([, d]) => d.status === "down").map(([n]) => DEP_KO[n] || n);
  if (body.status === "down") {
    showBanner(els.banners, { kind: "warn", id: "ready",
      title: `일부 서비스가 중단되었습니다: ${down.join(", ")}.`,
      detail: "지금은 답변이 실패할 수 있습니다. 잠시 후 다시 시도하거나 관리자에게 알려 주세요." });
  }
}

// ---- sessions ----
async function loadSessions() {
  let page;
  try {
    page = await apiJson("api/v1/sessions", { key: key(), params: { user_id: state.userId, limit: 50 } });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err, "sessions");
    return;
  }
  els.sessionsEmpty.hidden = page.items.length > 0;
  els.sessionList.replaceChildren(...page.items.map((s) => {
    const title = s.title || "(제목 없음)";
    return h("li", {},
      h("button", { type: "button", class: "session-open", "aria-current": s.session_id === state.sessionId ? "true" : null,
        onclick: () => openSession(s.session_id) },
      h("span", { class: "title" }, title), h("span", { class: "when" }, fmtTime(s.updated_at))),
      h("button", { type: "button", class: "session-delete", "aria-label": `'${title}' 대화 삭제`,
        onclick: () => deleteSession(s.session_id, title) }, "✕"));
  }));
}

async function openSession(sessionId) {
  if (state.controller) return;
  let session;
  try {
    session = await apiJson(`api/v1/sessions/${encodeURIComponent(sessionId)}`, { key: key() });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      showBanner(els.banners, { kind: "warn", id: "chat", title: "대화를 찾을 수 없습니다.",
        detail: "오래되어 만료되었거나 삭제된 대화입니다." });
      loadSessions();
    } else showError(err);
    return;
  }
  clearBanners(els.banners, "chat");
  state.sessionId = session.session_id;
  const value = session.app && session.app !== "default" ? `app:${session.app}` : `collection:${session.collection}`;
  if ([...els.target.options].some((o) => o.value === value)) els.target.value = value;
  renderIntro();
  els.intro.hidden = true;
  els.messages.replaceChildren();
  for (const m of session.messages) {
    if (m.role === "user") addUserMessage(m.text);
    else if (m.role === "assistant") {
      const msg = addAssistantMessage();
      msg.finish({ answer: m.text, message_id: m.message_id, session_id: session.session_id,
        outcome: m.meta.outcome || (m.meta.off_topic ? "off_topic" : "answered"), latency_ms: m.meta.latency_ms,
        cached: m.meta.cache_hit, provider: { kind: m.meta.provider === "extractive" ? "extractive" : "llm" } },
      m.citations, []);
    }
  }
  closeSessionsOnNarrow();
  loadSessions();
  els.question.focus();
}

async function deleteSession(sessionId, title) {
  if (!window.confirm(`'${title}' 대화를 삭제할까요? 되돌릴 수 없습니다.`)) return;
  try {
    await api(`api/v1/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE", key: key() });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) { showError(err); return; }
  }
  if (state.sessionId === sessionId) newChat();
  loadSessions();
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.sessionId = null;
  els.messages.replaceChildren();
  els.intro.hidden = false;
  clearBanners(els.banners, "chat");
  for (const b of els.sessionList.querySelectorAll("[aria-current]")) b.removeAttribute("aria-current");
  closeSessionsOnNarrow();
  els.question.focus();
}

function closeSessionsOnNarrow() {
  els.sessions.classList.remove("open");
  els.sessionsToggle.setAttribute("aria-expanded", "false");
}

// ---- messages ----
/** Keep the newest text in view while it streams, unless the reader scrolled up to read. */
function follow(force = false) {
  const root = document.documentElement;
  if (force || window.innerHeight + window.scrollY >= root.scrollHeight - 160) window.scrollTo(0, root.scrollHeight);
}

function addUserMessage(text) {
  const li = h("li", { class: "msg user" }, h("div", { class: "who" }, "나"), h("div", { class: "text" }, text));
  els.messages.append(li);
  follow(true);
  return li;
}

/** Split an answer into text and [n] buttons for the cited passages. */
function answerNodes(answer, citations) {
  const nodes = [];
  let last = 0;
  for (const m of answer.matchAll(/\[(\d+)\]/g)) {
    const c = citations.get(Number(m[1]));
    if (!c) continue;
    nodes.push(answer.slice(last, m.index));
    nodes.push(h("button", { type: "button", class: "cite", "aria-haspopup": "dialog",
      "aria-label": `출처 ${m[1]} 보기: ${c.title || c.doc_id}`, onclick: (e) => openCitation(c, e.currentTarget) },
    `[${m[1]}]`));
    last = m.index + m[0].length;
  }
  nodes.push(answer.slice(last));
  return nodes;
}

function addAssistantMessage() {
  const status = h("p", { class: "status", role: "status" });
  const text = h("div", { class: "text" });
  const extra = h("div", {});
  const li = h("li", { class: "msg assistant", "aria-busy": "true" }, h("div", { class: "who" }, "jisik"),
    status, text, extra);
  els.messages.append(li);
  let streamed = "";
  const msg = {
    el: li,
    done: false,
    citations: new Map(),
    suggestions: [],
    status(s) { status.textContent = s; status.hidden = !s; },
    token(piece) {
      streamed += piece;
      text.textContent = streamed;
      follow();
    },
    fail(message) {
      li.setAttribute("aria-busy", "false");
      li.classList.add("failed");
      msg.status(message);
    },
    finish(done, citations, suggestions) {
      msg.done = true;
      li.setAttribute("aria-busy", "false");
      if (citations) for (const c of citations) msg.citations.set(Number(c.n), c);
      const outcome = done.outcome || "answered";
      li.classList.add(outcome);
      text.replaceChildren(...answerNodes(done.answer ?? streamed, msg.citations));
      msg.status("");
      extra.replaceChildren(
        sourcesList(msg.citations),
        suggestionChips(suggestions || msg.suggestions),
        feedbackControls(done),
        metaLine(done));
      follow();
    },
  };
  msg.status("관련 문서를 찾는 중…");
  return msg;
}

function sourcesList(citations) {
  if (!citations.size) return null;
  return h("div", { class: "sources" }, h("h3", {}, "출처"), h("ol", {}, [...citations.values()].map((c) => {
    const where = fmtLocator(c.locator);
    return h("li", {}, h("button", { type: "button", class: "source-btn", "aria-haspopup": "dialog",
      onclick: (e) => openCitation(c, e.currentTarget) }, `[${c.n}] ${c.title || c.doc_id}${where ? ` · ${where}` : ""}`));
  })));
}

function suggestionChips(items) {
  if (!items || !items.length) return null;
  return h("div", { class: "chips", role: "group", "aria-label": "이어서 물어볼 질문" },
    items.map((q) => h("button", { type: "button", class: "chip", onclick: () => ask(q) }, q)));
}

function metaLine(done) {
  const bits = [];
  if (OUTCOME_KO[done.outcome]) bits.push(OUTCOME_KO[done.outcome]);
  if (done.cached) bits.push("저장된 답변");
  if (done.latency_ms !== undefined && done.latency_ms !== null) bits.push(`응답 ${fmtMs(done.latency_ms)}`);
  const extractive = done.provider && done.provider.kind === "extractive";
  if (!bits.length && !extractive) return null;
  return h("p", { class: "meta" }, extractive ? h("span", { class: "badge" }, "추출형 답변") : null,
    extractive && bits.length ? " · " : "", bits.join(" · "));
}

function feedbackControls(done) {
  if (!done.message_id || done.outcome === "off_topic") return null;
  const sessionId = done.session_id || state.sessionId || "";
  let rating = null;
  const statusEl = h("span", { class: "fb-status", role: "status" });
  const comment = h("textarea", { rows: 2, maxlength: 5000, id: `fb-${done.message_id}` });
  const form = h("form", { hidden: true },
    h("div", { class: "field" }, h("label", { for: `fb-${done.message_id}` }, "의견 (선택)"), comment),
    h("button", { type: "submit", class: "btn small" }, "의견 보내기"));
  const send = async (value, text) => {
    try {
      await apiJson("api/v1/chat/feedback", { method: "POST", key: key(), body: {
        message_id: done.message_id, session_id: sessionId, user_id: state.userId, rating: value, comment: text,
      } });
    } catch (err) {
      showError(err);
      return false;
    }
    return true;
  };
  const choose = async (value) => {
    if (!(await send(value, comment.value.trim()))) return;
    rating = value;
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
    form.hidden = false;
    statusEl.textContent = "평가를 보냈습니다. 고맙습니다!";
  };
  const up = h("button", { type: "button", class: "btn small", "aria-pressed": "false", onclick: () => choose("up") },
    "좋아요");
  const down = h("button", { type: "button", class: "btn small", "aria-pressed": "false",
    onclick: () => choose("down") }, "싫어요");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (rating && (await send(rating, comment.value.trim()))) statusEl.textContent = "의견을 보냈습니다. 고맙습니다!";
  });
  return h("div", { class: "feedback", role: "group", "aria-label": "이 답변 평가" }, up, down, statusEl, form);
}

// ---- citation panel ----
function openCitation(c, opener) {
  state.opener = opener;
  const where = fmtLocator(c.locator);
  els.citationTitle.textContent = `출처 [${c.n}] ${c.title || c.doc_id}`;
  const facts = [["문서", c.title || c.doc_id], ["위치", where || "—"], ["컬렉션", c.collection]];
  const uri = c.source_uri || "";
  els.citationFacts.replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    h("dt", {}, "원본"), h("dd", {}, uri ? (isWebLink(uri)
      ? h("a", { href: uri, target: "_blank", rel: "noopener noreferrer" }, uri)
      : h("code", {}, uri)) : "—"));
  els.citationText.textContent = c.text || "(인용된 문단이 없습니다)";
  const actions = [];
  if (isWebLink(uri)) {
    actions.push(h("a", { class: "btn", href: uri, target: "_blank", rel: "noopener noreferrer" }, "원본 열기"));
  } else if (uri && navigator.clipboard) {
    actions.push(h("button", { type: "button", class: "btn", onclick: async (e) => {
      try { await navigator.clipboard.writeText(uri); e.target.textContent = "복사했습니다"; } catch { /* denied */ }
    } }, "원본 주소 복사"));
  }
  els.citationActions.replaceChildren(...actions);
  els.citationDialog.showModal();
}

// ---- asking ----
function setBusy(busy) {
  els.send.disabled = busy;
  els.stop.hidden = !busy;
  els.target.disabled = busy;
}

async function ask(raw) {
  const question = (raw || "").trim();
  if (state.controller) return;
  if (!question) {
    els.question.focus();
    return;
  }
  clearBanners(els.banners, "chat");
  els.intro.hidden = true;
  els.question.value = "";
  addUserMessage(question);
  const msg = addAssistantMessage();
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let suggestions = [];
  try {
    const resp = await api("api/v1/chat/stream", { method: "POST", key: key(), signal: controller.signal,
      accept: "text/event-stream",
      body: { question, session_id: state.sessionId, user_id: state.userId, ...targetParams() } });
    for await (const ev of readEvents(resp.body)) {
      const d = ev.data;
      if (ev.type === "retrieval") {
        if (d.session_id) state.sessionId = d.session_id;
        msg.status(d.cached ? "저장된 답변을 가져왔습니다." : `관련 문단 ${d.hits.length}개를 찾았습니다. 답변을 만드는 중…`);
      } else if (ev.type === "token") {
        msg.token(d.text);
      } else if (ev.type === "citation") {
        msg.citations.set(Number(d.n), d.citation);
      } else if (ev.type === "suggestions") {
        suggestions = d.items || [];
      } else if (ev.type === "done") {
        if (d.session_id) state.sessionId = d.session_id;
        if (d.provider) renderProvider(d.provider);
        msg.finish(d, null, suggestions);
      } else if (ev.type === "error") {
        const err = new ApiError(d.status || 500, d.code || "error", d.message_ko || "", { hint: d.hint });
        msg.fail("답변을 만들지 못했습니다.");
        showError(err);
      }
    }
    if (!msg.done && !msg.el.classList.contains("failed")) {
      msg.fail("답변이 중간에 끊겼습니다.");
      showBanner(els.banners, { kind: "error", id: "chat", title: "답변이 중간에 끊겼습니다.",
        detail: "서버와의 연결이 끊어졌습니다. 다시 질문해 주세요." });
    }
  } catch (err) {
    if (err && err.name === "AbortError") msg.fail("답변을 멈췄습니다.");
    else {
      msg.fail("답변을 만들지 못했습니다.");
      showError(err);
    }
  } finally {
    state.controller = null;
    setBusy(false);
    loadSessions();
  }
}

// ---- API key dialog ----
function openKeyDialog() {
  state.opener = document.activeElement;
  els.keyInput.value = key();
  els.keyDialog.showModal();
  els.keyInput.focus();
}

els.keyDialog.addEventListener("close", () => {
  const action = els.keyDialog.returnValue;
  els.keyDialog.returnValue = "";
  if (action === "save" || action === "clear") {
    save(STORE_KEYS.apiKey, action === "save" ? els.keyInput.value.trim() : "");
    clearBanners(els.banners);
    loadCatalog();
    loadSessions();
  }
  if (state.opener && document.contains(state.opener)) state.opener.focus();
});

// ---- wiring ----
els.citationDialog.addEventListener("close", () => {
  if (state.opener && document.contains(state.opener)) state.opener.focus();
});
els.citationDialog.querySelector("[data-close]").addEventListener("click", () => els.citationDialog.close());
els.citationDialog.addEventListener("click", (e) => { // a click on the backdrop closes
  if (e.target === els.citationDialog) els.citationDialog.close();
});
els.keyButton.addEventListener("click", openKeyDialog);
els.form.addEventListener("submit", (e) => {
  e.preventDefault();
  ask(els.question.value);
});
els.question.addEventListener("keydown", (e) => {
  // Enter sends; not while a Korean syllable is being composed (IME), not with Shift
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    ask(els.question.value);
  }
});
els.stop.addEventListener("click", () => state.controller && state.controller.abort());
els.newChat.addEventListener("click", newChat);
els.target.addEventListener("change", () => {
  save(STORE_KEYS.target, els.target.value);
  renderIntro();
  newChat();
});
els.sessionsToggle.addEventListener("click", () => {
  const open = els.sessions.classList.toggle("open");
  els.sessionsToggle.setAttribute("aria-expanded", String(open));
  if (open) els.newChat.focus();
});

loadCatalog();
loadSessions();
checkReady();
