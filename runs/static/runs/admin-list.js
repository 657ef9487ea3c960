// Keeps the admin's run list current without a reload: every few seconds it
// re-reads the same page (same filters, search and page) and swaps in the
// table, so new runs appear and status, duration and progress move. While the
// operator has runs ticked for an action, the table is left alone.
// (Polling for now; the server's journal stream can replace it once served.)
// Loaded in the page's head (the admin's form media): it starts once the
// document is parsed.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  var EVERY_MS = 3000;
  if (!document.body.classList.contains("change-list")) {
    return;
  }
  var form = document.getElementById("changelist-form");
  if (!form || !document.getElementById("result_list")) {
    return;
  }

  function selecting() {
    return form.querySelector("input.action-select:checked, #action-toggle:checked") !== null;
  }

  function refresh() {
    if (selecting()) {
      window.setTimeout(refresh, EVERY_MS);
      return;
    }
    window.OrchestratorAdmin.fetchDocument(window.location.href)
      .then(function (fresh) {
        if (selecting()) {
          return;
        }
        window.OrchestratorAdmin.swapParts(fresh, ["#result_list", "#changelist .paginator", "#changelist-search .quiet"]);
        form.dataset.liveUpdates = String(Number(form.dataset.liveUpdates || "0") + 1);
      })
      .catch(function () {
        form.dataset.liveState = "stale";
      })
      .then(function () {
        window.setTimeout(refresh, EVERY_MS);
      });
  }

  form.dataset.liveState = "live";
  window.setTimeout(refresh, EVERY_MS);
});
