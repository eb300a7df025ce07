// 战时疫情指挥: zones on the map with their counts, cases and exposure places, the contact graph of
// one case, today's follow-up list per community. Data from /api/v1/outbreak (scoped and masked).
import { api, BOOT, el, esc, fmtNum, LANG, qs, t } from "./common.js";

const LEVEL_COLORS = { sealed: "#e03131", controlled: "#f08c00", precaution: "#2f9e44", lifted: "#868e96" };
const P = "/api/v1/outbreak";
let map = null;
let layers = [];
let current = null;

function levelBadge(z) {
  return el("span", { class: `ob-badge lv-${z.level}` }, z.level_label);
}

async function init() {
  const list = await api(P + "/outbreaks" + qs({ state: "active" }));
  const sel = document.getElementById("ob-pick");
  if (!list.length) {
    document.getElementById("ob-figs").replaceChildren(el("p", { class: "placeholder" }, t("ob.none")));
    document.getElementById("ob-page").dataset.ready = "1";
    return;
  }
  for (const o of list) sel.append(el("option", { value: o.id }, `${o.title}（${o.code}）`));
  const want = (BOOT.data && BOOT.data.outbreak) || list[0].id;
  sel.value = String(want);
  sel.addEventListener("change", () => load(Number(sel.value)));
  await load(Number(sel.value));
}

async function load(id) {
  current = id;
  document.getElementById("ob-report-link").href = "/outbreak/report" + qs({ outbreak: id });
  const [ob, zones, places, cases, fu] = await Promise.all([
    api(`${P}/outbreaks/${id}`), api(`${P}/outbreaks/${id}/zones.geojson`), api(`${P}/outbreaks/${id}/places.geojson`),
    api(`${P}/outbreaks/${id}/cases` + qs({ page_size: 500 })), api(`${P}/outbreaks/${id}/followups`)]);
  drawFigures(ob, zones);
  drawMap(zones, places, cases.items);
  drawZones(zones);
  drawCases(cases);
  drawFollowup(fu);
  if (cases.items.length) await drawGraph(cases.items[0].code);
  document.getElementById("ob-page").dataset.ready = "1";
}

function drawFigures(ob, zones) {
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  const figs = [
    ["ob.summary.cases", sum(ob.cases), "red"], ["ob.summary.close", (ob.contacts || {}).close || 0, ""],
    ["ob.summary.secondary", (ob.contacts || {}).secondary || 0, ""], ["ob.summary.zones", zones.features.length, ""]];
  document.getElementById("ob-figs").replaceChildren(...figs.map(([k, v, c]) =>
    el("div", { class: "fig " + c }, el("span", {}, t(k)), el("strong", { "data-fig": k }, fmtNum(v)))));
  const labels = {};
  for (const f of zones.features) labels[f.properties.level] = f.properties.level_label;
  document.querySelectorAll(".ob-legend [data-level]").forEach((n) => {
    n.textContent = labels[n.dataset.level] || { sealed: "封控区", controlled: "管控区", precaution: "防范区" }[n.dataset.level];
  });
}

function drawMap(zones, places, cases) {
  if (!map) {
    map = L.map("ob-map", { zoomControl: true, attributionControl: false });
    api("/api/v1/areas.geojson" + qs({ level: "street", simplify_m: 60 })).then((gj) => {
      L.geoJSON(gj, { interactive: false, style: { color: "#5c7cfa", weight: 1, fill: false, dashArray: "3 3" } })
        .addTo(map).bringToBack();
    }).catch(() => {});
  }
  layers.forEach((l) => l.remove());
  const z = L.geoJSON(zones, {
    style: (f) => ({ color: LEVEL_COLORS[f.properties.level] || "#999", weight: 2, fillOpacity: 0.25,
      fillColor: LEVEL_COLORS[f.properties.level] || "#999" }),
    onEachFeature: (f, lyr) => {
      const p = f.properties;
      lyr.bindTooltip(`${esc(p.name)}（${esc(p.level_label)}）<br>${t("ob.col.households")} ${fmtNum(p.population.households)}` +
        ` · ${t("ob.col.residents")} ${fmtNum(p.population.residents)} · ${t("ob.col.cases")} ${p.people.cases}`, { sticky: true });
    },
  }).addTo(map);
  const pl = L.geoJSON(places, {
    pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 4 + Math.min(8, f.properties.exposures), color: "#1c7ed6",
      fillColor: "#4dabf7", fillOpacity: 0.8, weight: 1 }).bindTooltip(esc(f.properties.name || f.properties.code || "")),
  }).addTo(map);
  const cs = L.layerGroup(cases.filter((c) => c.lon).map((c) => L.circleMarker([c.lat, c.lon],
    { radius: 5, color: "#fff", weight: 1, fillColor: "#ff4d4f", fillOpacity: 1 }).bindTooltip(esc(c.code)))).addTo(map);
  layers = [z, pl, cs];
  const b = z.getBounds();
  if (b.isValid()) map.fitBounds(b.pad(0.6), { animate: false });
  else map.setView([31.03, 121.22], 11);
  document.getElementById("ob-map").dataset.ready = "1";
}

function drawZones(zones) {
  const rows = zones.features.map((f) => {
    const p = f.properties;
    return el("tr", { "data-zone": p.id }, el("td", { title: p.code }, p.name), el("td", {}, levelBadge(p)),
      el("td", { class: "num" }, fmtNum(p.population.households)), el("td", { class: "num" }, fmtNum(p.population.residents)),
      el("td", { class: "num" }, fmtNum(p.population.elderly_alone)), el("td", { class: "num" }, p.people.cases),
      el("td", { class: "num" }, p.people.close), el("td", {}, p.downgrade_due || "–"));
  });
  document.querySelector("#ob-zones tbody").replaceChildren(...rows);
}

function drawCases(cases) {
  document.getElementById("ob-case-count").textContent = cases.total;
  const rows = cases.items.map((c) => {
    const tr = el("tr", { "data-case": c.code }, el("td", {}, c.code.split("-").pop()), el("td", {}, c.person.name),
      el("td", { class: "mono" }, c.person.id_number || "–"), el("td", {}, c.classification_label),
      el("td", {}, c.onset_on || "–"), el("td", {}, c.street_code || "–"));
    tr.addEventListener("click", () => drawGraph(c.code));
    return tr;
  });
  document.querySelector("#ob-cases tbody").replaceChildren(...rows);
}

async function drawGraph(code) {
  document.querySelectorAll("#ob-cases tbody tr").forEach((r) => r.classList.toggle("sel", r.dataset.case === code));
  const g = await api(`${P}/cases/${encodeURIComponent(code)}/chain`);
  document.getElementById("ob-graph-case").textContent = code;
  const W = 560, H = 260;
  const depth = new Map([[g.root, 0]]);
  for (let pass = 0; pass < 3; pass++) for (const l of g.links) {
    if (depth.has(l.source) && !depth.has(l.target)) depth.set(l.target, depth.get(l.source) + 1);
    if (depth.has(l.target) && !depth.has(l.source)) depth.set(l.source, depth.get(l.target) - 1);
  }
  const cols = new Map();
  for (const n of g.nodes) { const d = depth.get(n.id) ?? 1; if (!cols.has(d)) cols.set(d, []); cols.get(d).push(n); }
  const ds = [...cols.keys()].sort((a, b) => a - b);
  const pos = new Map();
  ds.forEach((d, i) => { const col = cols.get(d); col.forEach((n, j) => pos.set(n.id,
    [40 + i * ((W - 80) / Math.max(1, ds.length - 1)), 20 + (j + 0.5) * ((H - 40) / col.length)])); });
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  for (const l of g.links) {
    const a = pos.get(l.source), b = pos.get(l.target);
    if (!a || !b) continue;
    const ln = document.createElementNS(ns, "line");
    ln.setAttribute("x1", a[0]); ln.setAttribute("y1", a[1]); ln.setAttribute("x2", b[0]); ln.setAttribute("y2", b[1]);
    svg.append(ln);
  }
  for (const n of g.nodes) {
    const [x, y] = pos.get(n.id);
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", n.root ? 9 : 6);
    c.setAttribute("class", "n-" + (n.category || "none"));
    const tx = document.createElementNS(ns, "text");
    tx.setAttribute("x", x + 10); tx.setAttribute("y", y + 4);
    tx.textContent = `${n.name} ${n.category_label}`;
    svg.append(c, tx);
  }
  const box = document.getElementById("ob-graph");
  box.replaceChildren(svg);
  box.dataset.nodes = String(g.nodes.length);
}

function drawFollowup(fu) {
  document.getElementById("ob-fu-count").textContent = fu.total;
  const box = document.getElementById("ob-followup");
  if (!fu.communities.length) { box.replaceChildren(el("p", { class: "placeholder" }, "—")); return; }
  box.replaceChildren(...fu.communities.map((c) => el("div", { class: "com", "data-community": c.community_code },
    el("h3", {}, `${c.community_name || c.community_code}（${c.count}）`),
    el("ul", {}, ...c.items.slice(0, 8).map((p) => el("li", {},
      `${p.name} ${p.phone || ""} · ${p.category_label} · ${p.due.map((d) => t("ob.due." + d)).join("、")}` +
      ` · ${t("ob.col.m_end")} ${p.monitoring_end}`))))));
}

init().catch((e) => {
  document.getElementById("ob-page").dataset.error = String(e && e.message || e);
  console.error(e);
});
void LANG;
