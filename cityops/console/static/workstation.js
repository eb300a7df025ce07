// Street / community workstation (居村城运工作站): scoped map, KPIs and today's to-do.
import { api, el, fmtClock, fmtDate, fmtNum, fmtPct, liveStream, qs, slaBadge, t } from "./common.js";
import { loadMeta } from "./filters.js";
import { DistrictMap } from "./map.js";
import { attachOverdueCards } from "./overdue.js";

const mapNode = document.getElementById("map");
const scopeCode = mapNode.dataset.scope;
let dmap = null;

async function loadTodo() {
  const data = await api("/api/v1/console/todo" + qs({ area: scopeCode }));
  for (const card of document.querySelectorAll("[data-todo]")) {
    const key = card.dataset.todo;
    const list = data[key] || { count: 0, items: [] };
    card.querySelector("[data-count]").textContent = fmtNum(list.count);
    const ul = card.querySelector("ul");
    ul.replaceChildren();
    if (!list.items.length) ul.append(el("li", { class: "muted" }, t("todo.empty")));
    for (const c of list.items) {
      ul.append(el("li", {}, el("a", { href: `/cases/${encodeURIComponent(c.id)}` }, c.case_no || c.id), " ",
        c.category || "", " ", slaBadge(c.sla), c.due_at ? el("span", { class: "muted" }, " " + fmtDate(c.due_at)) : null));
    }
  }
}

async function loadKpis() {
  const k = await api("/api/v1/console/kpis" + qs({ area: scopeCode }));
  for (const node of document.querySelectorAll("[data-kpi]")) {
    const key = node.dataset.kpi;
    node.textContent = key.endsWith("rate") ? fmtPct(k[key]) : fmtNum(k[key]);
  }
}

function addFeed(ev) {
  const feed = document.getElementById("feed");
  const empty = feed.querySelector(".muted");
  if (empty) empty.remove();
  const link = ev.case_id ? el("a", { href: `/cases/${encodeURIComponent(ev.case_id)}` }, ev.case_no || ev.case_id) : null;
  feed.prepend(el("li", { class: "new" }, el("time", {}, fmtClock(ev.at ? new Date(ev.at) : new Date())), ev.label || "", " ", link));
  while (feed.children.length > 60) feed.lastChild.remove();
}

async function main() {
  const meta = await loadMeta();
  const scope = { ...(meta.scope || {}), area_code: scopeCode };
  dmap = new DistrictMap(mapNode, { scope, choroLevel: scopeCode.length >= 12 ? "grid" : "community" });
  window.cityopsMap = dmap;
  const sub = scopeCode.length >= 12 ? "grid" : "community";
  const own = await dmap.loadBoundary(scopeCode.length >= 12 ? "community" : "street", true);
  own.addTo(dmap.map);
  const inner = await dmap.loadBoundary(sub);
  inner.addTo(dmap.map);
  const f = scopeCode.length >= 12 ? { community: scopeCode } : scopeCode.length >= 9 ? { street: scopeCode } : {};
  attachOverdueCards(() => ({ area: scopeCode }));
  await Promise.all([dmap.setFilters({ ...f, period: "open" }), loadTodo(), loadKpis()]);
  try {
    const recent = await api("/api/v1/console/feed" + qs({ area: scopeCode, limit: 20 }));
    recent.items.slice().reverse().forEach(addFeed);
  } catch (e) { /* optional */ }
  document.body.dataset.ready = "1";
  let timer = null;
  liveStream("/api/v1/console/stream" + qs({ area: scopeCode }), (ev) => {
    if (ev.type === "hello") return;
    addFeed(ev);
    clearTimeout(timer);
    timer = setTimeout(() => { dmap.loadCases(); loadTodo(); loadKpis(); }, 400);
  }, (up) => {
    const b = document.getElementById("live-badge");
    b.classList.toggle("off", !up);
    b.textContent = up ? t("common.live") : t("common.offline");
  });
}

main().catch((e) => { console.error(e); mapNode.dataset.error = String(e.message || e); });
