// 超期在办 / 临期在办 cards open the list behind them: most overdue first, overdue-by, step, owner,
// stuck-at-step counts, and 催办 from the list (the server decides whether this account may).
import { BOOT, api, el, fmtNum, qs, t, toast } from "./common.js";
import { dueCell } from "./inbox_cells.js";

let dlg = null;

function dialog() {
  if (dlg) return dlg;
  dlg = el("dialog", { class: "overdue-dlg", id: "overdue-dlg", "aria-labelledby": "overdue-h" });
  document.body.append(dlg);
  return dlg;
}

async function chase(c, btn) {
  btn.disabled = true;
  try {
    await api(`/api/v1/cases/${c.id}/actions/chase`, { method: "POST", body: { note: t("overdue.chase_note") } });
    toast(`${t("overdue.chase")}：${c.case_no}`, "ok");
  } catch (e) {
    toast(e.message, "error");
    btn.disabled = false;
  }
}

export async function openOverdue(kind, filters) {
  const d = dialog();
  const data = await api("/api/v1/console/overdue" + qs({ ...filters, kind, limit: 30 }));
  const canAct = BOOT.user && (BOOT.user.permissions || []).includes("case.act");
  const rows = data.items.map((c) => el("tr", { "data-case": c.id },
    el("td", {}, el("a", { href: `/cases/${c.id}` }, c.case_no)),
    el("td", {}, c.category, el("div", { class: "muted small" }, c.street_name || "")),
    el("td", {}, c.state_label), dueCell(c),
    el("td", {}, c.owner || el("span", { class: "muted" }, t("inbox.no_owner"))),
    el("td", {}, canAct ? el("button", { type: "button", class: "btn btn-sm", onclick: (ev) => chase(c, ev.target) }, t("overdue.chase")) : null)));
  const stuck = el("div", { class: "stuck", "data-stuck": "" }, el("strong", {}, t("overdue.stuck") + "："),
    ...data.stuck.map((s) => el("span", { class: "chip", "data-state": s.state }, `${s.label} ${fmtNum(s.count)}`)));
  const owners = el("div", { class: "stuck muted" }, t("inbox.owner") + "：",
    ...data.by_owner.map((o) => el("span", { class: "chip" }, `${o.name || t("inbox.no_owner")} ${fmtNum(o.count)}`)));
  d.replaceChildren(
    el("div", { class: "dlg-head" }, el("h2", { id: "overdue-h" },
      `${kind === "overdue" ? t("overdue.title") : t("overdue.near")} · ${fmtNum(data.total)}`),
    el("button", { type: "button", class: "btn btn-ghost", "data-close": "", onclick: () => d.close() }, t("common.close"))),
    stuck, owners,
    el("table", { class: "grid" }, el("thead", {}, el("tr", {},
      ...["cases.col.id", "cases.col.category", "cases.col.state", "inbox.col.due", "inbox.owner", "inbox.col.act"].map((k) => el("th", {}, t(k))))),
    el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, t("common.none")))]))));
  d.dataset.kind = kind;
  if (!d.open) d.showModal();
}

/** Make the red / yellow KPI cards buttons. */
export function attachOverdueCards(getFilters) {
  for (const [sel, kind] of [[".kpi-red", "overdue"], [".kpi-yellow", "near"]]) {
    const card = document.querySelector(sel);
    if (!card) continue;
    card.setAttribute("role", "button");
    card.tabIndex = 0;
    card.classList.add("kpi-click");
    card.dataset.open = kind;
    const go = () => openOverdue(kind, getFilters()).catch((e) => toast(e.message, "error"));
    card.addEventListener("click", go);
    card.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); go(); } });
  }
}
