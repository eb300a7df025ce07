// The district map: our own GeoJSON boundaries (no tiles), grid layers, case points coloured by SLA
// (clustered by Leaflet.markercluster when many, by the server when very many), and a choropleth.
/* global L */
import { api, el, esc, qs, t, LANG, SLA_COLORS, fmtDate, fmtNum } from "./common.js";

const LEVEL_STYLE = {
  street: { color: "#4fd1ff", weight: 2.2, opacity: 0.95, fill: true, fillOpacity: 0.04, fillColor: "#3cc8ff" },
  community: { color: "#7fb8e6", weight: 1.1, opacity: 0.8, fill: false, dashArray: "4 3" },
  grid: { color: "#5a7fa8", weight: 0.7, opacity: 0.7, fill: false },
};
const LAYER_COLORS = ["#c58cff", "#ffa94d", "#63e6be", "#ff8787", "#ffd43b"];
const CHORO = ["#0b2a4a", "#114b7a", "#1b6fa8", "#3f8fc9", "#f0b429", "#f76707", "#e03131"];
const SIMPLIFY = { street: 15, community: 8, grid: 3 };

function worst(counts) {
  if (counts.red) return "red";
  if (counts.yellow) return "yellow";
  if (counts.green) return "green";
  return "none";
}

function clusterIcon(total, counts) {
  const r = counts.red || 0, y = counts.yellow || 0, g = counts.green || 0;
  const n = Math.max(r + y + g, 1);
  const a = (r / n) * 360, b = a + (y / n) * 360;
  const size = total < 10 ? 30 : total < 100 ? 36 : total < 1000 ? 44 : total < 10000 ? 52 : 60;
  // built as DOM with element styles (not an HTML string) so a strict CSP allows it
  const div = document.createElement("div");
  div.className = "ccluster";
  div.style.width = div.style.height = size + "px";
  div.style.background = `conic-gradient(${SLA_COLORS.red} 0 ${a}deg, ${SLA_COLORS.yellow} ${a}deg ${b}deg, ${SLA_COLORS.green} ${b}deg 360deg)`;
  const span = document.createElement("span");
  span.textContent = fmtNum(total);
  div.append(span);
  return L.divIcon({ html: div, className: "", iconSize: [size, size] });
}

function caseIcon(sla, fresh) {
  return L.divIcon({ className: `case-dot sla-${sla || "none"}${fresh ? " fresh" : ""}`, iconSize: [14, 14] });
}

export class DistrictMap {
  constructor(node, opts = {}) {
    this.node = node;
    this.opts = opts;
    this.scope = opts.scope || {};
    this.filters = {};
    this.boundaries = {};
    this.gridLayers = {};
    this.choro = { metric: opts.metric ?? "density", level: opts.choroLevel || "street", values: {} };
    this.map = L.map(node, {
      zoomControl: true, attributionControl: false, keyboard: true, minZoom: 9, maxZoom: 18,
      zoomSnap: 0.25, preferCanvas: false,
    });
    this.map.setView([31.03, 121.22], 11);
    this.pane = this.map.createPane("areas");
    this.pane.style.zIndex = 350;
    this.caseLayer = L.markerClusterGroup({
      chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 45, spiderfyOnMaxZoom: true,
      iconCreateFunction: (cluster) => {
        const counts = { red: 0, yellow: 0, green: 0 };
        for (const m of cluster.getAllChildMarkers()) counts[m.options.sla] = (counts[m.options.sla] || 0) + 1;
        return clusterIcon(cluster.getChildCount(), counts);
      },
    });
    this.serverClusters = L.layerGroup();
    this.caseLayer.addTo(this.map);
    this.serverClusters.addTo(this.map);
    this.showCases = true;
    this.fresh = new Set();
    this._reqSeq = 0;
    this.map.on("moveend", () => this._debouncedCases());
  }

  areaQuery(level) {
    const p = { level, simplify_m: SIMPLIFY[level] };
    if (this.scope.area_code && this.scope.area_code.length > 6) p.code_prefix = this.scope.area_code;
    return "/api/v1/areas.geojson" + qs(p);
  }

  async loadBoundary(level, fit = false) {
    if (this.boundaries[level]) return this.boundaries[level];
    const gj = await api(this.areaQuery(level));
    const layer = L.geoJSON(gj, {
      pane: "areas",
      style: () => ({ ...LEVEL_STYLE[level] }),
      onEachFeature: (f, lyr) => {
        const p = f.properties;
        const name = (LANG === "en" && p.name_en) ? p.name_en : p.name;
        lyr.on("mouseover", () => lyr.setStyle({ weight: (LEVEL_STYLE[level].weight || 1) + 1.5 }));
        lyr.on("mouseout", () => lyr.setStyle({ weight: LEVEL_STYLE[level].weight }));
        lyr.bindTooltip(() => this._areaTip(level, p, name), { sticky: true });
        if (level === "street" || (level === "community" && this.scope.area_code && this.scope.area_code.length >= 9)) {
          lyr._label = name;
        }
      },
    });
    this.boundaries[level] = layer;
    if (fit && gj.features.length) this.map.fitBounds(layer.getBounds(), { padding: [10, 10], animate: false });
    return layer;
  }

  _areaTip(level, p, name) {
    const v = this.choro.level === level ? this.choro.values[p.code] : undefined;
    let s = `<strong>${esc(name)}</strong><br><span class="muted">${esc(p.code)}</span>`;
    if (v !== undefined && this.choro.metric) s += `<br>${t("map.metric." + this.choro.metric)}：${fmtNum(Math.round(v * 10) / 10)}`;
    return s;
  }

  addLabels(level) {
    const layer = this.boundaries[level];
    if (!layer) return;
    if (this._labels) this._labels.remove();
    this._labels = L.layerGroup();
    this._labelByCode = {};
    layer.eachLayer((lyr) => {
      if (!lyr._label) return;
      const c = lyr.getBounds().getCenter();
      const tip = L.tooltip({ permanent: true, direction: "center", className: "area-label", interactive: false })
        .setLatLng(c).setContent(lyr._label).addTo(this._labels);
      this._labelByCode[lyr.feature.properties.code] = { tip, home: c };
    });
    this._labels.addTo(this.map);
  }

  async setBoundary(level, on) {
    const layer = await this.loadBoundary(level);
    if (on) layer.addTo(this.map); else layer.remove();
    this._restyleChoro();
  }

  async toggleGridLayer(key, on, idx = 0) {
    if (!this.gridLayers[key]) {
      // the grid base's layer features; an area account only needs those around its area
      const p = { simplify_m: 5 };
      if (this.scope.area_code && this.scope.area_code.length > 6) {
        const b = this.map.getBounds().pad(0.5);
        p.bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((x) => x.toFixed(5)).join(",");
      }
      const gj = await api(`/api/v1/layers/${encodeURIComponent(key)}.geojson` + qs(p));
      const color = LAYER_COLORS[idx % LAYER_COLORS.length];
      this.gridLayers[key] = L.geoJSON(gj, {
        pane: "areas",
        style: () => ({ color, weight: 1.4, opacity: 0.9, fill: false, dashArray: "6 4" }),
        onEachFeature: (f, lyr) => lyr.bindTooltip(`${esc(f.properties.name)}<br><span class="muted">${esc(f.properties.code)}</span>`, { sticky: true }),
      });
    }
    if (on) this.gridLayers[key].addTo(this.map); else this.gridLayers[key].remove();
  }

  setFilters(f) {
    this.filters = { ...f };
    return Promise.all([this.loadCases(), this.loadChoropleth()]);
  }

  async zoomTo(code) {
    const level = code.length === 9 ? "street" : code.length === 12 ? "community" : null;
    if (!level) return;
    const layer = await this.loadBoundary(level);
    let found = null;
    layer.eachLayer((l) => { if (l.feature.properties.code === code) found = l; });
    if (found) this.map.fitBounds(found.getBounds(), { padding: [20, 20] });
  }

  _debouncedCases() {
    clearTimeout(this._t);
    this._t = setTimeout(() => this.loadCases(), 150);
  }

  async loadCases() {
    if (!this.showCases) return;
    const b = this.map.getBounds();
    const seq = ++this._reqSeq;
    const p = { ...this.filters, bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((x) => x.toFixed(5)).join(","),
      zoom: Math.floor(this.map.getZoom()) };
    const data = await api("/api/v1/console/map" + qs(p));
    if (seq !== this._reqSeq) return; // a newer request is on its way
    this.caseLayer.clearLayers();
    this.serverClusters.clearLayers();
    if (data.mode === "points") {
      const markers = data.items.map((it) => {
        const [id, lon, lat, sla, stateLabel, cat] = it;
        const m = L.marker([lat, lon], { icon: caseIcon(sla, this.fresh.has(id)), sla, keyboard: true, title: `${id} ${cat || ""}` });
        // the popup belongs to the map, not to the marker: a live refresh redraws the markers and
        // leaves an open popup alone
        m.on("click", () => this.openCasePopup(id, [lat, lon], sla, stateLabel, cat));
        return m;
      });
      this.caseLayer.addLayers(markers);
    } else {
      for (const c of data.items) {
        const counts = { red: c.red, yellow: c.yellow, green: c.green };
        const m = L.marker([c.lat, c.lon], { icon: clusterIcon(c.count, counts), keyboard: true, title: `${c.name || c.code}: ${c.count}` });
        m.bindTooltip(`<strong>${esc(c.name || c.code)}</strong><br>${fmtNum(c.count)} ${t("common.count")} · ` +
          `<span class="txt-red">${t("sla.red")} ${fmtNum(c.red)}</span> · ` +
          `<span class="txt-yellow">${t("sla.yellow")} ${fmtNum(c.yellow)}</span><br>${t("map.zoom_in")}`);
        m.on("click", () => this.map.setView([c.lat, c.lon], Math.min(this.map.getZoom() + 2, 18)));
        this.serverClusters.addLayer(m);
      }
    }
    this._placeLabels(data);
    this.node.dataset.mode = data.mode;
    this.node.dataset.count = String(data.total);
    if (this.node.dataset.ready !== "1") this.node.dataset.readyMs = String(Math.round(performance.now()));
    this.node.dataset.ready = "1";
    this.node.dispatchEvent(new CustomEvent("cases-loaded", { detail: data }));
  }

  /** Street labels sit at their area's centre, or just below the street's cluster when the
   *  server clusters by street (so the count and the name don't overprint). */
  _placeLabels(data) {
    if (!this._labelByCode) return;
    const at = {};
    if (data.mode === "clusters" && data.level === "street") for (const c of data.items) at[c.code] = [c.lat, c.lon];
    for (const [code, { tip, home }] of Object.entries(this._labelByCode)) {
      const el_ = tip.getElement();
      if (at[code]) { tip.setLatLng(at[code]); if (el_) el_.classList.add("below"); }
      else { tip.setLatLng(home); if (el_) el_.classList.remove("below"); }
    }
  }

  _casePopup(id, sla, stateLabel, cat, d) {
    const no = d ? d.case_no : "…";
    const depts = d && d.departments && d.departments.length ? d.departments.filter((x) => x.role === "lead").map((x) => x.name).join("、") : "";
    return `<div class="case-popup" data-case="${esc(id)}"><strong>${esc(cat || "")}</strong><br>${t("cases.col.id")}：<span data-case-no>${esc(no)}</span>` +
      `<br>${t("cases.col.state")}：${esc(stateLabel || "")}` +
      (depts ? `<br>${t("inbox.owner")}：${esc(depts)}` : "") +
      (d && d.due_at ? `<br>${t("cases.col.due")}：${esc(fmtDate(d.due_at))}` : "") +
      `<br><span class="txt-${sla || "none"}">● ${t("sla." + (sla || "none"))}</span><br><a href="/cases/${encodeURIComponent(id)}">${t("map.open_case")} →</a></div>`;
  }

  openCasePopup(id, latlng, sla, stateLabel, cat) {
    if (!this.popup) this.popup = L.popup({ autoPan: true, maxWidth: 280 });
    this.popupCase = id;
    this.popup.setLatLng(latlng).setContent(this._casePopup(id, sla, stateLabel, cat, null)).openOn(this.map);
    api(`/api/v1/cases/${encodeURIComponent(id)}`).then((d) => {
      if (this.popupCase === id && this.popup.isOpen()) this.popup.setContent(this._casePopup(id, sla, stateLabel, cat, d));
    }).catch(() => {});
  }

  async loadChoropleth(metric, level) {
    if (metric !== undefined) this.choro.metric = metric;
    if (level !== undefined) this.choro.level = level;
    if (!this.choro.metric) { this.choro.values = {}; this._restyleChoro(); return; }
    const f = { ...this.filters, level: this.choro.level, metric: this.choro.metric };
    const [data] = await Promise.all([api("/api/v1/console/choropleth" + qs(f)), this.loadBoundary(this.choro.level)]);
    this.choro.values = data.values || {};
    this.choro.breaks = data.breaks || [];
    const layer = this.boundaries[this.choro.level];
    if (layer && !this.map.hasLayer(layer)) { layer.addTo(this.map); this._choroAdded = layer; }
    this._restyleChoro();
  }

  _color(v) {
    const br = this.choro.breaks || [];
    if (v === undefined || v === null || v <= 0) return null;
    let i = 0;
    while (i < br.length && v > br[i]) i++;
    return CHORO[Math.min(i, CHORO.length - 1)];
  }

  _restyleChoro() {
    for (const [level, layer] of Object.entries(this.boundaries)) {
      const isChoro = level === this.choro.level && this.choro.metric;
      layer.setStyle((f) => {
        const base = { ...LEVEL_STYLE[level] };
        if (!isChoro) return base;
        const col = this._color(this.choro.values[f.properties.code]);
        return { ...base, fill: true, fillColor: col || "#0b1a2e", fillOpacity: col ? 0.55 : 0.15 };
      });
    }
    this._renderLegend();
  }

  _renderLegend() {
    const box = document.getElementById("choro-legend");
    if (!box) return;
    box.replaceChildren();
    if (!this.choro.metric || !(this.choro.breaks || []).length) return;
    const scale = el("span", { class: "choro-scale" }, t("map.metric." + this.choro.metric) + "：");
    const br = this.choro.breaks;
    scale.append(el("span", {}, "0"));
    br.forEach((b, i) => { const sw = el("i"); sw.style.background = CHORO[Math.min(i, CHORO.length - 1)]; scale.append(sw); });
    const top = br[br.length - 1];
    scale.append(el("span", {}, top < 10 ? top.toFixed(1) : fmtNum(Math.round(top))));
    box.append(scale);
  }

  setShowCases(on) {
    this.showCases = on;
    if (on) { this.caseLayer.addTo(this.map); this.serverClusters.addTo(this.map); this.loadCases(); }
    else { this.caseLayer.remove(); this.serverClusters.remove(); }
  }

  markFresh(id) {
    this.fresh.add(id);
    setTimeout(() => this.fresh.delete(id), 15000);
  }
}

export function fmtCaseTime(v) { return fmtDate(v); }
