// 我的待办: the buckets of the signed-in account (from the transition table), counts, SLA colour,
// oldest first, and one click from a line to the case with the bucket's action open.
import { api, el, fmtDate, fmtNum, liveStream, qs, t } from "./common.js";
import { dueCell } from "./inbox_cells.js";

const root = document.getElementById("inbox-page");
const tbody = document.querySelector("#inbox-table tbody");
let bucket = root.dataset.bucket || null;
let focus = new URLSearchParams(location.search).get("case");

function renderBuckets(data) {
  const nav = document.getElementById("buckets");
  nav.replaceChildren();
  if (!data.buckets.length) nav.append(el("p", { class: "muted" }, t("inbox.none")));
  for (const b of data.buckets) {
    const a = el("a", { href: "/inbox" + qs({ bucket: b.key }), class: "bucket" + (b.key === data.bucket ? " active" : ""),
      "data-bucket": b.key, "aria-current": b.key === data.bucket ? "true" : null },
      el("span", {}, b.label), el("strong", { "data-count": "" }, fmtNum(b.count)),
      b.overdue ? el("span", { class: "badge sla-red", title: t("sla.red") }, fmtNum(b.overdue)) : null);
    a.addEventListener("click", (ev) => { ev.preventDefault(); bucket = b.key; history.replaceState(null, "", a.href); load(); });
    nav.append(a);
  }
  document.getElementById("inbox-total").textContent = t("inbox.total", { n: fmtNum(data.total) });
}

function renderItems(data) {
  tbody.replaceChildren();
  if (!data.items.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, t("inbox.empty"))));
  const label = (data.buckets.find((b) => b.key === data.bucket) || {}).action_label || "";
  const back = "/inbox" + qs({ bucket: data.bucket });
  for (const c of data.items) {
    tbody.append(el("tr", { "data-case": c.id, "data-case-no": c.case_no, class: "sla-row-" + c.sla },
      el("td", {}, el("a", { href: `/cases/${c.id}` }, c.case_no)),
      el("td", {}, c.category, el("div", { class: "muted small" }, c.title)),
      el("td", {}, c.street_name || c.street_code),
      el("td", {}, c.state_label),
      dueCell(c),
      el("td", {}, c.owner || el("span", { class: "muted" }, t("inbox.no_owner"))),
      el("td", {}, fmtDate(c.reported_at)),
      el("td", { class: "acts" }, el("a", { class: "btn btn-primary btn-sm", "data-act": data.action,
        href: `/cases/${c.id}` + qs({ act: data.action, back }) }, label),
      ...(data.also || []).map((a) => el("a", { class: "btn btn-sm", "data-act": a.action,
        href: `/cases/${c.id}` + qs({ act: a.action, back }) }, a.label)))));
    if (String(c.id) === String(data.focus)) tbody.lastChild.classList.add("focus");
  }
}

async function load() {
  const data = await api("/api/v1/inbox" + qs({ bucket, limit: 200, case: bucket ? null : focus }));
  bucket = data.bucket;
  focus = null;
  renderBuckets(data);
  renderItems(data);
  document.body.dataset.ready = "1";
}

document.getElementById("find-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const no = document.getElementById("find-no").value.trim();
  if (/^\d{1,20}$/.test(no)) location.href = `/cases/${no}`;
});

load().catch((e) => { console.error(e); tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8 }, e.message))); });
let timer = null;
liveStream("/api/v1/console/stream", (ev) => {
  if (ev.type === "hello") return;
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 800);
});
