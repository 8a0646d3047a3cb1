// Charts (the vendored Chart.js UMD build, window.Chart) and the data tables shown beside them,
// so every number is also readable without the canvas (screen readers, no-JS-canvas browsers).
import { h } from "./common.js";

const charts = new Map();
export const COLORS = { blue: "#1f5fbf", green: "#1e7a46", amber: "#c98a00", red: "#b3261e", gray: "#8a94a3" };

function chartLib() {
  const lib = window.Chart;
  if (lib && !lib.__jisik) {
    lib.defaults.font.family = getComputedStyle(document.body).fontFamily;
    lib.defaults.color = "#1c2430";
    lib.defaults.animation = false; // no motion; the numbers appear at once
    lib.defaults.maintainAspectRatio = false;
    lib.__jisik = true;
  }
  return lib;
}

/** Draw (or redraw) the chart on canvas ``id``; false when the chart library is missing. */
export function drawChart(id, config) {
  const lib = chartLib();
  const canvas = document.getElementById(id);
  if (!lib || !canvas) return false;
  const old = charts.get(id);
  if (old) old.destroy();
  charts.set(id, new lib(canvas, config));
  return true;
}

/** A table of ``rows`` (objects) with ``columns`` = [{key, label, num?, render?(row)}]. */
export function table(container, { caption, columns, rows, empty = "자료가 없습니다." }) {
  if (!rows.length) {
    container.replaceChildren(h("p", { class: "empty" }, caption ? `${caption}: ${empty}` : empty));
    return;
  }
  container.replaceChildren(h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null },
      c.render ? c.render(r) : r[c.key] ?? "—")))))));
}
