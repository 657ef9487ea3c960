// Keeps the admin's run list current without a reload. It follows the run
// journal (GET /runs/events): on each run change it re-reads the same page
// (same filters, search and page) and swaps in the table, so new runs appear
// and status, duration and progress move. Changes that come in a burst cost
// one re-read. While the operator has runs ticked for an action, the table is
// left alone and re-read once they are not.
// Without EventSource, or while the stream cannot be opened, it re-reads the
// page every few seconds instead.
// Loaded in the page's head (the admin's form media): it starts once the
// document is parsed.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  var POLL_MS = 3000;
  var SETTLE_MS = 250; // a burst of changes, one re-read
  var RECONNECT_MS = 2000;
  if (!document.body.classList.contains("change-list")) {
    return;
  }
  var form = document.getElementById("changelist-form");
  var live = document.getElementById("run-list-live");
  if (!form || !document.getElementById("result_list")) {
    return;
  }
  var pending = null;
  var pollTimer = null;
  var source = null;
  var lastEventId = "";

  function selecting() {
    return form.querySelector("input.action-select:checked, #action-toggle:checked") !== null;
  }

  function setState(state) {
    form.dataset.liveState = state;
  }

  function reread() {
    pending = null;
    if (selecting()) {
      pending = window.setTimeout(reread, POLL_MS);
      return Promise.resolve();
    }
    return window.OrchestratorAdmin.fetchDocument(window.location.href)
      .then(function (fresh) {
        if (selecting()) {
          return;
        }
        window.OrchestratorAdmin.swapParts(fresh, ["#result_list", "#changelist .paginator", "#changelist-search .quiet"]);
        form.dataset.liveUpdates = String(Number(form.dataset.liveUpdates || "0") + 1);
      })
      .catch(function () {
        setState("stale");
      });
  }

  function soon() {
    if (pending === null) {
      pending = window.setTimeout(reread, SETTLE_MS);
    }
  }

  function poll() {
    if (pollTimer !== null) {
      return;
    }
    setState("polling");
    pollTimer = window.setTimeout(function () {
      pollTimer = null;
      reread().then(function () {
        if (source === null) {
          poll();
        }
      });
    }, POLL_MS);
  }

  function mintToken() {
    var csrf = document.querySelector("[name=csrfmiddlewaretoken]");
    return fetch(live.dataset.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRFToken": csrf ? csrf.value : "" },
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("no stream token: HTTP " + response.status);
      }
      return response.json();
    });
  }

  function follow() {
    mintToken()
      .then(function (minted) {
        var params = new URLSearchParams({ token: minted.token });
        if (lastEventId) {
          params.set("lastEventId", lastEventId); // a new token resumes where the last stream stopped
        }
        source = new EventSource(live.dataset.eventsUrl + "?" + params.toString());
        source.onopen = function () {
          if (pollTimer !== null) {
            window.clearTimeout(pollTimer);
            pollTimer = null;
          }
          setState("streaming");
        };
        source.addEventListener("run", function (event) {
          lastEventId = event.lastEventId || lastEventId;
          soon();
        });
        source.addEventListener("reset", soon);
        source.onerror = function () {
          // EventSource reconnects by itself (with Last-Event-ID); once the
          // server refuses (an expired token) it is closed: start over.
          if (source.readyState === EventSource.CLOSED) {
            source = null;
            poll();
            window.setTimeout(follow, RECONNECT_MS);
          }
        };
      })
      .catch(function () {
        source = null;
        poll();
        window.setTimeout(follow, RECONNECT_MS * 5);
      });
  }

  if (live && typeof EventSource !== "undefined") {
    follow();
  } else {
    poll();
  }
});
