// Emergency command pages — shared helpers (our own code).
import { LANG, api, el, fmtDate, t, toast } from "./common.js";

export const LEVELS = ["I", "II", "III", "IV"];
export const ROMAN = { I: "Ⅰ", II: "Ⅱ", III: "Ⅲ", IV: "Ⅳ" };

export function levelBadge(level) {
  if (!level) return el("span", { class: "badge em-level em-level-none" }, t("em.level.none"));
  return el("span", { class: `badge em-level em-level-${level}` }, `${ROMAN[level]}${LANG === "en" ? "" : "级"}`);
}
export function slaBadge(s) { return el("span", { class: `badge em-sla em-sla-${s}` }, t("em.sla." + s)); }
export function colourBadge(c) { return el("span", { class: `badge em-colour em-colour-${c}` }, t("em.colour." + c)); }
export function exerciseBadge(on) { return on ? el("span", { class: "badge em-exercise" }, t("em.exercise")) : ""; }

export function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} ${t("em.minutes")}`;
  return `${(s / 3600).toFixed(2)} h`;
}

export function kv(dl, key, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", {}, key), el("dd", {}, value));
}

export function renderTimeline(ol, rows) {
  ol.replaceChildren(...rows.slice().reverse().map((r) => el("li", {},
    el("div", { class: "when" }, `${fmtDate(r.at)} · ${r.actor}`),
    el("div", { class: "what" }, r.action_label || r.action, r.from_state && r.to_state && r.from_state !== r.to_state ? ` → ${r.to_state_label || r.to_state}` : ""),
    r.note ? el("div", { class: "note" }, r.note) : "",
    r.data && Object.keys(r.data).length ? el("div", { class: "small muted" }, summariseData(r.data)) : "")));
}

function summariseData(d) {
  const parts = [];
  if (d.level_to) parts.push(`${t("em.level")} ${d.level_from ? ROMAN[d.level_from] + "→" : ""}${ROMAN[d.level_to]}`);
  if (d.plans && d.plans.length) parts.push(d.plans.join("、"));
  if (d.tasks_added !== undefined) parts.push(`+${d.tasks_added} / −${d.tasks_retired}`);
  if (d.identifier) parts.push(`${d.msg_type} ${d.identifier}`);
  if (d.fulfils && d.fulfils.length) parts.push(d.fulfils.join("、"));
  return parts.join(" · ");
}

/** Buttons for the actions a principal may take now; fields for what each requires. */
export function actionButtons(box, formSlot, actions, post, extra = {}) {
  box.replaceChildren();
  formSlot.replaceChildren();
  if (!actions.length) { box.append(el("span", { class: "muted" }, "–")); return; }
  for (const a of actions) {
    const b = el("button", { class: "btn", type: "button", "data-action": a.action }, LANG === "en" ? a.label_en : a.label);
    b.addEventListener("click", () => {
      if (!a.required || !a.required.length) { run(post, a.action, {}, b); return; }
      formSlot.replaceChildren(actionForm(a, post, extra));
    });
    box.append(b);
  }
}

function actionForm(a, post, extra) {
  const f = el("form", { class: "em-form em-action-form", "data-form": a.action });
  for (const name of a.required) {
    f.append(el("label", { for: `af-${name}` }, t(`em.field.${name}`) === `em.field.${name}` ? name : t(`em.field.${name}`)));
    if (name === "level") {
      f.append(el("select", { id: "af-level", name }, ...LEVELS.slice().reverse().map((l) => el("option", { value: l }, ROMAN[l]))));
    } else if (name === "plan") {
      f.append(el("select", { id: "af-plan", name }, ...(extra.plans || []).map((p) => el("option", { value: p.code }, `${p.code} ${p.name}`))));
    } else if (name === "changes") {
      f.append(el("textarea", { id: "af-changes", name, placeholder: '{"level": "orange", "description": "…"}' }));
    } else {
      f.append(el(name === "target" ? "input" : "textarea", { id: `af-${name}`, name, required: true, maxlength: 2000 }));
    }
  }
  const b = el("button", { class: "btn btn-primary", type: "submit" }, LANG === "en" ? a.label_en : a.label);
  f.append(el("div", { class: "field-row" }, b));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(f).entries()) {
      if (k === "changes") { try { body.changes = JSON.parse(v); } catch (e) { toast("JSON", "error"); return; } }
      else body[k] = v;
    }
    run(post, a.action, body, b);
  });
  return f;
}

async function run(post, action, body, button) {
  button.disabled = true;
  try {
    await post(action, body);
    toast(t("em.done"), "ok");
  } catch (e) {
    toast(e.message, "error");
  } finally {
    button.disabled = false;
  }
}

export async function loadPlans() {
  try { return await api("/api/v1/emergency/plans"); } catch (e) { return []; }
}

export function streetBoundaries(map) {
  return api("/api/v1/areas.geojson?level=street&simplify_m=40").then((fc) => {
    L.geoJSON(fc, { style: { color: "#4fd1ff", weight: 1.2, opacity: 0.7, fill: false } }).addTo(map);  // eslint-disable-line no-undef
  }).catch(() => {});
}
