// Daily briefing page: print button (no inline handlers: the CSP forbids them).
const b = document.getElementById("print-btn");
if (b) b.addEventListener("click", () => window.print());
document.body.dataset.ready = "1";
