// The plan library: plans, versions, tasks per response level, command structure; JSON/YAML import
// with every problem listed.
import { LANG, api, el, fmtDate, t, toast } from "./common.js";
import { ROMAN } from "./em_common.js";

const tbody = document.querySelector("#plans-table tbody");
const params = new URLSearchParams(location.search);

async function show(code) {
  const p = await api(`/api/v1/emergency/plans/${code}`);
  const box = document.getElementById("plan-detail");
  box.hidden = false;
  document.getElementById("pd-title").textContent = `${p.name}（${p.code}）`;
  document.getElementById("pd-meta").replaceChildren(
    `${p.type_name} · v${p.version} ${p.edition} · ${t("em.plans.scope")}：${p.scope_names.join("、")}`, " · ",
    el("a", { href: `/api/v1/emergency/plans/${code}/export?format=yaml` }, `${t("em.plans.export")} YAML`), " · ",
    el("a", { href: `/api/v1/emergency/plans/${code}/export?format=json` }, "JSON"));
  const levels = document.getElementById("pd-levels");
  levels.replaceChildren();
  for (const lv of ["IV", "III", "II", "I"]) {
    const tasks = p.tasks_by_level[lv];
    if (!tasks) continue;
    const spec = p.doc.levels[lv] || {};
    levels.append(el("details", { class: "em-level-box", open: lv === "IV" },
      el("summary", {}, el("strong", {}, `${ROMAN[lv]}${LANG === "en" ? "" : "级响应"}`), ` · ${tasks.length}`),
      spec.start_conditions && spec.start_conditions.length ? el("div", { class: "small" }, `${t("em.plans.start")}：${spec.start_conditions.join("；")}`) : "",
      spec.command ? el("div", { class: "small muted" }, `${t("em.plans.command")}：${spec.command.headquarters} · ${spec.command.commander} · ${spec.command.groups.map((g) => g.name).join("、")}`) : "",
      el("table", { class: "grid small" }, el("tbody", {}, ...tasks.map((x) => el("tr", {},
        el("td", {}, p.department_names[x.department] || x.department), el("td", {}, x.title), el("td", { class: "num" }, `${x.deadline_minutes} ${t("em.minutes")}`)))))));
  }
}

async function load() {
  const rows = await api("/api/v1/emergency/plans");
  tbody.replaceChildren(...rows.map((p) => el("tr", { "data-plan": p.code },
    el("td", {}, el("a", { href: `?code=${p.code}`, onclick: (ev) => { ev.preventDefault(); history.replaceState(null, "", `?code=${p.code}`); show(p.code); } }, p.code)),
    el("td", {}, p.name), el("td", {}, p.type_name), el("td", {}, `v${p.version}`),
    el("td", { class: "num" }, ["IV", "III", "II", "I"].map((l) => p.levels[l] ?? "–").join(" / ")),
    el("td", {}, fmtDate(p.next_review_at).slice(0, 10)), el("td", {}, fmtDate(p.next_drill_at).slice(0, 10)))));
  document.body.dataset.ready = "1";
}

const form = document.getElementById("plan-import");
if (form) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = document.getElementById("plan-file").files[0];
    const errs = document.getElementById("plan-errors");
    errs.hidden = true;
    if (!file) return;
    const text = await file.text();
    const yaml = /\.ya?ml$/i.test(file.name);
    try {
      const res = await api("/api/v1/emergency/plans", { method: "POST", body: text,
        headers: { "Content-Type": yaml ? "application/yaml" : "application/json" } });
      toast(`${res.code} v${res.version}`, "ok");
      load();
      show(res.code);
    } catch (e) {
      errs.replaceChildren(...((e.body && e.body.detail) || [{ msg: e.message, loc: [] }]).map((d) => el("li", {}, `${(d.loc || []).join(".")}: ${d.msg}`)));
      errs.hidden = false;
    }
  });
}

load().then(() => { if (params.get("code")) show(params.get("code")); });
