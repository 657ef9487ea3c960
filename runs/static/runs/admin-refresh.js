// Shared by the admin pages that keep themselves current (the run list, a
// run's page, the dashboard): read a page as the signed-in user and swap
// parts of it in. Plain script, no build step.
(function () {
  "use strict";

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin", redirect: "manual" }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.text();
    });
  }

  function fetchDocument(url) {
    return fetchText(url).then(function (html) {
      return new DOMParser().parseFromString(html, "text/html");
    });
  }

  // Each element matching a selector is replaced by its counterpart in
  // `fresh`, when both documents have as many of them.
  function swapParts(fresh, selectors) {
    selectors.forEach(function (selector) {
      var now = document.querySelectorAll(selector);
      var next = fresh.querySelectorAll(selector);
      if (now.length !== next.length) {
        return;
      }
      now.forEach(function (element, index) {
        element.replaceWith(document.importNode(next[index], true));
      });
    });
  }

  window.OrchestratorAdmin = { fetchText: fetchText, fetchDocument: fetchDocument, swapParts: swapParts };
})();
