// Base map (底图): roads, water and named places from /api/v1/basemap/{layer}, drawn in a pane
// UNDER the grid boundaries (pane z-index 300 < the areas pane's 350), reloaded for the view
// (bbox + zoom: the server picks the classes and simplifies) after every move; road and place
// names as labels at higher zoom. Plus a place search box (/api/v1/basemap/search).
/* global L */
import { LANG, api, el, qs, t } from "./common.js";

// class -> [colour, weight]; drawn local first so that main roads lie on top
const ROAD = {
  motorway: ["#f29b38", 4.2], trunk: ["#e6b84f", 3.4], primary: ["#d6c170", 2.5], secondary: ["#9fb0c4", 1.9],
  tertiary: ["#7d8ea5", 1.4], residential: ["#5c6d85", 1.0], unclassified: ["#587463", 1.0],
  living_street: ["#5c6d85", 0.8], service: ["#4f5d70", 0.7], road: ["#5c6d85", 1.0],
};
const ORDER = ["service", "living_street", "road", "unclassified", "residential", "tertiary", "secondary", "primary",
  "trunk", "motorway"];
const WATER = { stroke: false, fill: true, fillColor: "#1b5a8f", fillOpacity: 0.9 };
const WATER_LINE = { color: "#2a6fa8", weight: 2, opacity: 0.9 };
// labels: road classes named from this zoom on; places from their server zoom, towns from 12
const ROAD_LABEL_ZOOM = { motorway: 12, trunk: 12, primary: 13, secondary: 14, tertiary: 15, residential: 16, unclassified: 16 };
const PLACE_LABEL_ZOOM = { town: 12, suburb: 12, city: 12 };

function label(p) { return (LANG === "en" && p.name_en) ? p.name_en : p.name; }

export class BaseMap {
  constructor(map) {
    this.map = map;
    map.createPane("basemap").style.zIndex = 300;
    const lp = map.createPane("basemapLabels");
    lp.style.zIndex = 340;
    lp.style.pointerEvents = "none";
    this.renderer = L.svg({ pane: "basemap", padding: 0.3 });
    this.group = L.layerGroup().addTo(map);
    this.labels = L.layerGroup().addTo(map);
    this.on = true;
    this._seq = 0;
    map.on("moveend", () => { clearTimeout(this._t); this._t = setTimeout(() => this.load(), 120); });
  }

  setVisible(on) {
    this.on = on;
    if (on) { this.group.addTo(this.map); this.labels.addTo(this.map); this.load(); }
    else { this.group.remove(); this.labels.remove(); }
  }

  async load() {
    if (!this.on) return;
    const seq = ++this._seq;
    const b = this.map.getBounds().pad(0.25);
    const zoom = Math.round(this.map.getZoom());
    const p = { zoom, bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((x) => x.toFixed(5)).join(",") };
    const [water, roads, places] = await Promise.all(["water", "roads", "places"].map(
      (layer) => api(`/api/v1/basemap/${layer}` + qs(p), { noRedirect: true })));
    if (seq !== this._seq) return; // a newer view is loading
    this.group.clearLayers();
    this.labels.clearLayers();
    const opts = { pane: "basemap", renderer: this.renderer, interactive: false };
    this.group.addLayer(L.geoJSON(water, {
      ...opts, style: (f) => (f.geometry.type.includes("Line") ? WATER_LINE : WATER),
    }));
    const feats = roads.features.slice().sort((a, c) => ORDER.indexOf(a.properties.kind) - ORDER.indexOf(c.properties.kind));
    this.group.addLayer(L.geoJSON({ type: "FeatureCollection", features: feats }, {
      ...opts,
      style: (f) => {
        const [color, weight] = ROAD[f.properties.kind] || ROAD.road;
        const w = weight * (zoom >= 15 ? 1.8 : zoom >= 13 ? 1.3 : 1);
        return { color, weight: w, opacity: 0.95, lineCap: "round", lineJoin: "round" };
      },
    }));
    this._roadLabels(feats, zoom);
    for (const f of places.features) {
      const k = f.properties.kind;
      if (zoom < (PLACE_LABEL_ZOOM[k] ?? 14)) continue;
      const [lon, lat] = f.geometry.coordinates;
      this.labels.addLayer(L.tooltip({ permanent: true, direction: "center", interactive: false, pane: "basemapLabels",
        className: `bm-label bm-place bm-${k}` }).setLatLng([lat, lon]).setContent(label(f.properties)));
    }
    const node = this.map.getContainer();
    node.dataset.basemapRoads = String(roads.features.length);
    node.dataset.basemapWater = String(water.features.length);
    node.dataset.basemapZoom = String(zoom);
    node.dispatchEvent(new CustomEvent("basemap-loaded", { detail: { zoom, roads: roads.features.length } }));
  }

  /** One label per road name in view, at the middle of its longest piece. */
  _roadLabels(feats, zoom) {
    const best = {};
    for (const f of feats) {
      const p = f.properties;
      if (!p.name || zoom < (ROAD_LABEL_ZOOM[p.kind] ?? 16)) continue;
      const coords = f.geometry.type === "LineString" ? f.geometry.coordinates : f.geometry.coordinates.flat();
      if (coords.length < 2) continue;
      const n = coords.length;
      if (!best[p.name] || n > best[p.name].n) best[p.name] = { n, at: coords[Math.floor(n / 2)], p };
    }
    for (const { at, p } of Object.values(best)) {
      this.labels.addLayer(L.tooltip({ permanent: true, direction: "center", interactive: false, pane: "basemapLabels",
        className: `bm-label bm-road bm-${p.kind}` }).setLatLng([at[1], at[0]]).setContent(label(p)));
    }
  }
}

/** A search box over ``input``: results in a list below it; choosing one calls ``onPick(hit)``
 *  (default: fly the map there and drop a marker). */
export function attachSearch(input, map, onPick) {
  const list = el("ul", { class: "bm-results", role: "listbox", hidden: true });
  input.after(list);
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  let marker = null;
  let timer = null;
  const pick = onPick || ((hit) => {
    const [w, s, e, n] = hit.bbox;
    if (e - w > 0.002 || n - s > 0.002) map.fitBounds([[s, w], [n, e]], { maxZoom: 16 });
    else map.setView([hit.lat, hit.lon], 16);
    if (marker) marker.remove();
    marker = L.marker([hit.lat, hit.lon], { title: hit.name, keyboard: true }).addTo(map);
  });
  async function run() {
    const q = input.value.trim();
    if (!q) { list.hidden = true; return; }
    const res = await api("/api/v1/basemap/search" + qs({ q, limit: 10 }), { noRedirect: true });
    list.replaceChildren();
    if (!res.items.length) list.append(el("li", { class: "muted" }, t("map.search.none")));
    for (const hit of res.items) {
      const b = el("button", { type: "button", role: "option", "data-code": hit.code },
        label(hit), " ", el("span", { class: "muted small" }, t("map.search.kind." + hit.layer)));
      b.addEventListener("click", () => { list.hidden = true; input.value = hit.name; pick(hit); });
      list.append(el("li", {}, b));
    }
    list.hidden = false;
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => run().catch(console.error), 200); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); clearTimeout(timer); run().then(() => { const f = list.querySelector("button"); if (f) f.click(); }); }
    if (e.key === "Escape") list.hidden = true;
  });
}
