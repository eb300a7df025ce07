// A department's to-do: the emergency tasks in scope (a department sees its own), with SLA colour and
// the actions the task table allows now.
import { api, el, fmtDate, t, toast } from "./common.js";
import { slaBadge } from "./em_common.js";

const tbody = document.querySelector("#tasks-table tbody");
const openOnly = document.getElementById("tasks-open");
const params = new URLSearchParams(location.search);

async function act(task, action, reason) {
  const body = reason ? { reason } : {};
  try {
    await api(`/api/v1/emergency/tasks/${task.id}/actions/${action}`, { method: "POST", body });
    toast(t("em.done"), "ok");
    load();
  } catch (e) { toast(e.message, "error"); }
}

async function row(task) {
  const detail = await api(`/api/v1/emergency/tasks/${task.id}`);
  const buttons = detail.actions.filter((a) => !(a.required || []).length).map((a) =>
    el("button", { class: "btn btn-ghost", type: "button", "data-action": a.action, onclick: () => act(task, a.action) }, a.label));
  return el("tr", { "data-task": task.id, class: `em-task-${task.sla}` },
    el("td", {}, slaBadge(task.sla)), el("td", {}, task.title, task.exercise ? el("span", { class: "badge em-exercise" }, t("em.exercise")) : ""),
    el("td", {}, task.owner_department_name),
    el("td", {}, el("a", { href: `/emergency/incidents/${task.incident_id}` }, `#${task.incident_id}`)),
    el("td", {}, fmtDate(task.due_at)), el("td", {}, task.state_name), el("td", { class: "actions" }, ...buttons));
}

async function load() {
  const q = new URLSearchParams({ page_size: "200" });
  if (openOnly.checked) q.set("open", "true");
  if (params.get("incident")) q.set("incident", params.get("incident"));
  const page = await api(`/api/v1/emergency/tasks?${q}`);
  const rows = await Promise.all(page.items.map(row));
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, t("em.tasks.none"))));
  document.body.dataset.ready = "1";
}

openOnly.addEventListener("change", load);
load();
