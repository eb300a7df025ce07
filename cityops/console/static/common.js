// cityops console — shared helpers (our own code; no third-party scripts here).
// Language, Asia/Shanghai times, fetch with the console cookie + CSRF header, SSE, toasts.

function readBoot() {
  const n = document.getElementById("boot");
  try { return n ? JSON.parse(n.textContent) : null; } catch (e) { return null; }
}
export const BOOT = readBoot() || { lang: "zh", i18n: {}, user: null, data: {} };
export const LANG = BOOT.lang;
const TZ = "Asia/Shanghai";

export function t(key, vars) {
  let s = (BOOT.i18n && BOOT.i18n[key]) || key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, v);
  return s;
}

const fmtFull = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
  timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
});
const fmtTime = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
  timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

/** A UTC ISO string (or Date) shown in Asia/Shanghai. */
export function fmtDate(v) {
  if (!v) return "";
  const d = v instanceof Date ? v : new Date(v);
  return isNaN(d) ? String(v) : fmtFull.format(d);
}
export function fmtClock(d) { return fmtTime.format(d); }

/** The calendar date (YYYY-MM-DD) of a moment in Asia/Shanghai (not UTC's date: 00:00–08:00 there). */
export function shanghaiDate(d = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
}

export function fmtPct(x, digits = 1) {
  if (x === null || x === undefined || isNaN(x)) return "–";
  return (x * 100).toFixed(digits) + "%";
}
export function fmtNum(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString(LANG === "en" ? "en-GB" : "zh-CN");
}

export function getCookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name.replace(/[.$?*|{}()[\]\\/+^]/g, "\\$&") + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : null;
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : (body && body.detail) || "";
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** fetch JSON from our own API with the session cookie and the CSRF header on writes. */
export async function api(path, opts = {}) {
  const method = (opts.method || "GET").toUpperCase();
  const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
  let body = opts.body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  if (method !== "GET" && method !== "HEAD") {
    const csrf = getCookie("cityops_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const r = await fetch(path, { method, headers, body, credentials: "same-origin", signal: opts.signal });
  if (r.status === 401 && !opts.noRedirect) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiError(401, null);
  }
  const ct = r.headers.get("content-type") || "";
  const data = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.append(k, v);
  }
  const s = u.toString();
  return s ? "?" + s : "";
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function toast(msg, kind = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = msg;
  box.className = "toast toast-" + kind;
  box.hidden = false;
  clearTimeout(toast._t);
  toast._t = setTimeout(() => { box.hidden = true; }, 4000);
}

export const SLA_COLORS = { green: "#2ecc71", yellow: "#f5c542", red: "#ff4d4f", none: "#8fa3bf" };
export function slaLabel(s) { return t("sla." + (s || "none")); }
export function slaBadge(s) {
  return el("span", { class: "badge sla-" + (s || "none") }, slaLabel(s));
}

/** Server-sent events with automatic reconnect; calls onEvent(obj) for each JSON message. */
export function liveStream(path, onEvent, onState) {
  let es = null;
  let retry = 1000;
  const open = () => {
    es = new EventSource(path, { withCredentials: true });
    es.onopen = () => { retry = 1000; onState && onState(true); };
    es.onmessage = (m) => {
      try { onEvent(JSON.parse(m.data)); } catch (e) { console.error(e); }
    };
    es.onerror = () => {
      onState && onState(false);
      es.close();
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 15000);
    };
  };
  open();
  return { close: () => es && es.close() };
}

// ---------------------------------------------------------------- page chrome
function startClock() {
  const c = document.getElementById("clock");
  if (!c) return;
  const tick = () => { c.textContent = fmtDate(new Date()).slice(0, 10) + " " + fmtClock(new Date()); };
  tick();
  setInterval(tick, 1000);
}

async function logout() {
  try { await api("/api/v1/auth/logout", { method: "POST", noRedirect: true }); } catch (e) { /* already out */ }
  location.href = "/login";
}

function wireLangToggle() {
  // keep the page's own query (filters, case, date) when switching language
  for (const a of document.querySelectorAll("a[data-lang-toggle]")) {
    const target = new URL(a.getAttribute("href"), location.href).searchParams.get("lang");
    const u = new URL(location.href);
    u.searchParams.set("lang", target);
    a.href = u.pathname + u.search;
  }
}

function wireChrome() {
  wireLangToggle();
  document.querySelectorAll("#logout, [data-logout]").forEach((b) => b.addEventListener("click", logout));
  startClock();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wireChrome);
else wireChrome();
