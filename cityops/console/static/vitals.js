// 城市体征 board: each category's current level per street on a map, sparklines, silent devices and
// the warnings with their actions; live through the console's SSE stream.
import { api, BOOT, el, esc, fmtDate, LANG, liveStream, qs, t, toast } from "./common.js";

const COLORS = { none: "#2b3a55", blue: "#2f7cf6", yellow: "#f5c542", orange: "#ff8c1a", red: "#ff4d4f" };
const RANK = { blue: 0, yellow: 1, orange: 2, red: 3 };
let board = null;
let streets = null;
let map = null;
let category = "";
const actionsCache = new Map();

function levelName(l) { return t("vitals.level." + (l || "none")); }
function levelBadge(l) { return el("span", { class: "badge lv-badge lv-" + (l || "none") }, levelName(l)); }

function streetLevel(code) {
  const byCat = (board && board.streets[code]) || {};
  if (category) return byCat[category] || null;
  let best = null;
  for (const l of Object.values(byCat)) if (best === null || RANK[l] > RANK[best]) best = l;
  return best;
}

async function drawMap() {
  if (!map) {
    map = L.map("vs-map", { zoomControl: true, attributionControl: false, preferCanvas: true });
    const gj = await api("/api/v1/areas.geojson" + qs({ level: "street", simplify_m: 60 }));
    streets = L.geoJSON(gj, {
      style: (f) => style(f.properties.code),
      onEachFeature: (f, lyr) => {
        const name = (LANG === "en" && f.properties.name_en) ? f.properties.name_en : f.properties.name;
        lyr.bindTooltip(() => `${esc(name)}: ${esc(levelName(streetLevel(f.properties.code)))}`, { sticky: true });
      },
    }).addTo(map);
    map.fitBounds(streets.getBounds(), { padding: [6, 6], animate: false });
    document.getElementById("vs-map").dataset.ready = "1";
  }
  streets.setStyle((f) => style(f.properties.code));
}

function style(code) {
  const l = streetLevel(code);
  return { color: "#9fb3d1", weight: 1, fillColor: COLORS[l || "none"], fillOpacity: l ? 0.6 : 0.25 };
}

function drawCategories() {
  const sel = document.getElementById("vs-category");
  if (!sel.options.length) {
    sel.append(el("option", { value: "" }, t("vitals.all")));
    for (const [zh, en] of Object.entries(board.categories)) sel.append(el("option", { value: zh }, LANG === "en" ? en : zh));
    sel.addEventListener("change", () => { category = sel.value; drawMap(); });
  }
  const box = document.getElementById("vs-matrix");
  const cats = Object.keys(board.categories).filter((c) => Object.values(board.streets).some((s) => s[c]));
  const rows = Object.entries(board.streets).sort();
  if (!rows.length) { box.replaceChildren(el("p", { class: "placeholder" }, t("vitals.quiet"))); return; }
  const head = el("tr", {}, el("th", { scope: "col" }, t("vitals.street")),
    ...cats.map((c) => el("th", { scope: "col" }, LANG === "en" ? board.categories[c] : c)));
  const body = rows.map(([code, byCat]) => el("tr", {}, el("th", { scope: "row", title: code }, (board.street_names || {})[code] || code),
    ...cats.map((c) => el("td", {}, byCat[c] ? levelBadge(byCat[c]) : "–"))));
  box.replaceChildren(el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...body)));
}

function spark(values) {
  const w = 160, h = 28;
  const v = values.filter((x) => x !== null);
  if (v.length < 2) return el("span", { class: "muted small" }, t("vitals.no_data"));
  const lo = Math.min(...v), hi = Math.max(...v), span = hi - lo || 1;
  const pts = values.map((x, i) => x === null ? null : `${(i / (values.length - 1)) * w},${h - ((x - lo) / span) * (h - 4) - 2}`)
    .filter(Boolean).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.innerHTML = `<polyline fill="none" stroke="#5fb4ff" stroke-width="1.5" points="${pts}"/>`;
  return svg;
}

function drawSparks() {
  const ul = document.getElementById("vs-sparks");
  ul.replaceChildren(...board.indicators.map((ind) => {
    const vals = board.sparklines[ind.code] || [];
    const last = [...vals].reverse().find((x) => x !== null);
    return el("li", {}, el("span", { class: "vs-ind" }, LANG === "en" ? ind.name_en : ind.name_zh),
      spark(vals), el("span", { class: "num" }, last === undefined ? "–" : `${last} ${ind.unit}`));
  }));
}

function drawSilent() {
  const ul = document.getElementById("vs-silent");
  if (!board.silent.length) { ul.replaceChildren(el("li", { class: "placeholder" }, t("vitals.none_silent"))); return; }
  ul.replaceChildren(...board.silent.slice(0, 40).map((s) => el("li", {}, levelBadge(s.level), " ",
    el("strong", {}, s.area_name || s.area_code), " · ", s.devices.slice(0, 6).join(", "),
    s.devices.length > 6 ? ` +${s.devices.length - 6}` : "")));
}

async function actionsFor(w) {
  if (!actionsCache.has(w.id)) actionsCache.set(w.id, api(`/api/v1/warnings/${w.id}`).then((d) => d.actions).catch(() => []));
  return actionsCache.get(w.id);
}

async function act(w, a) {
  const body = {};
  if ((a.required || []).includes("note")) {
    const note = prompt(t("vitals.prompt.note")); if (!note) return; body.note = note;
  }
  if ((a.required || []).includes("reason")) {
    const reason = prompt(t("vitals.prompt.reason")); if (!reason) return; body.reason = reason;
  }
  try {
    await api(`/api/v1/warnings/${w.id}/actions/${a.action}`, { method: "POST", body });
    toast(t("vitals.done"), "ok");
    actionsCache.delete(w.id);
    await refresh();
  } catch (e) { toast(e.message, "error"); }
}

function drawWarnings() {
  const tb = document.querySelector("#vs-warnings tbody");
  document.getElementById("vs-count").textContent = String(board.warnings.length);
  if (!board.warnings.length) {
    tb.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "placeholder" }, t("vitals.quiet"))));
    return;
  }
  const focus = Number(document.querySelector(".vitals").dataset.focus || 0);
  tb.replaceChildren(...board.warnings.map((w) => {
    const cell = el("td", { class: "actions" });
    actionsFor(w).then((acts) => cell.replaceChildren(...acts.map((a) =>
      el("button", { class: "btn btn-small", type: "button", onclick: () => act(w, a) }, LANG === "en" ? a.label_en : a.label))));
    const caseCell = w.case ? el("a", { href: `/cases/${w.case.id}` }, w.case.case_no || String(w.case.id)) : "–";
    return el("tr", { class: w.id === focus ? "focus" : "", dataset: { warning: w.id } },
      el("td", {}, levelBadge(w.level)),
      el("td", {}, el("div", {}, w.title), el("div", { class: "muted small" }, LANG === "en" ? w.rule_name_en : w.rule_name)),
      el("td", {}, fmtDate(w.raised_at)), el("td", {}, t("vitals.state." + w.state)), el("td", {}, caseCell), cell);
  }));
}

async function refresh() {
  board = await api("/api/v1/vitals/board");
  drawCategories();
  await drawMap();
  drawSparks();
  drawSilent();
  drawWarnings();
  document.getElementById("vs-updated").textContent = t("vitals.updated", { at: fmtDate(new Date()) });
}

let pending = null;
function onLive(ev) {
  if (!ev || !String(ev.topic || "").startsWith("warning")) return;
  clearTimeout(pending);
  pending = setTimeout(() => refresh().catch(() => {}), 500);
  if (ev.title) toast(ev.title, ev.level === "red" || ev.level === "orange" ? "error" : "info");
}

refresh().catch((e) => toast(e.message, "error"));
liveStream("/api/v1/console/stream", onLive, (on) => {
  const dot = document.getElementById("live-dot");
  if (dot) { dot.hidden = false; dot.classList.toggle("off", !on); }
});
setInterval(() => refresh().catch(() => {}), 60000);
void BOOT;
