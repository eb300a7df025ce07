// Sign-in: POST /api/v1/auth/login (JSON) sets the console session cookie and the CSRF cookie.
import { api, t } from "./common.js";

const form = document.getElementById("login-form");
const err = document.getElementById("login-error");

function safeNext(v) {
  // only same-origin relative paths: no "//host", no backslash ("/\\host" is "//host" to a browser),
  // no control characters or spaces, no encoded slash/backslash tricks; and it must stay on this origin
  if (!v || !v.startsWith("/") || v.length > 500) return "/";
  let d;
  try { d = decodeURIComponent(v); } catch (e) { return "/"; }
  for (const s of [v, d]) {
    if (s.startsWith("//") || s.includes("\\") || /[\u0000-\u0020\u007f]/.test(s)) return "/";
  }
  try {
    const u = new URL(v, location.origin);
    if (u.origin !== location.origin) return "/";
  } catch (e) { return "/"; }
  return v;
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  err.hidden = true;
  const username = form.username.value.trim();
  const password = form.password.value;
  const btn = form.querySelector("button[type=submit]");
  btn.disabled = true;
  try {
    await api("/api/v1/auth/login", { method: "POST", body: { username, password }, noRedirect: true });
    let to = safeNext(form.next.value);
    // on a phone the landing is 我的任务 (the grid worker's verify / inspect and 上报), not the big screen
    if (to === "/" && window.matchMedia("(max-width: 760px)").matches) to = "/m";
    location.href = to;
  } catch (e) {
    err.textContent = t("auth.failed") + "：" + (e.message || e);
    err.hidden = false;
    form.password.select();
  } finally {
    btn.disabled = false;
  }
});
