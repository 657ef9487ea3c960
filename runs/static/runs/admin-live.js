// Follows a run's event stream on its admin page: appends checkpoints and
// status changes as they arrive, moves the progress bar, and on every status
// change (and every few seconds while the run is open) re-reads the page
// itself to swap in its fields, heading and buttons, so status, times,
// duration, attempt and error are never stale. Plain script, no build step.
//
// The page renders the checkpoints it has and the newest one's ts; the
// stream is opened resuming after that ts, so nothing that lands between
// rendering and connecting is lost, and nothing is shown twice. After a
// dropped connection the script reconnects itself (with a fresh stream token
// and the last ts it saw) rather than leave it to EventSource, whose retry
// would reuse a URL whose token may have expired.
(function () {
  "use strict";

  var root = document.getElementById("run-live");
  if (!root || typeof EventSource === "undefined") {
    return;
  }
  var FINAL = { completed: true, failed: true, canceled: true };
  var eventsUrl = root.dataset.eventsUrl;
  var tokenUrl = root.dataset.tokenUrl;
  var token = root.dataset.token;
  var lastEventId = root.dataset.lastEventId || "";
  var append = root.dataset.append === "1";
  var body = document.getElementById("run-checkpoints-body");
  var stateEl = root.querySelector("[data-live-state]");
  var statusEl = root.querySelector("[data-live-status]");
  var countEl = root.querySelector("[data-live-count]");
  var newerEl = root.querySelector("[data-live-newer]");
  var logEl = root.querySelector("[data-live-log]");
  var progressEl = root.querySelector("[data-live-progress]");
  var DETAILS_EVERY_MS = 5000;
  var detailsTimer = null;
  var detailsBusy = false;
  var source = null;
  var finished = false;
  var failures = 0;
  var opened = false;

  function setState(state) {
    root.dataset.state = state;
    stateEl.textContent = state;
  }

  function streamUrl() {
    var params = new URLSearchParams();
    if (token) {
      params.set("token", token);
    }
    if (lastEventId) {
      params.set("lastEventId", lastEventId);
    }
    return eventsUrl + "?" + params.toString();
  }

  function cell(row, text, pre) {
    var td = document.createElement("td");
    if (pre) {
      var block = document.createElement("pre");
      block.className = "run-json";
      block.textContent = text;
      td.appendChild(block);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }

  function onCheckpoint(checkpoint, id) {
    var ts = id || checkpoint.ts;
    // Timestamps share one fixed-width format, so text order is time order.
    if (lastEventId && ts <= lastEventId) {
      return;
    }
    lastEventId = ts;
    if (!append) {
      showProgress(fraction(checkpoint.data));
      newerEl.hidden = false;
      return;
    }
    var empty = body.querySelector(".run-no-checkpoints");
    if (empty) {
      empty.remove();
    }
    var row = document.createElement("tr");
    row.className = "run-live-new";
    row.dataset.ts = checkpoint.ts;
    cell(row, String(checkpoint.seq));
    cell(row, checkpoint.ts);
    cell(row, checkpoint.type);
    cell(row, JSON.stringify(checkpoint.data, null, 1), true);
    body.appendChild(row);
    countEl.textContent = String(checkpoint.seq);
    showProgress(fraction(checkpoint.data));
  }

  // The convention of runs/progress.py: data.progress (0..1), or data.step of data.of.
  function fraction(data) {
    if (!data || typeof data !== "object") {
      return null;
    }
    if (typeof data.progress === "number") {
      return Math.min(1, Math.max(0, data.progress));
    }
    if (typeof data.step === "number" && typeof data.of === "number" && data.of > 0) {
      return Math.min(1, Math.max(0, data.step / data.of));
    }
    return null;
  }

  function showProgress(value) {
    if (value === null || !progressEl) {
      return;
    }
    var percent = Math.round(value * 100);
    progressEl.innerHTML = "";
    var bar = document.createElement("span");
    bar.className = "run-progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(percent));
    var fill = document.createElement("span");
    fill.style.width = percent + "%";
    bar.appendChild(fill);
    var text = document.createElement("span");
    text.className = "run-progress-text";
    text.textContent = percent + "%";
    progressEl.appendChild(bar);
    progressEl.appendChild(text);
  }

  // Swap in the server's current rendering of the parts of the page that
  // describe the run (not the checkpoints, which the stream keeps).
  var DETAIL_PARTS = [
    ".breadcrumbs",
    "#content > h2",
    ".object-tools",
    "#content-main fieldset.module:not(#run-checkpoints)",
  ];

  function refreshDetails() {
    if (detailsBusy) {
      return;
    }
    detailsBusy = true;
    window.OrchestratorAdmin.fetchDocument(window.location.href)
      .then(function (fresh) {
        window.OrchestratorAdmin.swapParts(fresh, DETAIL_PARTS);
        root.dataset.detailsUpdated = String(Number(root.dataset.detailsUpdated || "0") + 1);
      })
      .catch(function () {
        return null;
      })
      .then(function () {
        detailsBusy = false;
      });
  }

  function showRun(run) {
    if (!run) {
      return;
    }
    var changed = statusEl.textContent !== run.status;
    statusEl.textContent = run.status;
    countEl.textContent = String(run.checkpointCount);
    root.dataset.status = run.status;
    if (changed) {
      refreshDetails();
    }
  }

  function logStatus(kind, data) {
    var item = document.createElement("li");
    var when = data.run && data.run.updatedAt ? data.run.updatedAt + " " : "";
    item.textContent = when + kind + ": " + data.status;
    logEl.appendChild(item);
  }

  function finish() {
    finished = true;
    if (source) {
      source.close();
    }
    if (detailsTimer) {
      window.clearInterval(detailsTimer);
    }
    refreshDetails();
    setState("finished");
  }

  function refreshToken() {
    var csrf = document.querySelector("[name=csrfmiddlewaretoken]");
    return fetch(tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRFToken": csrf ? csrf.value : "" },
    }).then(function (response) {
      // The admin sends a signed-out user to its login page.
      if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
        throw new Error("signed out");
      }
      if (!response.ok) {
        return;
      }
      return response.json().then(function (fresh) {
        token = fresh.token;
        return fresh;
      });
    });
  }

  function reconnectLater() {
    failures += 1;
    setState("reconnecting");
    var delay = Math.min(30000, 250 * Math.pow(2, Math.min(failures, 7)));
    var refusedBeforeOpen = !opened;
    window.setTimeout(function () {
      refreshToken().then(function (fresh) {
        // A final run refused before the stream opened is the 204 that
        // means "nothing newer, ever": stop instead of asking again.
        if (fresh && FINAL[fresh.status] && refusedBeforeOpen) {
          statusEl.textContent = fresh.status;
          finish();
          return;
        }
        connect();
      }, function (error) {
        if (error && error.message === "signed out") {
          setState("offline: sign in again");
        } else {
          connect();
        }
      });
    }, delay);
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (error) {
      return null;
    }
  }

  function connect() {
    setState("connecting");
    opened = false;
    source = new EventSource(streamUrl());
    source.addEventListener("open", function () {
      opened = true;
      failures = 0;
      setState("live");
    });
    source.addEventListener("hello", function (event) {
      var data = parse(event);
      if (data) {
        showRun(data.run);
      }
    });
    source.addEventListener("checkpoint", function (event) {
      var data = parse(event);
      if (data) {
        onCheckpoint(data, event.lastEventId);
      }
    });
    source.addEventListener("status", function (event) {
      var data = parse(event);
      if (data) {
        showRun(data.run);
        logStatus("status", data);
      }
    });
    source.addEventListener("end", function (event) {
      var data = parse(event);
      if (data) {
        showRun(data.run);
        logStatus("end", data);
      }
      finish();
    });
    source.addEventListener("error", function () {
      if (finished) {
        return;
      }
      source.close();
      reconnectLater();
    });
  }

  if (root.dataset.final === "1" || FINAL[statusEl.textContent]) {
    // A finished run never changes again: the page already shows all of it.
    setState("finished");
    return;
  }
  // While the run is open its duration grows and its attempt may change.
  detailsTimer = window.setInterval(refreshDetails, DETAILS_EVERY_MS);
  connect();
})();
