// Admin dashboard: the admin API's statistics as charts and tables, conversation logs with search
// and per-user drill-down, index versions per collection, ingestion run reports.
import {
  ApiError, STORE_KEYS, apiJson, clearBanners, describeError, fmtMs, fmtNum, fmtPct, fmtTime, h, load, save,
  showBanner,
} from "./common.js";
import { COLORS, drawChart, table } from "./charts.js";

const $ = (id) => document.getElementById(id);
const els = {
  banners: $("banners"), login: $("login"), loginForm: $("login-form"), keyInput: $("admin-key"),
  main: $("admin-main"), logout: $("logout"), filters: $("filters"), period: $("period"), app: $("app-filter"),
  updatedAt: $("updated-at"), cards: $("cards"), logSearch: $("log-search"), logText: $("log-text"),
  logResult: $("log-result"), logsPager: $("logs-pager"), usersPager: $("users-pager"),
  userDetail: $("user-detail"), userDetailTitle: $("user-detail-title"), indexList: $("index-list"),
};
const PAGE = 20;
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const paging = { logs: 0, users: 0 };
const RUN_STATUS_KO = { ok: "성공", failed: "실패", running: "진행 중", queued: "대기", skipped: "건너뜀" };
const VERSION_STATUS_KO = { current: "현재", published: "이전 버전", rolled_back: "되돌림" };

const adminKey = () => load(STORE_KEYS.adminKey);
const get = (path, params) => apiJson(path, { key: adminKey(), params });

// ---- the admin key ----
function showLogin(message) {
  els.main.hidden = true;
  els.logout.hidden = true;
  els.login.hidden = false;
  if (message) showBanner(els.banners, { kind: "error", id: "auth", title: message.title, detail: message.detail });
  els.keyInput.focus();
}

els.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const value = els.keyInput.value.trim();
  if (!value) { els.keyInput.focus(); return; }
  save(STORE_KEYS.adminKey, value);
  els.keyInput.value = "";
  start();
});

els.logout.addEventListener("click", () => {
  save(STORE_KEYS.adminKey, "");
  clearBanners(els.banners);
  showLogin();
});

/** Errors of one dashboard part: a wrong key sends the admin back to the key form. */
function failed(err, part) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    showLogin(describeError(err));
    return true;
  }
  const { title, detail } = describeError(err);
  showBanner(els.banners, { kind: "error", id: part, title: `${part}: ${title}`, detail });
  return false;
}

// ---- filters ----
function range() {
  const days = Number(els.period.value) || 30;
  const until = new Date();
  const since = new Date(until.getTime() - days * 86400 * 1000);
  return { since: since.toISOString(), until: until.toISOString(), app: els.app.value, bucket: days <= 2 ? "hour" : "day" };
}

async function loadApps() {
  try {
    const catalog = await get("api/v1/apps");
    const current = els.app.value;
    els.app.replaceChildren(h("option", { value: "" }, "전체"),
      ...catalog.apps.map((a) => h("option", { value: a.name }, `${a.title} (${a.name})`)));
    els.app.value = current;
  } catch { /* the filter stays "전체" */ }
}

// ---- overview + charts ----
function bucketLabel(iso, bucket) {
  const d = new Date(iso);
  return bucket === "hour"
    ? d.toLocaleString("ko-KR", { month: "numeric", day: "numeric", hour: "numeric" })
    : d.toLocaleDateString("ko-KR", { month: "numeric", day: "numeric" });
}

function renderOverview(o) {
  const stats = [
    ["questions", "질문", fmtNum(o.questions)], ["sessions", "대화(세션)", fmtNum(o.sessions)],
    ["users", "사용자", fmtNum(o.users)], ["answered_rate", "답변률", fmtPct(o.answered_rate)],
    ["off_topic_rate", "주제 밖 비율", fmtPct(o.off_topic_rate)], ["avg_latency_ms", "평균 응답", fmtMs(o.avg_latency_ms)],
    ["p95_latency_ms", "p95 응답", fmtMs(o.p95_latency_ms)], ["feedback_up", "좋아요", fmtNum(o.feedback_up)],
    ["feedback_down", "싫어요", fmtNum(o.feedback_down)],
  ];
  els.cards.replaceChildren(...stats.map(([id, label, value]) => h("div", { class: "stat", dataset: { stat: id } },
    h("span", { class: "label" }, label), h("span", { class: "value" }, value))));
}

function renderTrends(t) {
  const labels = t.points.map((p) => bucketLabel(p.start, t.bucket));
  drawChart("chart-trends", { type: "bar", data: { labels, datasets: [
    { label: "답변함", data: t.points.map((p) => p.answered), backgroundColor: COLORS.blue, stack: "q" },
    { label: "주제 밖", data: t.points.map((p) => p.off_topic), backgroundColor: COLORS.amber, stack: "q" },
    { label: "답하지 못함", data: t.points.map((p) => Math.max(0, p.questions - p.answered - p.off_topic)),
      backgroundColor: COLORS.gray, stack: "q" },
    { type: "line", label: "대화(세션)", data: t.points.map((p) => p.conversations), borderColor: COLORS.green,
      backgroundColor: COLORS.green },
  ] }, options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  const rows = t.points.map((p, i) => ({ ...p, label: labels[i] }));
  table($("table-trends"), { caption: "기간별 질문 수", rows, columns: [
    { key: "label", label: "구간" }, { key: "questions", label: "질문", num: true },
    { key: "answered", label: "답변함", num: true }, { key: "off_topic", label: "주제 밖", num: true },
    { key: "conversations", label: "대화(세션)", num: true }] });
  drawChart("chart-latency", { type: "line", data: { labels, datasets: [
    { label: "평균 응답 시간 (ms)", data: t.points.map((p) => p.avg_latency_ms), borderColor: COLORS.green,
      backgroundColor: COLORS.green, spanGaps: true },
  ] }, options: { scales: { y: { beginAtZero: true } } } });
  table($("table-latency"), { caption: "기간별 평균 응답 시간", rows, columns: [
    { key: "label", label: "구간" }, { label: "평균 응답", num: true, render: (r) => fmtMs(r.avg_latency_ms) }] });
}

function renderFeedback(f) {
  $("feedback-summary").textContent =
    `좋아요 ${fmtNum(f.up)}건, 싫어요 ${fmtNum(f.down)}건 (좋아요 비율 ${fmtPct(f.up_rate)}), 의견이 있는 평가 ${fmtNum(f.with_comment)}건`;
  drawChart("chart-feedback", { type: "doughnut", data: { labels: ["좋아요", "싫어요"], datasets: [
    { data: [f.up, f.down], backgroundColor: [COLORS.blue, COLORS.red] }] } });
  table($("table-feedback"), { caption: "컬렉션별 피드백", rows: f.by_collection, columns: [
    { key: "collection", label: "컬렉션" }, { key: "up", label: "좋아요", num: true },
    { key: "down", label: "싫어요", num: true }] });
  drawChart("chart-feedback-days", { type: "bar", data: { labels: f.by_day.map((d) => d.day), datasets: [
    { label: "좋아요", data: f.by_day.map((d) => d.up), backgroundColor: COLORS.blue },
    { label: "싫어요", data: f.by_day.map((d) => d.down), backgroundColor: COLORS.red },
  ] }, options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  table($("table-feedback-days"), { caption: "날짜별 피드백", rows: f.by_day, columns: [
    { key: "day", label: "날짜" }, { key: "up", label: "좋아요", num: true }, { key: "down", label: "싫어요", num: true }] });
}

function questionTable(id, caption, rows) {
  table($(id), { caption, rows, empty: "해당하는 질문이 없습니다.", columns: [
    { label: "질문", render: (r) => h("span", { class: "clip", title: r.question }, r.question) },
    { key: "count", label: "횟수", num: true }, { key: "answered", label: "답변함", num: true },
    { label: "마지막", render: (r) => fmtTime(r.last_at) }] });
}

// ---- logs, users, drill-down ----
function resultLabel(log) {
  if (log.off_topic) return "주제 밖";
  return log.answered ? "답변함" : "답하지 못함";
}

function logColumns({ withUser }) {
  return [
    { label: "시각", render: (r) => fmtTime(r.created_at) },
    withUser ? { label: "사용자", render: (r) => r.user_id
      ? h("button", { type: "button", class: "link-btn", onclick: () => openUser(r.user_id) }, r.user_id.slice(0, 12))
      : "익명" } : null,
    { label: "앱", render: (r) => r.app || r.collection },
    { label: "질문", render: (r) => h("span", { class: "clip", title: r.question }, r.question) },
    { label: "답변", render: (r) => h("details", {}, h("summary", {}, "보기"), h("p", {}, r.answer)) },
    { label: "결과", render: resultLabel },
    { label: "응답", num: true, render: (r) => fmtMs(r.latency_ms) },
  ].filter(Boolean);
}

function pager(container, page, key, reload) {
  const from = page.total ? page.offset + 1 : 0;
  const to = page.offset + page.items.length;
  container.replaceChildren(
    h("button", { type: "button", class: "btn small", disabled: page.offset === 0,
      onclick: () => { paging[key] = Math.max(0, page.offset - PAGE); reload(); } }, "이전"),
    h("span", { role: "status" }, `총 ${fmtNum(page.total)}건 중 ${fmtNum(from)}–${fmtNum(to)}`),
    h("button", { type: "button", class: "btn small", disabled: to >= page.total,
      onclick: () => { paging[key] = page.offset + PAGE; reload(); } }, "다음"));
}

async function loadLogs() {
  const { since, until, app } = range();
  const result = els.logResult.value;
  const params = { since, until, app, text: els.logText.value.trim(), limit: PAGE, offset: paging.logs };
  if (result === "answered") Object.assign(params, { answered: true, off_topic: false });
  if (result === "unanswered") Object.assign(params, { answered: false, off_topic: false });
  if (result === "off_topic") params.off_topic = true;
  try {
    const page = await get("api/v1/admin/logs", params);
    table($("table-logs"), { caption: "대화 로그 (최신순)", rows: page.items, columns: logColumns({ withUser: true }),
      empty: "조건에 맞는 대화가 없습니다." });
    pager(els.logsPager, page, "logs", loadLogs);
  } catch (err) { failed(err, "대화 로그"); }
}

async function loadUsers() {
  const { since, until, app } = range();
  try {
    const page = await get("api/v1/admin/users", { since, until, app, limit: PAGE, offset: paging.users });
    table($("table-users"), { caption: "사용자별 사용량", rows: page.items, empty: "기간 안에 질문한 사용자가 없습니다.",
      columns: [
        { label: "사용자", render: (r) => h("button", { type: "button", class: "link-btn",
          onclick: () => openUser(r.user_id) }, r.user_id.slice(0, 12)) },
        { key: "questions", label: "질문", num: true }, { key: "sessions", label: "세션", num: true },
        { key: "answered", label: "답변함", num: true }, { key: "off_topic", label: "주제 밖", num: true },
        { key: "feedback_up", label: "좋아요", num: true }, { key: "feedback_down", label: "싫어요", num: true },
        { label: "마지막 질문", render: (r) => fmtTime(r.last_at) }] });
    pager(els.usersPager, page, "users", loadUsers);
  } catch (err) { failed(err, "사용자"); }
}

async function openUser(userId) {
  els.userDetail.hidden = false;
  els.userDetailTitle.textContent = `사용자 ${userId.slice(0, 12)}의 대화`;
  els.userDetailTitle.focus();
  try {
    const page = await get(`api/v1/admin/logs/${encodeURIComponent(userId)}`, { limit: 100 });
    table($("table-user-logs"), { caption: `최근 대화 ${fmtNum(page.items.length)}건 (전체 ${fmtNum(page.total)}건)`,
      rows: page.items, columns: logColumns({ withUser: false }) });
  } catch (err) { failed(err, "사용자 대화"); }
}

$("user-detail-close").addEventListener("click", () => { els.userDetail.hidden = true; });

// ---- index versions, ingestion runs ----
function pill(kind, text) {
  return h("span", { class: `pill ${kind}` }, text);
}

async function loadIndexes() {
  try {
    const collections = await get("api/v1/admin/collections");
    if (!collections.length) {
      els.indexList.replaceChildren(h("p", { class: "empty" }, "색인된 컬렉션이 없습니다."));
      return;
    }
    els.indexList.replaceChildren(...collections.map((c) => {
      const wrap = h("div", { class: "table-wrap" });
      table(wrap, { caption: `${c.name} — 현재 버전 ${c.version}, 문서 ${fmtNum(c.documents)}개, 청크 ${fmtNum(c.chunks)}개`,
        rows: c.versions, columns: [
          { key: "version", label: "버전", num: true },
          { label: "상태", render: (v) => pill(v.status, VERSION_STATUS_KO[v.status] || v.status) },
          { label: "만든 시각", render: (v) => fmtTime(v.created_at) },
          { label: "문서", num: true, render: (v) => fmtNum(v.documents) },
          { label: "청크", num: true, render: (v) => fmtNum(v.chunks) },
          { label: "추가", num: true, render: (v) => fmtNum(v.added_docs) },
          { label: "삭제", num: true, render: (v) => fmtNum(v.removed_docs) },
          { key: "note", label: "메모" }] });
      return h("div", { dataset: { collection: c.name } }, wrap,
        h("p", { class: "note" }, `임베더 ${c.embedder_id} (${c.dim}차원)`));
    }));
  } catch (err) { failed(err, "색인 버전"); }
}

async function loadIngestRuns() {
  try {
    const runs = await get("api/v1/admin/ingest/runs", { limit: 50 });
    table($("table-ingest"), { caption: "최근 색인 실행", rows: runs.items, empty: "아직 색인 실행 기록이 없습니다.",
      columns: [
        { label: "시작", render: (r) => fmtTime(r.started_at) },
        { label: "종류", render: (r) => (r.kind === "api" ? "API 업로드" : "파이프라인") },
        { label: "대상", render: (r) => r.targets.join(", ") },
        { label: "상태", render: (r) => pill(r.status, RUN_STATUS_KO[r.status] || r.status) },
        { label: "행/문서", num: true, render: (r) => fmtNum(r.rows) },
        { label: "추가", num: true, render: (r) => fmtNum(r.added) },
        { label: "변경", num: true, render: (r) => fmtNum(r.updated) },
        { label: "삭제", num: true, render: (r) => fmtNum(r.deleted) },
        { label: "오류", render: (r) => (r.errors.length ? h("ul", {}, r.errors.map((e) =>
          h("li", {}, `${e.stage} ${e.name}: ${e.message_ko}`))) : "없음") },
        { label: "단계", render: (r) => h("details", {}, h("summary", {}, `${r.stages.length}단계`),
          h("ul", {}, r.stages.map((s) => h("li", {},
            `${s.stage} ${s.name}: ${RUN_STATUS_KO[s.status] || s.status} (${s.seconds.toFixed(1)}초)`)))) },
      ] });
    if (runs.unreadable) {
      showBanner(els.banners, { kind: "warn", id: "ingest", title: `읽을 수 없는 실행 보고서 ${runs.unreadable}개를 건너뛰었습니다.` });
    }
  } catch (err) { failed(err, "색인 실행 기록"); }
}

// ---- everything ----
async function loadStats() {
  const { since, until, app, bucket } = range();
  try {
    const [overview, trends, feedback, top, unanswered, offTopic, comments] = await Promise.all([
      get("api/v1/admin/stats/overview", { since, until, app }),
      get("api/v1/admin/stats/trends", { since, until, app, bucket, tz: TZ }),
      get("api/v1/admin/stats/feedback", { since, until, app, tz: TZ }),
      get("api/v1/admin/stats/questions", { since, until, app, kind: "all", limit: 10 }),
      get("api/v1/admin/stats/questions", { since, until, app, kind: "unanswered", limit: 10 }),
      get("api/v1/admin/stats/questions", { since, until, app, kind: "off_topic", limit: 10 }),
      get("api/v1/admin/feedback", { since, until, limit: 20 }),
    ]);
    renderOverview(overview);
    renderTrends(trends);
    renderFeedback(feedback);
    questionTable("table-top", "많이 묻는 질문", top);
    questionTable("table-unanswered", "답하지 못한 질문", unanswered);
    questionTable("table-offtopic", "주제 밖 질문", offTopic);
    table($("table-feedback-comments"), { caption: "최근 피드백", rows: comments.items,
      empty: "아직 피드백이 없습니다.", columns: [
        { label: "시각", render: (r) => fmtTime(r.created_at) },
        { label: "평가", render: (r) => (r.rating === "up" ? "좋아요" : "싫어요") },
        { label: "의견", render: (r) => r.comment || "—" },
        { key: "user_id", label: "사용자" }, { label: "출처 수", num: true, render: (r) => fmtNum(r.citations.length) }] });
    return true;
  } catch (err) {
    return !failed(err, "통계");
  }
}

async function refresh() {
  clearBanners(els.banners);
  if (!(await loadStats())) return;
  await Promise.all([loadLogs(), loadUsers(), loadIndexes(), loadIngestRuns()]);
  els.updatedAt.textContent = `${fmtTime(new Date().toISOString())} 기준`;
}

async function start() {
  if (!adminKey()) { showLogin(); return; }
  els.login.hidden = true;
  els.main.hidden = false;
  els.logout.hidden = false;
  clearBanners(els.banners, "auth");
  if (!window.Chart) {
    showBanner(els.banners, { kind: "warn", id: "chart", title: "차트 라이브러리를 불러오지 못했습니다.",
      detail: "숫자는 각 차트 아래 '표로 보기'에서 볼 수 있습니다." });
  }
  await loadApps();
  await refresh();
}

els.filters.addEventListener("submit", (e) => {
  e.preventDefault();
  paging.logs = 0;
  paging.users = 0;
  refresh();
});
els.logSearch.addEventListener("submit", (e) => {
  e.preventDefault();
  paging.logs = 0;
  loadLogs();
});

start();
