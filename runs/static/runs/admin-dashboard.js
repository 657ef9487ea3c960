// Keeps the admin dashboard current: re-fetches the page's own fragment
// (?fragment=1, the same server rendering) every few seconds and swaps it in.
// Plain script, no build step, nothing from another origin.
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) {
    return;
  }
  var seconds = Number(root.dataset.refreshSeconds) || 5;
  var url = new URL(window.location.href);
  url.searchParams.set("fragment", "1");

  function refresh() {
    window.OrchestratorAdmin.fetchText(url.toString())
      .then(function (html) {
        root.innerHTML = html;
        root.dataset.state = "live";
        root.dataset.updates = String(Number(root.dataset.updates || "0") + 1);
      })
      .catch(function () {
        root.dataset.state = "stale";
      })
      .then(function () {
        window.setTimeout(refresh, seconds * 1000);
      });
  }

  root.dataset.state = "live";
  window.setTimeout(refresh, seconds * 1000);
})();
