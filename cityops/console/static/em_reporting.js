// The flat-reporting dashboard: time from first report to the department and to every command level
// that must know, per object type, channel and level (cases and incidents).
import { api, el, fmtDate, fmtPct, shanghaiDate, t } from "./common.js";
import { fmtSeconds } from "./em_common.js";

const tbody = document.querySelector("#reach-table tbody");
const from = document.getElementById("rp-from");
const to = document.getElementById("rp-to");
const ex = document.getElementById("rp-ex");
const today = new Date();
// today and 29 days before, as dates in Shanghai (the API reads them as Shanghai days)
to.value = shanghaiDate(today);
from.value = shanghaiDate(new Date(today.getTime() - 29 * 86400e3));

function label(prefix, v) { const k = `${prefix}.${v}`; return t(k) === k ? v : t(k); }

async function load() {
  const q = new URLSearchParams({ from: from.value, to: to.value });
  if (ex.checked) q.set("exercise", "true");
  const d = await api(`/api/v1/emergency/reporting/reach?${q}`);
  tbody.replaceChildren(...d.groups.map((g) => el("tr", { "data-group": `${g.object_type}:${g.channel}:${g.measure}:${g.level}` },
    el("td", {}, label("em.obj", g.object_type)), el("td", {}, label("em.src", g.channel)), el("td", {}, label("em.measure", g.measure)),
    el("td", {}, label("em.level", g.level)), el("td", { class: "num" }, String(g.n)),
    el("td", { class: "num" }, fmtSeconds(g.median_s)), el("td", { class: "num" }, fmtSeconds(g.p90_s)),
    el("td", { class: "num" }, fmtSeconds(g.max_s)), el("td", { class: "num" }, fmtPct(g.within_target)),
    el("td", { class: "num" }, String(g.unreached)))));
  if (!d.groups.length) tbody.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "–")));
  document.querySelector("#slowest tbody").replaceChildren(...d.slowest.map((r) => el("tr", {},
    el("td", {}, label("em.obj", r.object_type)),
    el("td", {}, r.object_type === "incident" ? el("a", { href: `/emergency/incidents/${r.id}` }, r.ref) : el("a", { href: `/cases/${r.id}` }, r.ref)),
    el("td", {}, label("em.src", r.channel)), el("td", {}, label("em.measure", r.measure)), el("td", {}, label("em.level", r.level)),
    el("td", {}, fmtDate(r.reported_at)), el("td", { class: "num" }, fmtSeconds(r.seconds)))));
  document.body.dataset.ready = "1";
}

for (const n of [from, to, ex]) n.addEventListener("change", load);
load();
