// District console (一屏观全域): map, filters, KPI strip, on-time rate by street, live feed (SSE).
import { BOOT, api, el, fmtClock, fmtNum, fmtPct, liveStream, qs, t } from "./common.js";
import { initFilters } from "./filters.js";
import { DistrictMap } from "./map.js";
import { BaseMap, attachSearch } from "./basemap.js";
import { attachOverdueCards } from "./overdue.js";

const mapNode = document.getElementById("map");
const form = document.getElementById("filters");
let filters = {};
let dmap = null;

async function loadKpis() {
  const k = await api("/api/v1/console/kpis" + qs(filters));
  for (const node of document.querySelectorAll("[data-kpi]")) {
    const key = node.dataset.kpi;
    node.textContent = key.endsWith("rate") ? fmtPct(k[key]) : fmtNum(k[key]);
  }
  const box = document.getElementById("street-rates");
  if (box) {
    box.replaceChildren();
    for (const s of k.by_street || []) {
      const fill = el("div", { class: "bar-fill" + (s.rate === null ? "" : s.rate < 0.8 ? " low" : s.rate < 0.9 ? " mid" : "") });
      fill.style.width = s.rate === null ? "0" : `${Math.round(s.rate * 100)}%`;
      const row = el("a", { class: "bar", href: "?" + new URLSearchParams({ ...filters, street: s.code }).toString(),
        title: `${s.name}: ${s.ontime}/${s.closed}` },
      el("span", { class: "bar-name" }, s.name), el("span", { class: "bar-track" }, fill),
      el("span", { class: "bar-val" }, s.rate === null ? "–" : fmtPct(s.rate, 1)));
      box.append(row);
    }
  }
}

function addFeed(ev) {
  const feed = document.getElementById("feed");
  if (!feed) return;
  const empty = feed.querySelector(".muted");
  if (empty) empty.remove();
  const when = ev.at ? fmtClock(new Date(ev.at)) : fmtClock(new Date());
  const link = ev.case_id ? el("a", { href: `/cases/${encodeURIComponent(ev.case_id)}` }, ev.case_no || ev.case_id) : null;
  const li = el("li", { class: "new" }, el("time", {}, when), ev.label || ev.topic || "", " ", link,
    ev.detail ? el("span", { class: "muted" }, " · " + ev.detail) : null);
  feed.prepend(li);
  while (feed.children.length > 60) feed.lastChild.remove();
}

let refreshTimer = null;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    dmap.loadCases();
    loadKpis();
    if (dmap.choro.metric) dmap.loadChoropleth();
  }, 400);
}

/** Side panels that later modules fill; until then the panel keeps its placeholder text. */
async function loadPanels() {
  const data = await api("/api/v1/console/panels");
  for (const [key, p] of Object.entries(data)) {
    const box = document.querySelector(`[data-panel='${key}']`);
    if (!box || !p.available) continue;
    const list = el("ul", { class: "feed" });
    for (const it of p.items || []) {
      const label = it.link ? el("a", { href: it.link }, it.label) : el("strong", {}, it.label);
      list.append(el("li", { class: it.level ? `lvl-${it.level}` : null }, label, it.detail ? el("span", { class: "muted" }, " · " + it.detail) : null));
    }
    if (!(p.items || []).length) list.append(el("li", { class: "muted" }, t("common.none")));
    box.querySelector(".placeholder").replaceWith(list);
  }
}

async function main() {
  const meta = await (await import("./filters.js")).loadMeta();
  dmap = new DistrictMap(mapNode, { scope: meta.scope || {} });
  window.cityopsMap = dmap; // for the browser tests and debugging
  const base = new BaseMap(dmap.map);
  window.cityopsBasemap = base;
  attachSearch(document.getElementById("place-search"), dmap.map);
  document.getElementById("show-basemap").addEventListener("change", (e) => base.setVisible(e.target.checked));
  const st = await dmap.loadBoundary("street", true);
  st.addTo(dmap.map);
  dmap.addLabels("street");
  if (meta.scope && meta.scope.area_code && meta.scope.area_code.length >= 9) {
    const c = await dmap.loadBoundary("community");
    c.addTo(dmap.map);
    dmap.map.fitBounds(c.getBounds(), { padding: [10, 10], animate: false });
  }
  const init = await initFilters(form, (f) => {
    filters = f;
    const focus = f.community || f.street;
    if (focus) dmap.zoomTo(focus);
    dmap.setFilters(f);
    loadKpis();
  });
  filters = init.filters;
  if (filters.community || filters.street) await dmap.zoomTo(filters.community || filters.street);

  // layers
  for (const box of document.querySelectorAll("input[name=boundary]")) {
    box.addEventListener("change", () => dmap.setBoundary(box.value, box.checked));
  }
  const glBox = document.getElementById("grid-layer-box");
  (meta.layers || []).filter((l) => !l.is_unified).forEach((l, i) => {
    const cb = el("input", { type: "checkbox", value: l.key, "data-layer": l.key });
    cb.addEventListener("change", () => dmap.toggleGridLayer(l.key, cb.checked, i));
    glBox.append(el("label", {}, cb, " ", BOOT.lang === "en" && l.name_en ? l.name_en : l.name, el("span", { class: "muted small" }, ` (${l.count})`)));
  });
  document.getElementById("show-cases").addEventListener("change", (e) => dmap.setShowCases(e.target.checked));
  const metric = document.getElementById("choro-metric");
  const level = document.getElementById("choro-level");
  const choro = () => dmap.loadChoropleth(metric.value, level.value);
  metric.addEventListener("change", choro);
  level.addEventListener("change", choro);

  attachOverdueCards(() => filters);
  // the cases first: the base map's layers and the KPIs, asked at the same moment, slowed the map's
  // own request on the one server (bench console: ready at 286 ms in the page instead of ~230)
  await dmap.setFilters(filters);
  await Promise.all([loadKpis(), base.load()]);
  document.body.dataset.ready = "1";
  loadPanels().catch((e) => console.error(e));

  // live updates without reload
  const badge = document.getElementById("live-badge");
  const dot = document.getElementById("live-dot");
  liveStream("/api/v1/console/stream", (ev) => {
    if (ev.type === "hello") return;
    addFeed(ev);
    if (ev.case_id && ev.kind === "created") dmap.markFresh(ev.case_id);
    scheduleRefresh();
  }, (up) => {
    if (badge) { badge.classList.toggle("off", !up); badge.textContent = up ? t("common.live") : t("common.offline"); }
    if (dot) dot.hidden = !up;
  });
  try {
    const recent = await api("/api/v1/console/feed?limit=20");
    recent.items.slice().reverse().forEach(addFeed);
  } catch (e) { /* feed is optional */ }
}

main().catch((e) => {
  console.error(e);
  mapNode.dataset.error = String(e.message || e);
});
