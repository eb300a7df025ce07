// Public warnings: list in scope, detail with the actions the table allows (approver ≠ drafter is
// the server's rule), the CAP messages issued, a draft form.
import { LANG, api, el, fmtDate, t, toast } from "./common.js";
import { actionButtons, colourBadge, kv, renderTimeline } from "./em_common.js";

const tbody = document.querySelector("#warnings-table tbody");
const params = new URLSearchParams(location.search);

async function show(wid) {
  const w = await api(`/api/v1/emergency/warnings/${wid}`);
  const box = document.getElementById("warning-detail");
  box.hidden = false;
  document.getElementById("wd-title").replaceChildren(colourBadge(w.level), " ", w.headline);
  const dl = document.getElementById("wd-kv");
  dl.replaceChildren();
  kv(dl, t("em.col.state"), w.state_name);
  kv(dl, t("em.warnings.status"), w.status);
  kv(dl, t("em.warnings.event"), w.event);
  kv(dl, t("em.warnings.description"), w.description);
  kv(dl, t("em.warnings.instruction"), w.instruction);
  kv(dl, t("em.warnings.areas"), `${w.area_desc}（${w.area_codes.join(", ")}）`);
  kv(dl, t("em.warnings.expires"), w.expires_at ? fmtDate(w.expires_at) : null);
  kv(dl, t("em.warnings.drafted_by"), w.drafted_by);
  kv(dl, t("em.warnings.approved_by"), w.approved_by);
  actionButtons(document.getElementById("wd-actions"), document.getElementById("wd-form"), w.actions,
    async (action, body) => { await api(`/api/v1/emergency/warnings/${wid}/actions/${action}`, { method: "POST", body }); await load(); await show(wid); });
  document.getElementById("wd-messages").replaceChildren(...w.messages.map((m) => el("li", {},
    el("a", { href: `/api/v1/emergency/warnings/${wid}.cap?seq=${m.seq}` }, `${m.msg_type} ${m.identifier}`), ` · ${m.sent}`,
    m.references ? el("div", { class: "muted" }, `references: ${m.references}`) : "")));
  if (w.state === "draft") {
    document.getElementById("wd-messages").append(el("li", {}, el("a", { href: `/api/v1/emergency/warnings/${wid}/cap-preview` }, "CAP preview (status Draft)")));
  }
  renderTimeline(document.getElementById("wd-timeline"), w.timeline);
}

async function load() {
  const page = await api("/api/v1/emergency/warnings?page_size=200");
  tbody.replaceChildren(...page.items.map((w) => el("tr", { "data-warning": w.id },
    el("td", {}, colourBadge(w.level)),
    el("td", {}, el("a", { href: `?id=${w.id}`, onclick: (ev) => { ev.preventDefault(); history.replaceState(null, "", `?id=${w.id}`); show(w.id); } }, w.headline)),
    el("td", {}, w.status === "Exercise" ? el("span", { class: "badge em-exercise" }, "Exercise") : "Actual"),
    el("td", {}, w.state_name), el("td", { class: "small" }, w.area_desc),
    el("td", {}, w.cap_url ? el("a", { href: w.cap_url }, ".cap") : "–"))));
  document.body.dataset.ready = "1";
}

const form = document.getElementById("warning-form");
if (form) {
  if (params.get("incident")) document.getElementById("wf-inc").value = params.get("incident");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const body = Object.fromEntries([...fd.entries()].filter(([, v]) => v !== ""));
    body.area_codes = String(fd.get("area_codes") || "").split(/[,，\s]+/).filter(Boolean);
    if (!body.incident) delete body.incident;
    try {
      const w = await api("/api/v1/emergency/warnings", { method: "POST", body });
      toast(t("em.done"), "ok");
      await load();
      show(w.id);
    } catch (e) { toast(e.message, "error"); }
  });
}

load().then(() => { if (params.get("id")) show(params.get("id")); });
void LANG;
