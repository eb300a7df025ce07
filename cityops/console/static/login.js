// Sign-in: POST /api/v1/auth/login (JSON) sets the console session cookie and the CSRF cookie.
import { api, t } from "./common.js";

const form = document.getElementById("login-form");
const err = document.getElementById("login-error");

function safeNext(v) {
  // only same-site paths: never an absolute URL
  return v && v.startsWith("/") && !v.startsWith("//") ? v : "/";
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
