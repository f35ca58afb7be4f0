// Reading view: small conveniences only; every page works without scripts.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Filters take effect as soon as one is chosen.
  for (const sel of document.querySelectorAll("select.auto")) {
    sel.addEventListener("change", () => sel.form && sel.form.submit());
  }
  // "/" focuses the search box, as on most sites.
  const q = document.getElementById("q");
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && q && document.activeElement !== q) { e.preventDefault(); q.focus(); }
  });
  // Copy an item id.
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(b.dataset.copy); b.textContent = b.dataset.done; }
      catch (_) { /* clipboard not allowed: the id stays selectable */ }
    });
  }
});
