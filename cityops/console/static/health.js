// Public-health page: signal actions through the API (the page itself is rendered on the server).
import { api, t } from "./common.js";

document.querySelectorAll("#hl-signals button[data-action]").forEach((b) => {
  b.addEventListener("click", async () => {
    const id = b.closest("tr").dataset.id;
    const action = b.dataset.action;
    const body = {};
    if (action !== "verify" && action !== "investigate") {
      const note = window.prompt(t("health.prompt.note"));
      if (!note) return;
      body.note = note;
    }
    await api(`/api/v1/health/signals/${id}/actions/${action}`, { method: "POST", body });
    window.location.reload();
  });
});
