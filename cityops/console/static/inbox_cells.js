// Shared cells of the inbox and the overdue list: SLA badge with overdue-by / time left.
import { el, slaBadge, t } from "./common.js";

export function fmtMinutes(n) {
  if (n === null || n === undefined) return "";
  if (n < 60) return t("dur.min", { n });
  if (n < 24 * 60) return t("dur.hour", { h: Math.floor(n / 60), m: n % 60 });
  return t("dur.day", { d: Math.floor(n / 1440), h: Math.floor((n % 1440) / 60) });
}

export function dueCell(c) {
  const txt = c.overdue_min !== null && c.overdue_min !== undefined ? t("inbox.overdue_by", { t: fmtMinutes(c.overdue_min) })
    : c.remaining_min !== null && c.remaining_min !== undefined ? t("inbox.remaining", { t: fmtMinutes(c.remaining_min) }) : "";
  return el("td", {}, slaBadge(c.sla), " ", el("span", { class: c.overdue_min !== null ? "overdue-by" : "muted" }, txt));
}

