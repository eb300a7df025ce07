// Case list: the shared filters -> GET /api/v1/cases (the case engine's list, scoped), sortable, paged.
import { LANG, api, el, fmtDate, fmtNum, qs, slaBadge, t } from "./common.js";
import { initFilters } from "./filters.js";

const form = document.getElementById("filters");
const tbody = document.querySelector("#cases-table tbody");
const sortSel = document.getElementById("sort");
const PAGE_SIZE = 50;
let filters = {};
let page = Number(new URLSearchParams(location.search).get("page") || 1);
let sort = new URLSearchParams(location.search).get("sort") || "-reported_at";
let meta = null;

const PERIOD_HOURS = { "24h": 24, "7d": 24 * 7, "30d": 24 * 30 };

/** console filters -> the case API's query parameters */
function apiParams(f) {
  const p = { page, page_size: PAGE_SIZE, sort };
  if (f.community) p.area = f.community;
  else if (f.street) p.area = f.street;
  for (const k of ["category", "state", "source", "department", "sla", "q"]) if (f[k]) p[k] = f[k];
  const period = f.period || "open";
  if (period === "open") p.open = true;
  else if (period === "today") {
    const now = new Date();
    const sh = new Date(now.toLocaleString("en-US", { timeZone: "Asia/Shanghai" }));
    const offset = now.getTime() - sh.getTime();
    const d = new Date(sh.getFullYear(), sh.getMonth(), sh.getDate());
    p.date_from = new Date(d.getTime() + offset).toISOString();
  } else if (PERIOD_HOURS[period]) {
    p.date_from = new Date(Date.now() - PERIOD_HOURS[period] * 3600e3).toISOString();
  }
  return p;
}

function areaName(code) {
  const s = (meta.streets || []).find((x) => x.code === code);
  return s ? ((LANG === "en" && s.name_en) ? s.name_en : s.name) : code;
}

function srcName(code) {
  const s = (meta.sources || []).find((x) => x.code === code);
  return s ? ((LANG === "en" && s.name_en) ? s.name_en : s.name) : code;
}

function stateName(code, fallback) {
  const s = (meta.states || []).find((x) => x.code === code);
  return s ? ((LANG === "en" && s.name_en) ? s.name_en : s.name) : (fallback || code);
}

async function load() {
  tbody.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "muted" }, t("common.loading"))));
  const data = await api("/api/v1/cases" + qs(apiParams(filters)));
  tbody.replaceChildren();
  if (!data.items.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, t("cases.empty"))));
  for (const c of data.items) {
    const tr = el("tr", { "data-case": c.id },
      el("td", {}, el("a", { href: `/cases/${c.id}` }, c.case_no)),
      el("td", {}, c.category_name, el("div", { class: "muted small" }, c.title)),
      el("td", {}, c.street_name || areaName(c.street_code)),
      el("td", {}, el("span", { class: "badge state" }, stateName(c.state, c.state_label))),
      el("td", {}, slaBadge(c.sla)),
      el("td", {}, srcName(c.source)),
      el("td", {}, c.lead_department_name || "–"),
      el("td", {}, fmtDate(c.reported_at)),
      el("td", {}, fmtDate(c.due_at)));
    tbody.append(tr);
  }
  document.getElementById("cases-total").textContent = t("cases.total", { n: fmtNum(data.total) });
  const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
  document.getElementById("page-info").textContent = `${page} / ${pages}`;
  document.getElementById("prev").disabled = page <= 1;
  document.getElementById("next").disabled = page >= pages;
  const exp = document.getElementById("export-csv");
  if (meta.can_export) {
    const p = apiParams(filters);
    delete p.page; delete p.page_size; delete p.sort;
    exp.href = "/api/v1/cases.csv" + qs(p);
    exp.hidden = false;
  }
  document.body.dataset.ready = "1";
}

function syncUrl() {
  const u = new URLSearchParams(location.search);
  u.set("sort", sort);
  if (page > 1) u.set("page", page); else u.delete("page");
  history.replaceState(null, "", location.pathname + "?" + u);
}

async function main() {
  sortSel.value = sort;
  const init = await initFilters(form, (f) => { filters = f; page = 1; syncUrl(); load(); });
  meta = init.meta;
  filters = init.filters;
  sortSel.addEventListener("change", () => { sort = sortSel.value; page = 1; syncUrl(); load(); });
  for (const b of document.querySelectorAll("th button[data-sort]")) {
    b.addEventListener("click", () => {
      const key = b.dataset.sort;
      sort = sort === key ? "-" + key : key;
      if (sortSel.querySelector(`option[value="${sort}"]`)) sortSel.value = sort;
      page = 1; syncUrl(); load();
    });
  }
  document.getElementById("prev").addEventListener("click", () => { page = Math.max(1, page - 1); syncUrl(); load(); });
  document.getElementById("next").addEventListener("click", () => { page += 1; syncUrl(); load(); });
  await load();
}

main().catch((e) => {
  console.error(e);
  tbody.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "error" }, t("common.error") + "：" + e.message)));
});
