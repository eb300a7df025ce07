// Incidents: list in scope, map, phone-report intake (the one intake of cityops.emergency).
/* global L */
import { LANG, api, el, fmtDate, t, toast } from "./common.js";
import { exerciseBadge, levelBadge, streetBoundaries } from "./em_common.js";

const tbody = document.querySelector("#incidents-table tbody");
const openOnly = document.getElementById("open-only");
const map = L.map("em-map", { attributionControl: false, minZoom: 9, maxZoom: 18 }).setView([31.03, 121.22], 10.5);
const layer = L.layerGroup().addTo(map);
streetBoundaries(map);

async function load() {
  const q = openOnly.checked ? "?open=true&page_size=200" : "?page_size=200";
  const page = await api("/api/v1/emergency/incidents" + q);
  tbody.replaceChildren(...page.items.map((i) => el("tr", {},
    el("td", {}, el("a", { href: `/emergency/incidents/${i.id}` }, i.code)),
    el("td", {}, i.title, " ", exerciseBadge(i.exercise)),
    el("td", {}, `${i.category_name}·${i.subtype_name}`),
    el("td", {}, i.severity_name),
    el("td", {}, levelBadge(i.response_level)),
    el("td", {}, i.state_name),
    el("td", {}, i.street_name || i.area_code),
    el("td", {}, fmtDate(i.reported_at)))));
  if (!page.items.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "–")));
  layer.clearLayers();
  for (const i of page.items) {
    if (i.lat == null) continue;
    L.marker([i.lat, i.lon], { title: i.title, icon: L.divIcon({ className: `em-dot em-dot-${i.response_level || "none"}`, iconSize: [16, 16] }) })
      .bindPopup(`<a href="/emergency/incidents/${i.id}">${i.code}</a>`).addTo(layer);
  }
  document.body.dataset.ready = "1";
}

async function loadKinds() {
  const sel = document.getElementById("rf-kind");
  if (!sel) return;
  const doc = await api("/api/v1/emergency/categories");
  for (const c of doc.categories) {
    const g = el("optgroup", { label: LANG === "en" ? c.en : c.zh });
    for (const s of c.subtypes) g.append(el("option", { value: `${c.code}:${s.code}` }, LANG === "en" ? s.en : s.zh));
    sel.append(g);
  }
}

const form = document.getElementById("report-form");
if (form) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const [category, subtype] = String(fd.get("kind")).split(":");
    try {
      const res = await api("/api/v1/emergency/incidents", { method: "POST", body: {
        source_type: "phone", category, subtype, severity: fd.get("severity"), title: fd.get("title"),
        description: fd.get("description") || null, area: fd.get("area") || null, exercise: fd.get("exercise") === "on" } });
      toast(`${res.code}${res.merged ? " (merged)" : ""}`, "ok");
      location.href = `/emergency/incidents/${res.incident_id}`;
    } catch (e) { toast(e.message, "error"); }
  });
  map.on("click", async (ev) => {
    try {
      const hit = await api(`/api/v1/grids/locate?lat=${ev.latlng.lat}&lon=${ev.latlng.lng}`);
      if (hit.grid_code) document.getElementById("rf-area").value = hit.grid_code;
    } catch (e) { /* outside */ }
  });
}

openOnly.addEventListener("change", load);
loadKinds();
load();
