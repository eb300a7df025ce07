// Mobile report page (grid worker and citizen): GPS or pin, category picker with search, photos,
// description; "my reports" with status. Works at phone width.
/* global L */
import { BOOT, LANG, api, el, fmtDate, qs, slaBadge, t, toast } from "./common.js";
import { BaseMap, attachSearch } from "./basemap.js";

const form = document.getElementById("report-form");
const errBox = document.getElementById("report-error");
const locInfo = document.getElementById("loc-info");
const signedIn = !!BOOT.user;
const staff = signedIn && BOOT.user.permissions.includes("case.report");
const MINE_KEY = "cityops.myReports";
let point = null;
let chosen = null;
let photos = [];
let categories = [];

// ---------------------------------------------------------------- map + location
const map = L.map("pick-map", { attributionControl: false, zoomControl: true, keyboard: true });
map.setView([31.03, 121.22], 10);
const pane = map.createPane("areas");
pane.style.zIndex = 350;
let pin = null;
const basemap = new BaseMap(map);
// a place found by name puts the pin there (then drag it to the exact spot)
attachSearch(document.getElementById("place-search"), map, (hit) => {
  map.setView([hit.lat, hit.lon], 17);
  setPoint(hit.lat, hit.lon, "search");
});

async function drawDistrict() {
  const gj = await api("/api/v1/areas.geojson" + qs({ level: "street", simplify_m: 30 }), { noRedirect: true });
  const lyr = L.geoJSON(gj, { pane: "areas", style: { color: "#4fd1ff", weight: 1.5, fill: true, fillOpacity: 0.05 } });
  lyr.addTo(map);
  map.fitBounds(lyr.getBounds());
}

async function setPoint(lat, lon, how) {
  point = { lat, lon };
  if (!pin) pin = L.marker([lat, lon], { draggable: true, keyboard: true, title: t("report.location") }).addTo(map);
  else pin.setLatLng([lat, lon]);
  pin.off("dragend").on("dragend", () => { const p = pin.getLatLng(); setPoint(p.lat, p.lng, "pin"); });
  if (how === "gps") map.setView([lat, lon], 16);
  locInfo.textContent = `${t("report.located")}：${lat.toFixed(5)}, ${lon.toFixed(5)}`;
  try {
    const g = await api("/api/v1/grids/locate" + qs({ lat, lon }), { noRedirect: true });
    if (!g.inside) {
      locInfo.textContent = t("report.outside");
      point.outside = true;
    } else {
      locInfo.textContent = `${t("report.located")}：${g.street_name} · ${g.community_name} · ${g.grid_name}`;
      locInfo.dataset.grid = g.grid_code;
    }
  } catch (e) { /* locate is a convenience */ }
}

map.on("click", (e) => setPoint(e.latlng.lat, e.latlng.lng, "pin"));
document.getElementById("gps").addEventListener("click", () => {
  if (!navigator.geolocation) { toast(t("report.need_location"), "error"); return; }
  navigator.geolocation.getCurrentPosition(
    (pos) => setPoint(pos.coords.latitude, pos.coords.longitude, "gps"),
    (err) => toast(err.message || t("report.need_location"), "error"),
    { enableHighAccuracy: true, timeout: 10000, maximumAge: 30000 });
});

// ---------------------------------------------------------------- categories
const catBox = document.getElementById("catlist");
const catSearch = document.getElementById("cat-search");

function catLabel(c) { return (LANG === "en" && c.name_en) ? c.name_en : c.name; }

function renderCats() {
  const q = catSearch.value.trim().toLowerCase();
  catBox.replaceChildren();
  let group = null;
  let shown = 0;
  for (const c of categories) {
    const hay = `${c.name} ${c.name_en || ""} ${c.code} ${c.group || ""} ${c.keywords || ""}`.toLowerCase();
    if (q && !hay.includes(q)) continue;
    const g = (LANG === "en" && c.group_en) ? c.group_en : c.group;
    if (g && g !== group) { group = g; catBox.append(el("div", { class: "cat-group", role: "presentation" }, g)); }
    const b = el("button", { type: "button", role: "option", "aria-pressed": chosen && chosen.code === c.code ? "true" : "false",
      "aria-selected": chosen && chosen.code === c.code ? "true" : "false", "data-code": c.code }, catLabel(c));
    b.addEventListener("click", () => {
      chosen = c;
      document.getElementById("cat-chosen").textContent = `${catLabel(c)}（${c.code}）`;
      renderCats();
    });
    catBox.append(b);
    shown++;
  }
  if (!shown) catBox.append(el("div", { class: "cat-group" }, t("common.none")));
}
catSearch.addEventListener("input", renderCats);

// ---------------------------------------------------------------- category proposed from the description
// (smart dispatch): a debounced call while the citizen types; they confirm ("use it") or skip.
const suggestBox = document.getElementById("suggest");
let suggestTimer = null;
let suggested = null;
let skipped = false;

async function suggest() {
  const text = form.description.value.trim();
  if (text.length < 4 || skipped || chosen) { suggestBox.hidden = true; return; }
  try {
    const res = await api("/api/v1/public/classify", { method: "POST", body: { text, channel: "app" }, noRedirect: true });
    const top = res.candidates && res.candidates[0];
    if (!top) { suggestBox.hidden = true; return; }
    suggested = categories.find((c) => c.code === top.category_code) || { code: top.category_code, name: top.name_zh };
    document.getElementById("suggest-name").textContent = `${catLabel(suggested)}（${top.category_code}）`;
    document.getElementById("suggest-score").textContent = `${Math.round(top.score * 100)}%`;
    suggestBox.dataset.review = res.needs_review ? "1" : "0";
    suggestBox.hidden = false;
  } catch (e) { suggestBox.hidden = true; /* a suggestion is a convenience */ }
}
form.description.addEventListener("input", () => {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(suggest, 600);
});
document.getElementById("suggest-use").addEventListener("click", () => {
  if (!suggested) return;
  chosen = suggested;
  document.getElementById("cat-chosen").textContent = `${catLabel(chosen)}（${chosen.code}）`;
  suggestBox.hidden = true;
  renderCats();
});
document.getElementById("suggest-skip").addEventListener("click", () => { skipped = true; suggestBox.hidden = true; });

// ---------------------------------------------------------------- photos
const photoInput = document.getElementById("photos");
photoInput.addEventListener("change", () => {
  photos = Array.from(photoInput.files || []).slice(0, 6);
  const box = document.getElementById("thumbs");
  box.replaceChildren(...photos.map((f) => el("img", { src: URL.createObjectURL(f), alt: f.name })));
});

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

// ---------------------------------------------------------------- my reports
// signed in: the cases I reported (server side); citizen: the tracking tokens kept on this phone
function localReports() { return JSON.parse(localStorage.getItem(MINE_KEY) || "[]"); }
function rememberLocal(entry) {
  const list = localReports().filter((x) => x.token !== entry.token);
  list.unshift(entry);
  localStorage.setItem(MINE_KEY, JSON.stringify(list.slice(0, 30)));
}

async function loadMine() {
  const ul = document.getElementById("mine");
  let items = [];
  try {
    if (staff) {
      items = (await api("/api/v1/console/my-reports")).items;
    } else {
      for (const r of localReports()) {
        try {
          const st = await api(`/api/v1/public/reports/${encodeURIComponent(r.token)}`, { noRedirect: true });
          items.push({ id: r.case_id, case_no: st.case_no, category: st.category_name, state: st.state,
            state_label: st.state_label, reported_at: st.reported_at });
        } catch (e) { /* token no longer known */ }
      }
    }
  } catch (e) { console.error(e); }
  ul.replaceChildren();
  if (!items.length) { ul.append(el("li", { class: "muted" }, t("report.mine.empty"))); return; }
  for (const c of items) {
    const name = staff ? el("a", { href: `/cases/${encodeURIComponent(c.id)}` }, c.case_no || c.id) : el("strong", {}, c.case_no || c.id);
    ul.append(el("li", { "data-case": c.id }, el("span", {}, name, " ", c.category || "", el("br"),
      el("span", { class: "muted small" }, fmtDate(c.reported_at))),
    el("span", {}, el("span", { class: "badge state" }, c.state_label || c.state), " ", c.sla ? slaBadge(c.sla) : null)));
  }
}

// ---------------------------------------------------------------- submit
function fail(msg) { errBox.textContent = msg; errBox.hidden = false; }

async function uploadPhotos() {
  if (!photos.length) return [];
  const fd = new FormData();
  for (const f of photos) fd.append("files", f);
  const path = signedIn && BOOT.user.permissions.includes("case.act") ? "/api/v1/media" : "/api/v1/public/media";
  const res = await api(path, { method: "POST", body: fd, noRedirect: true });
  return res.items.map((m) => m.id);
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  errBox.hidden = true;
  const description = form.description.value.trim();
  if (!point) return fail(t("report.need_location"));
  if (point.outside) return fail(t("report.outside"));
  if (!description) return fail(t("report.need_description"));
  if (!chosen && description.length < 4) return fail(t("report.need_category"));
  const btn = document.getElementById("submit");
  btn.disabled = true;
  try {
    const body = {
      category_code: chosen ? chosen.code : null, lat: point.lat, lon: point.lon, description,
      address: form.address.value.trim() || null, media: await uploadPhotos(),
    };
    if (!staff && form.contact && form.contact.value.trim()) body.reporter_phone = form.contact.value.trim();
    const res = await api(staff ? "/api/v1/cases" : "/api/v1/public/reports", {
      method: "POST", body, headers: { "Idempotency-Key": crypto.randomUUID() }, noRedirect: true,
    });
    if (res.tracking_token) rememberLocal({ token: res.tracking_token, case_id: res.case_id });
    toast(res.linked ? t("report.linked", { id: res.case_no }) : t("report.submitted", { id: res.case_no }), "ok");
    document.body.dataset.lastReport = String(res.case_id);
    document.getElementById("report-result").textContent =
      res.linked ? t("report.linked", { id: res.case_no }) : t("report.submitted", { id: res.case_no });
    form.description.value = "";
    photos = [];
    photoInput.value = "";
    document.getElementById("thumbs").replaceChildren();
    await loadMine();
  } catch (e) {
    fail(t("common.error") + "：" + (e.message || e));
  } finally {
    btn.disabled = false;
  }
});

async function main() {
  const [cats] = await Promise.all([api("/api/v1/console/report-categories", { noRedirect: true }), drawDistrict()]);
  basemap.load().catch((e) => console.error(e));
  categories = cats.items;
  renderCats();
  await loadMine();
  document.body.dataset.ready = "1";
}
main().catch((e) => { console.error(e); fail(String(e.message || e)); });
