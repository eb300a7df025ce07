// The incident command view: the incident on the map with its area, tasks by department with SLA
// colour, the timeline, reporting deadlines and flat notices, plans in force, warnings, mobilisation.
// Live: the console's SSE stream; an item about this incident reloads the view.
/* global L */
import { BOOT, LANG, api, el, fmtDate, liveStream, t, toast } from "./common.js";
import {
  ROMAN, actionButtons, colourBadge, exerciseBadge, fmtSeconds, kv, levelBadge, loadPlans, renderTimeline, slaBadge,
  streetBoundaries,
} from "./em_common.js";

const root = document.getElementById("em-command");
const id = Number(root.dataset.incidentId || (BOOT.data && BOOT.data.incident_id));
const base = `/api/v1/emergency/incidents/${id}`;
let map = null;
let areaLayer = null;
let plans = [];

function renderFacts(d) {
  document.getElementById("inc-title").textContent = `${d.code} ${d.title}`;
  document.getElementById("inc-badges").replaceChildren(
    el("span", { class: "badge state" }, d.state_name), " ", levelBadge(d.response_level), " ", exerciseBadge(d.exercise));
  const dl = document.getElementById("inc-kv");
  dl.replaceChildren();
  kv(dl, t("em.col.kind"), `${d.category_name} · ${d.subtype_name}${d.event_type ? " · " + d.event_type : ""}`);
  kv(dl, t("em.severity"), `${d.severity_name}（${ROMAN[d.severity]}）`);
  kv(dl, t("em.level"), d.response_level ? ROMAN[d.response_level] : t("em.level.none"));
  kv(dl, t("em.col.area"), `${d.street_name || ""} ${d.area_code}`);
  kv(dl, t("em.col.reported"), fmtDate(d.reported_at));
  kv(dl, t("case.description"), d.description);
  kv(dl, t("case.reporters"), String(d.report_count));
  if (d.summary) kv(dl, t("em.command.evaluation"), d.summary);
}

function renderMap(d) {
  if (!map) {
    map = L.map("inc-map", { attributionControl: false, minZoom: 9, maxZoom: 18 }).setView([31.03, 121.22], 11);
    streetBoundaries(map);
  }
  if (areaLayer) areaLayer.remove();
  areaLayer = L.featureGroup().addTo(map);
  const style = { color: "#ff7a45", weight: 2.5, fill: true, fillOpacity: 0.18, fillColor: "#ff7a45" };
  const done = () => {
    if (d.lat != null) {
      L.marker([d.lat, d.lon], { title: d.title, icon: L.divIcon({ className: `em-dot em-dot-lg em-dot-${d.response_level || "none"}`, iconSize: [20, 20] }) }).addTo(areaLayer);
    }
    map.invalidateSize();
    const b = areaLayer.getBounds();
    if (b.isValid()) map.fitBounds(b, { padding: [24, 24], maxZoom: 15 });
    document.getElementById("inc-map").dataset.ready = "1";
  };
  if (d.geometry) { L.geoJSON(d.geometry, { style }).addTo(areaLayer); done(); return; }
  api(`/api/v1/areas/${d.street_code || d.area_code}/geojson?simplify_m=10`)
    .then((f) => { L.geoJSON(f, { style }).addTo(areaLayer); }).catch(() => {}).finally(done);
}

function renderDeadlines(d) {
  const tb = document.querySelector("#deadlines tbody");
  tb.replaceChildren(...d.deadlines.map((x) => el("tr", { "data-status": x.status },
    el("td", {}, (LANG === "en" && x.name_en) || x.name), el("td", {}, fmtDate(x.due_at)),
    el("td", {}, el("span", { class: `badge em-dl em-dl-${x.status}` }, t("em.status." + x.status))),
    el("td", { class: "small muted" }, x.done_at ? fmtDate(x.done_at) : ""))));
  const byKind = {};
  for (const n of d.notices) (byKind[n.kind] = byKind[n.kind] || []).push(n);
  const first = d.notices.length ? d.notices[0].notified_at : null;
  document.getElementById("notices").replaceChildren(
    el("div", {}, `${t("em.command.notices")}：${first ? fmtDate(first) : "–"}`),
    ...Object.entries(byKind).map(([k, ns]) => el("div", {}, `${t("em.measure." + k) !== "em.measure." + k ? t("em.measure." + k) : t("em.level." + k)}：`,
      ns.map((n) => `${n.recipient_name}（${t("em.channel." + n.channel) !== "em.channel." + n.channel ? t("em.channel." + n.channel) : n.channel}）`).join("、"))));
}

function renderPlans(d) {
  const box = document.getElementById("plans-box");
  box.replaceChildren(...d.plans.map((p) => {
    const c = p.command;
    return el("div", { class: "em-plan" },
      el("div", {}, el("a", { href: `/emergency/plans?code=${p.plan_code}` }, `${p.plan_name}`), " ",
        levelBadge(p.level), p.active ? "" : el("span", { class: "badge" }, "off"), el("span", { class: "muted small" }, ` v${p.version} ${p.edition}`)),
      c ? el("div", { class: "small" }, `${c.headquarters} · ${c.commander}${c.office ? " · " + c.office : ""}`) : "",
      c && c.groups.length ? el("div", { class: "small muted" }, c.groups.map((g) => g.name).join("、")) : "");
  }));
  if (!d.plans.length) box.append(el("span", { class: "muted" }, "–"));
}

async function renderTasks() {
  const groups = await api(`${base}/tasks`);
  const board = document.getElementById("task-board");
  let total = 0;
  board.replaceChildren(...groups.map((g) => {
    total += g.tasks.filter((x) => x.state !== "retired").length;
    return el("div", { class: `task-dept em-worst-${g.worst}`, "data-department": g.department_code },
      el("div", { class: "task-dept-head" }, el("strong", {}, g.department_name), " ", slaBadge(g.worst)),
      el("ul", {}, ...g.tasks.map((x) => el("li", { class: `em-task em-task-${x.sla}`, "data-task": x.task_key },
        slaBadge(x.sla), " ", x.title, el("span", { class: "muted small" }, ` · ${fmtDate(x.due_at)} · ${x.state_name}`)))));
  }));
  document.getElementById("task-totals").textContent = `(${total})`;
  if (!groups.length) board.append(el("span", { class: "muted" }, t("em.tasks.none")));
}

async function renderWarnings(d) {
  const page = await api(`/api/v1/emergency/warnings?incident=${id}`).catch(() => ({ items: [] }));
  const ul = document.getElementById("warnings");
  ul.replaceChildren(...page.items.map((w) => el("li", {},
    colourBadge(w.level), " ", el("a", { href: `/emergency/warnings?id=${w.id}` }, w.headline), " ",
    el("span", { class: "badge state" }, w.state_name), " ", w.status === "Exercise" ? el("span", { class: "badge em-exercise" }, "Exercise") : "",
    w.cap_url ? el("a", { class: "small", href: w.cap_url }, " CAP") : "")));
  if (!page.items.length) ul.append(el("li", { class: "muted" }, "–"));
  const link = document.getElementById("draft-link");
  if (link) link.href = `/emergency/warnings?incident=${d.code}`;
}

async function renderMobilisation() {
  const rows = await api(`/api/v1/emergency/mobilisation?incident=${id}`);
  const tb = document.querySelector("#mobilisation tbody");
  const canAck = (BOOT.user && BOOT.user.permissions || []).includes("mobilisation.ack");
  tb.replaceChildren(...rows.map((c) => el("tr", { class: `em-mob-${c.state}` },
    el("td", {}, c.pool_name), el("td", {}, c.org_name), el("td", { class: "small" }, c.duty),
    el("td", {}, t("em.mob.state." + c.state)),
    el("td", {}, canAck && c.state === "called" ? el("button", { class: "btn btn-ghost", type: "button",
      onclick: async () => { try { await api(`/api/v1/emergency/mobilisation/${c.id}/ack`, { method: "POST", body: {} }); load(); } catch (e) { toast(e.message, "error"); } } },
    t("em.mob.ack")) : ""))));
}

async function load() {
  const d = await api(base);
  renderFacts(d);
  renderMap(d);
  renderDeadlines(d);
  renderPlans(d);
  actionButtons(document.getElementById("inc-actions"), document.getElementById("inc-action-form"), d.actions,
    async (action, body) => { await api(`${base}/actions/${action}`, { method: "POST", body }); await load(); }, { plans });
  await Promise.all([renderTasks(), renderWarnings(d), renderMobilisation(),
    api(`${base}/timeline`).then((rows) => renderTimeline(document.getElementById("timeline"), rows))]);
  document.body.dataset.ready = "1";
}

const rep = document.getElementById("info-report");
if (rep) {
  rep.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(rep);
    try {
      await api(`${base}/reports`, { method: "POST", body: Object.fromEntries(fd.entries()) });
      toast(t("em.done"), "ok");
      rep.reset();
      load();
    } catch (e) { toast(e.message, "error"); }
  });
}

let pending = null;
liveStream(`/api/v1/console/stream?lang=${LANG}`, (m) => {
  if (m.incident_id !== id) return;
  clearTimeout(pending);
  pending = setTimeout(load, 300);
}, (on) => { const dot = document.getElementById("live-dot"); if (dot) dot.hidden = !on; });

loadPlans().then((p) => { plans = p; }).finally(load);
