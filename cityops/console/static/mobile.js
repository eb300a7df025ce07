// 我的任务 on a phone: the signed-in account's inbox as cards (for a grid worker: today's 核实 and 核查),
// a thumb-sized 上报 button, one tap from a card to the case with its action open.
import { api, el, fmtDate, fmtNum, liveStream, qs, t } from "./common.js";
import { dueCell } from "./inbox_cells.js";

const box = document.getElementById("m-buckets");

async function load() {
  const first = await api("/api/v1/inbox" + qs({ limit: 1 }));
  box.replaceChildren();
  document.getElementById("m-total").textContent = t("inbox.total", { n: fmtNum(first.total) });
  const full = first.buckets.filter((b) => b.count > 0);
  if (!full.length) box.append(el("p", { class: "muted m-empty" }, t("inbox.empty")));
  for (const b of full) {
    const data = await api("/api/v1/inbox" + qs({ bucket: b.key, limit: 30 }));
    const sec = el("section", { class: "m-bucket", "data-bucket": b.key },
      el("h2", {}, b.label, " ", el("strong", {}, fmtNum(b.count))));
    for (const c of data.items) {
      const due = dueCell(c);
      sec.append(el("a", { class: `m-card sla-row-${c.sla}`, "data-case": c.id, "data-act": b.action,
        href: `/cases/${c.id}` + qs({ act: b.action, back: "/m" }) },
        el("div", { class: "m-card-top" }, el("strong", {}, c.category), el("span", { class: "muted small" }, c.case_no)),
        el("div", { class: "small" }, c.address || c.title || ""),
        el("div", { class: "m-card-bottom" }, ...due.childNodes, el("span", { class: "muted small" }, fmtDate(c.reported_at))),
        el("span", { class: "btn btn-primary m-act" }, b.action_label)));
    }
    box.append(sec);
  }
  document.body.dataset.ready = "1";
}

load().catch((e) => { console.error(e); box.replaceChildren(el("p", { class: "error" }, e.message)); });
let timer = null;
liveStream("/api/v1/console/stream", (ev) => {
  if (ev.type === "hello") return;
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 800);
});
