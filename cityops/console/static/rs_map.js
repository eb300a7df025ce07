// 应急资源一张图: warehouses (coloured by their stock against the minimum), teams, shelters and
// equipment over the road/river base map and the street boundaries; the warehouse table with the
// main stock levels; the shipments board. Data: /api/v1/resources/map and /shipments.
/* global L */
import { api, el, esc, LANG, qs, t } from "./common.js";
import { BaseMap } from "./basemap.js";

const COLORS = { warehouses: "#2f7cf6", teams: "#2ecc71", shelters: "#f5c542", equipment: "#c28cff" };
const layers = {};
let map = null;

function name(o) { return o.name || o.code; }

function popup(kind, o) {
  if (kind === "warehouses") {
    const rows = (o.stock || []).slice(0, 8).map((s) =>
      `<tr><td>${esc(s.item_name)}</td><td style="text-align:right${s.low ? ";color:#ff4d4f" : ""}">${s.available} ${esc(s.unit)}</td></tr>`).join("");
    return `<b>${esc(name(o))}</b><br>${esc(o.kind_label)}<table>${rows}</table>`;
  }
  if (kind === "teams") return `<b>${esc(name(o))}</b><br>${esc(o.kind_label)} · ${t("rs.headcount")} ${o.headcount}`;
  if (kind === "shelters") return `<b>${esc(name(o))}</b><br>${t("rs.capacity")} ${o.capacity} · ${esc(o.status)}`;
  return `<b>${esc(name(o))}</b><br>${esc(o.kind)} × ${o.quantity}`;
}

async function drawMap(data) {
  map = L.map("rs-map", { zoomControl: true, attributionControl: false, preferCanvas: true });
  const base = new BaseMap(map);
  const gj = await api("/api/v1/areas.geojson" + qs({ level: "street", simplify_m: 60 }));
  const streets = L.geoJSON(gj, {
    style: () => ({ color: "#9fb3d1", weight: 1, fill: false }),
    onEachFeature: (f, lyr) => lyr.bindTooltip(esc((LANG === "en" && f.properties.name_en) ? f.properties.name_en : f.properties.name)),
  }).addTo(map);
  map.fitBounds(streets.getBounds(), { padding: [6, 6], animate: false });
  for (const kind of Object.keys(COLORS)) {
    const g = L.layerGroup();
    for (const o of data[kind] || []) {
      const low = kind === "warehouses" && o.low > 0;
      L.circleMarker([o.lat, o.lon], {
        radius: kind === "warehouses" ? 8 : (kind === "shelters" ? 6 : 5), weight: low ? 3 : 1,
        color: low ? "#ff4d4f" : "#0d1628", fillColor: COLORS[kind], fillOpacity: 0.9,
      }).bindPopup(popup(kind, o)).bindTooltip(esc(name(o))).addTo(g);
    }
    layers[kind] = g;
    if (kind !== "equipment") g.addTo(map);
  }
  for (const cb of document.querySelectorAll(".rs-layers input[data-layer]")) {
    cb.addEventListener("change", () => {
      const k = cb.dataset.layer;
      if (k === "roads") base.setVisible(cb.checked);
      else if (cb.checked) layers[k].addTo(map); else layers[k].remove();
    });
  }
  await base.load().catch((e) => console.error(e));
  document.getElementById("rs-map").dataset.ready = "1";
}

function drawWarehouses(data) {
  const tb = document.querySelector("#rs-warehouses tbody");
  const rows = (data.warehouses || []).map((w) => {
    const top = (w.stock || []).slice().sort((a, b) => b.available - a.available).slice(0, 3);
    const max = Math.max(1, ...top.map((s) => s.available));
    const stock = el("td", {}, ...top.map((s) => el("div", { class: "small" }, `${s.item_name} ${s.available}${s.unit}`,
      el("span", { class: "rs-bar" + (s.low ? " low" : ""), style: `width:${Math.round(60 * s.available / max)}px` }))));
    return el("tr", { "data-warehouse": String(w.id) }, el("th", { scope: "row", title: w.code }, name(w)),
      el("td", {}, w.kind_label), el("td", {}, String(w.items)),
      el("td", w.low ? { class: "low", title: t("rs.low_stock") } : {}, String(w.low)), stock);
  });
  tb.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "5" }, t("rs.none")))]));
}

async function drawShipments() {
  const j = await api("/api/v1/resources/shipments" + qs({ page_size: 50 }));
  const tb = document.querySelector("#rs-shipments tbody");
  const rows = j.items.slice().reverse().map((s) => el("tr", { "data-shipment": String(s.id) },
    el("td", {}, s.code), el("td", {}, s.item_code), el("td", {}, String(s.quantity)),
    el("td", {}, s.warehouse_name || ""), el("td", {}, s.demand_name || ""),
    el("td", {}, el("span", { class: "badge" }, s.state_label))));
  tb.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6" }, t("rs.none")))]));
}

async function main() {
  const data = await api("/api/v1/resources/map");
  document.getElementById("rs-count").textContent = t("rs.count", {
    w: data.warehouses.length, t: data.teams.length, s: data.shelters.length, e: data.equipment.length });
  drawWarehouses(data);
  await Promise.all([drawMap(data), drawShipments()]);
}

main().catch((e) => { console.error(e); document.getElementById("rs-count").textContent = String(e.message || e); });
