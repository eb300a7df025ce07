// Case detail: facts, map, photos, timeline, consultation thread (会商), and ONLY the actions the
// signed-in role may take now (GET /api/v1/cases/{id}/actions), in Chinese, with the fields each needs.
/* global L */
import { BOOT, LANG, api, el, fmtDate, liveStream, slaBadge, t, toast } from "./common.js";
import { loadMeta } from "./filters.js";

const root = document.getElementById("case-page");
const caseId = root.dataset.caseId;
let detail = null;
let meta = null;
let map = null;
let marker = null;

const PARAMS = new URLSearchParams(location.search);
let autoOpened = false;
const RESULTS = { verify: ["valid", "invalid"], inspect: ["pass", "fail"] };
const UNITS = ["working_hour", "working_day", "natural_hour", "natural_day"];

function lbl(o) { return o ? ((LANG === "en" && o.name_en) ? o.name_en : o.name) : ""; }
function deptName(code) { return lbl((meta.departments || []).find((d) => d.code === code)) || code; }
function srcName(code) { return lbl((meta.sources || []).find((d) => d.code === code)) || code; }
function stateName(code) { return lbl((meta.states || []).find((d) => d.code === code)) || code; }

function kv(dl, key, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", {}, key), el("dd", {}, value));
}

function renderFacts() {
  const c = detail;
  document.getElementById("case-no").textContent = c.case_no;
  const badges = document.getElementById("case-badges");
  badges.replaceChildren(el("span", { class: "badge state", "data-state": c.state }, stateName(c.state)), " ", slaBadge(c.sla));
  const dl = document.getElementById("case-kv");
  dl.replaceChildren();
  kv(dl, t("cases.col.category"), `${(LANG === "en" && c.category && c.category.name_en) || c.category_name}（${c.category_code}）`);
  kv(dl, t("case.description"), c.description || c.title);
  kv(dl, t("case.address"), c.address);
  kv(dl, t("cases.col.area"), [c.street_name, c.community_name].filter(Boolean).join(" · "));
  kv(dl, t("case.grid"), `${c.grid_name || ""} ${c.grid_code}`);
  kv(dl, t("case.source"), srcName(c.source));
  kv(dl, t("case.urgency"), t("urgency." + c.urgency));
  kv(dl, t("case.reporter"), [c.reporter_name, c.reporter_phone].filter(Boolean).join(" "));
  kv(dl, t("case.reporters"), String(c.reporter_count));
  kv(dl, t("cases.col.reported"), fmtDate(c.reported_at));
  kv(dl, t("case.deadline"), c.due_at ? fmtDate(c.due_at) : null);
  if (c.departments && c.departments.length) {
    kv(dl, t("case.departments"), c.departments.map((d) => `${d.name}（${t(d.role === "lead" ? "case.dept.lead" : "case.dept.co")}）`).join("、"));
  } else if (c.proposed_department_code) {
    kv(dl, t("case.proposed"), deptName(c.proposed_department_code));
  }
}

function renderMap() {
  const c = detail;
  if (!map) {
    map = L.map("case-map", { attributionControl: false, keyboard: true, maxZoom: 18 }).setView([c.lat, c.lon], 15);
    api(`/api/v1/areas/${c.community_code}/geojson`).then((f) => {
      L.geoJSON(f, { style: { color: "#4fd1ff", weight: 2, fill: true, fillOpacity: 0.06 } }).addTo(map);
    }).catch(() => {});
    api(`/api/v1/areas/${c.grid_code}/geojson`).then((f) => {
      const g = L.geoJSON(f, { style: { color: "#f5c542", weight: 2, dashArray: "5 4", fill: false } }).addTo(map);
      map.fitBounds(g.getBounds().extend([c.lat, c.lon]), { padding: [30, 30], maxZoom: 17 });
    }).catch(() => {});
  }
  if (marker) marker.remove();
  marker = L.marker([c.lat, c.lon], {
    icon: L.divIcon({ className: `case-dot case-dot-lg sla-${c.sla}`, iconSize: [18, 18] }), title: c.case_no,
  }).addTo(map);
}

function mediaIds() {
  const ids = [];
  for (const r of detail.reports || []) for (const m of r.media || []) ids.push(m);
  for (const e of detail.timeline || []) for (const m of e.attachments || []) ids.push(m);
  return [...new Set(ids)];
}

function renderPhotos() {
  const box = document.getElementById("photos");
  const ids = mediaIds();
  box.replaceChildren();
  if (!ids.length) { box.append(el("p", { class: "muted" }, t("case.no_photos"))); return; }
  for (const id of ids) {
    box.append(el("a", { href: `/api/v1/media/${id}`, target: "_blank", rel: "noopener" },
      el("img", { src: `/api/v1/media/${id}`, alt: t("case.photos"), loading: "lazy" })));
  }
}

function renderTimeline() {
  const ol = document.getElementById("timeline");
  ol.replaceChildren();
  for (const e of detail.timeline || []) {
    const who = e.department_code ? `${e.actor} · ${deptName(e.department_code)}` : e.actor;
    const change = e.from_state && e.to_state && e.from_state !== e.to_state ? `${stateName(e.from_state)} → ${stateName(e.to_state)}` : "";
    ol.append(el("li", { "data-action": e.action },
      el("div", { class: "when" }, fmtDate(e.at), " · ", who),
      el("div", { class: "what" }, e.action_label || e.action, change ? el("span", { class: "muted" }, "  " + change) : null),
      e.reason ? el("div", {}, t("case.action.reason") + "：" + e.reason) : null,
      e.note && e.action !== "report" ? el("div", { class: "muted" }, e.note) : null));
  }
  ol.dataset.count = String((detail.timeline || []).length);
}

async function renderThread() {
  const ol = document.getElementById("thread");
  const msgs = await api(`/api/v1/cases/${caseId}/consultations`);
  ol.replaceChildren();
  if (!msgs.length) ol.append(el("li", { class: "muted" }, t("case.thread.empty")));
  for (const m of msgs) {
    ol.append(el("li", {}, el("div", { class: "muted small" }, `${fmtDate(m.at)} · ${m.author}${m.department_code ? " · " + deptName(m.department_code) : ""}`), m.body));
  }
}

// ---------------------------------------------------------------- actions
async function uploadPhotos(files) {
  if (!files || !files.length) return [];
  const fd = new FormData();
  for (const f of files) fd.append("files", f);
  const res = await api("/api/v1/media", { method: "POST", body: fd });
  return res.items.map((m) => m.id);
}

function field(labelText, input) {
  const id = "af-" + Math.random().toString(36).slice(2, 8);
  input.id = id;
  return el("div", { class: "field" }, el("label", { for: id }, labelText), input);
}

function select(name, options, value, multiple = false) {
  const s = el("select", { name });
  s.multiple = multiple; // before the options: a single select would pre-select the first one
  for (const [v, text] of options) s.append(el("option", { value: v }, text));
  if (multiple) for (const o of s.options) o.selected = false;
  else if (value) s.value = value;
  return s;
}

function actionForm(a) {
  const slot = document.getElementById("action-form-slot");
  const req = new Set(a.required || []);
  const form = el("form", { class: "action-form", "data-action": a.action });
  form.append(el("h3", {}, (LANG === "en" ? a.label_en : a.label)));
  const depts = (meta.departments || []).map((d) => [d.code, lbl(d)]);
  if (req.has("department_code") || ["dispatch", "reassign"].includes(a.action)) {
    let proposed = detail.proposed_department_code || (detail.departments.find((d) => d.role === "lead") || {}).department_code;
    // never propose the department that has just sent the case back: the next one of the proposal
    const back = (detail.timeline || []).filter((e) => e.action === "send_back").pop();
    const refused = back && back.data ? back.data.department_code : null;
    if (a.action === "reassign" && refused && proposed === refused) {
      const co = (detail.proposed_co_department_codes || []).find((c) => c !== refused);
      proposed = co || (depts.find(([c]) => c !== refused && !c.startsWith("jz")) || [])[0];
    }
    form.append(field(t("case.action.department"), select("department_code", depts, proposed)));
    const co = select("co_department_codes", depts, null, true); // no co-handler unless chosen
    co.size = 4;
    form.append(field(t("case.action.co_departments"), co));
  }
  if (req.has("result")) {
    const opts = (RESULTS[a.action] || ["valid", "invalid", "pass", "fail"]).map((r) => [r, t("case.result." + r)]);
    form.append(field(t("case.field.result"), select("result", opts)));
  }
  if (req.has("satisfaction")) {
    form.append(field(t("case.field.satisfaction"), select("satisfaction",
      ["satisfied", "basically_satisfied", "unsatisfied"].map((s) => [s, t("case.sat." + s)]))));
  }
  if (req.has("extension")) {
    const wrap = el("div", { class: "field-row" });
    const v = el("input", { type: "number", name: "ext_value", min: "0.5", step: "0.5", value: "1", required: true });
    wrap.append(v, select("ext_unit", UNITS.map((u) => [u, t("unit." + u)]), "working_day"));
    form.append(el("div", { class: "field" }, el("label", {}, t("case.field.extension")), wrap));
  }
  if (req.has("target_case")) {
    form.append(field(t("case.field.target_case"), el("input", { name: "target_case", required: true, inputmode: "numeric" })));
  }
  if (req.has("photos") || ["verify", "report_back", "inspect", "co_feedback"].includes(a.action)) {
    form.append(field(t("case.field.photos"), el("input", { type: "file", name: "photos", accept: "image/*", multiple: true, required: req.has("photos") })));
  }
  if (req.has("reason")) form.append(field(t("case.action.reason"), el("textarea", { name: "reason", required: true, maxlength: "2000" })));
  form.append(field(t("case.action.note"), el("textarea", { name: "note", required: req.has("note"), maxlength: "2000" })));
  const err = el("p", { class: "error", role: "alert", hidden: true });
  form.append(err, el("div", { class: "field-row" },
    el("button", { type: "submit", class: "btn btn-primary" }, t("case.action.confirm")),
    el("button", { type: "button", class: "btn btn-ghost", onclick: () => slot.replaceChildren() }, t("common.cancel"))));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const body = { expected_version: detail.version };
      const f = form.elements;
      if (f.department_code) body.department_code = f.department_code.value;
      if (f.co_department_codes) body.co_department_codes = [...f.co_department_codes.selectedOptions].map((o) => o.value).filter((v) => v !== body.department_code);
      if (f.result) body.result = f.result.value;
      if (f.satisfaction) body.satisfaction = f.satisfaction.value;
      if (f.ext_value) body.extension = { value: Number(f.ext_value.value), unit: f.ext_unit.value };
      if (f.target_case) body.target_case = f.target_case.value.trim();
      if (f.reason) body.reason = f.reason.value.trim();
      if (f.note && f.note.value.trim()) body.note = f.note.value.trim();
      if (f.photos) body.photos = await uploadPhotos(f.photos.files);
      detail = await api(`/api/v1/cases/${caseId}/actions/${a.action}`, { method: "POST", body });
      slot.replaceChildren();
      toast(`${LANG === "en" ? a.label_en : a.label}：${t("case.action.done")}`, "ok");
      const back = PARAMS.get("back");
      if (back && back.startsWith("/") && !back.startsWith("//")) {
        // back to the inbox, on the bucket where this case waits for me now (if it does)
        location.href = back.startsWith("/inbox") ? `/inbox?case=${encodeURIComponent(detail.id)}` : back;
        return;
      }
      await renderAll(false);
    } catch (e) {
      if (e.status === 409) { toast(t("case.stale"), "error"); await refresh(); }
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  });
  slot.replaceChildren(form);
  const first = form.querySelector("select, input, textarea");
  if (first) first.focus();
}

async function renderActions() {
  const box = document.getElementById("actions");
  const res = await api(`/api/v1/cases/${caseId}/actions`);
  box.replaceChildren();
  if (!res.actions.length) box.append(el("p", { class: "muted" }, t("case.actions.none")));
  for (const a of res.actions) {
    box.append(el("button", { type: "button", class: "btn", "data-action": a.action, onclick: () => actionForm(a) },
      LANG === "en" ? a.label_en : a.label));
  }
  // why an action this account takes elsewhere is not offered now (from the transition table)
  const miss = res.missing_actions || [];
  const hint = document.getElementById("missing-actions");
  if (hint) {
    hint.replaceChildren();
    hint.hidden = !miss.length;
    if (miss.length) {
      hint.append(el("summary", {}, t("case.missing")));
      const ul = el("ul", {});
      for (const m of miss) ul.append(el("li", { "data-missing": m.action }, el("strong", {}, m.label), "：", m.why));
      hint.append(ul);
    }
  }
  const want = PARAMS.get("act");
  if (want && !autoOpened) {
    autoOpened = true;
    const a = res.actions.find((x) => x.action === want);
    if (a) actionForm(a);
  }
}

async function renderAll(withThread = true) {
  renderFacts();
  renderMap();
  renderPhotos();
  renderTimeline();
  await renderActions();
  if (withThread) await renderThread();
  root.dataset.state = detail.state;
  document.body.dataset.ready = "1";
}

async function refresh() {
  detail = await api(`/api/v1/cases/${caseId}`);
  await renderAll();
  renderProposal();
}

// smart dispatch: the classifier's proposal stored at intake, with its confidence
async function renderProposal() {
  let p = null;
  try { p = await api(`/api/v1/cases/${caseId}/proposal`, { noRedirect: true }); } catch (e) { return; }
  if (!p || !p.candidates || !p.candidates.length) return;
  const dl = document.getElementById("case-kv");
  const top = p.candidates.slice(0, 3).map((c) => `${c.name_zh}（${c.category_code}）${Math.round(c.score * 100)}%`);
  kv(dl, t("case.smart"), top.join("、") + (p.needs_review ? ` · ${t("case.smart.review")}` : ""));
  if (p.place && p.place.street_code) {
    kv(dl, t("case.smart.place"), `${(p.place.matched || []).map((m) => m.text).join("、")} → ${p.place.grid_code || p.place.community_code || p.place.street_code}（${Math.round(p.place.score * 100)}%）`);
  }
}

document.getElementById("thread-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const ta = document.getElementById("thread-text");
  const body = ta.value.trim();
  if (!body) return;
  try {
    await api(`/api/v1/cases/${caseId}/consultations`, { method: "POST", body: { body } });
    ta.value = "";
    await refresh();
  } catch (e) { toast(e.message, "error"); }
});

async function main() {
  meta = await loadMeta();
  if (!meta.can_act) document.getElementById("thread-form").hidden = true;
  await refresh();
  // someone else acting on this case: refresh without reload
  liveStream("/api/v1/console/stream", (ev) => {
    const mine = BOOT.user && ev.actor === BOOT.user.username;
    if (ev.case_id === Number(detail.id) && ev.type !== "hello" && !mine) {
      refresh().then(() => toast(t("case.updated_live")));
    }
  });
}

main().catch((e) => {
  console.error(e);
  document.getElementById("case-kv").replaceChildren(el("dt", {}, t("common.error")), el("dd", {}, e.message));
  document.body.dataset.ready = "error";
});

