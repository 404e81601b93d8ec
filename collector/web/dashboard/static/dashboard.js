// collector dashboard: live updates over EventSource, the simulate, call and cancel controls.
// The server renders every fragment; this script only decides when to fetch one again.
(function () {
  "use strict";

  var body = document.body;
  var statusEl = document.getElementById("live-status");

  function toLogin() {
    var next = location.pathname + location.search;
    location.href = "/login?next=" + encodeURIComponent(next);
  }

  // -- relative times ------------------------------------------------------------------
  function ago(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "—";
    var s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(t).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function refreshTimes(root) {
    var els = (root || document).querySelectorAll("time[data-relative]");
    for (var i = 0; i < els.length; i++) {
      els[i].textContent = ago(els[i].getAttribute("datetime"));
    }
  }
  setInterval(refreshTimes, 5000);

  // -- live fragments ------------------------------------------------------------------
  var container = document.querySelector("[data-fragment]");
  var pending = null;
  var inFlight = false;
  var again = false;

  function signatures(root) {
    var out = {};
    var els = root.querySelectorAll("[data-key]");
    for (var i = 0; i < els.length; i++) {
      out[els[i].getAttribute("data-key")] = els[i].getAttribute("data-sig");
    }
    return out;
  }

  function swap(html) {
    var before = signatures(container);
    var openDetails = {};
    var dets = container.querySelectorAll("[data-key] details[open]");
    for (var i = 0; i < dets.length; i++) {
      openDetails[dets[i].closest("[data-key]").getAttribute("data-key")] = true;
    }
    var transcript = container.querySelector(".transcript");
    var stick = transcript && transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 8;
    container.innerHTML = html;
    var els = container.querySelectorAll("[data-key]");
    for (var j = 0; j < els.length; j++) {
      var key = els[j].getAttribute("data-key");
      if (before[key] !== els[j].getAttribute("data-sig")) els[j].classList.add("flash");
      if (openDetails[key]) {
        var d = els[j].querySelector("details");
        if (d) d.open = true;
      }
    }
    var t2 = container.querySelector(".transcript");
    if (t2 && (stick || !transcript)) t2.scrollTop = t2.scrollHeight;
    bindCancel();
  }

  function refresh() {
    if (!container) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(container.getAttribute("data-fragment"), {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) { toLogin(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined) swap(html);
    }).catch(function () { /* the stream's reconnect fetches again */ })
      .then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  // a call page redraws quickly; the list (many calls, many events) at most a few times a second
  var delay = parseInt((container && container.getAttribute("data-debounce")) || "60", 10);
  function schedule() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, delay);
  }

  var eventsUrl = body.getAttribute("data-events");
  if (eventsUrl && window.EventSource) {
    var connectedOnce = false;
    var source = new EventSource(eventsUrl, { withCredentials: true });
    statusEl.hidden = false;
    source.onopen = function () {
      statusEl.textContent = "live";
      statusEl.classList.add("on");
      if (connectedOnce) schedule(); // catch up after a reconnect
      connectedOnce = true;
    };
    source.onerror = function () {
      statusEl.textContent = "reconnecting…";
      statusEl.classList.remove("on");
      if (source.readyState === EventSource.CLOSED) {
        // the server refused the stream (signed out?): check, then retry
        fetch("/api/forms", { credentials: "same-origin" }).then(function (r) {
          if (r.status === 401) toLogin();
          else setTimeout(function () { location.reload(); }, 3000);
        });
      }
    };
    source.onmessage = function () { schedule(); };
  }

  // -- start a call (simulate one, or call a number) ------------------------------------
  // POST the payload; on a new session open its page, else hand the error's text to fail.
  // onNoSession runs when the server accepted without naming a session.
  function startCall(url, payload, fail, onNoSession) {
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payload)
    }).then(function (r) {
      if (r.status === 401) { toLogin(); return null; }
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (!res) return;
      if (res.ok && res.data.session_id) {
        location.href = "/calls/" + encodeURIComponent(res.data.session_id);
      } else if (res.ok) {
        onNoSession();
      } else {
        fail((res.data.error && res.data.error.message) || "The call could not be placed.");
      }
    }).catch(function () { fail("The server did not answer."); });
  }

  var simForm = document.getElementById("simulate-form");
  if (simForm) {
    var simError = document.getElementById("simulate-error");
    var simButton = document.getElementById("simulate-button");
    var simReady = function () {
      simButton.disabled = false;
      simButton.textContent = "Place a simulated call";
    };
    var showSimError = function (text) {
      simError.textContent = text;
      simError.hidden = false;
      simReady();
    };
    simForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      simError.hidden = true;
      var payload = { form: document.getElementById("simulate-form-id").value };
      var raw = document.getElementById("simulate-answers").value.trim();
      if (raw) {
        try { payload.answers = JSON.parse(raw); } catch (e) {
          simError.textContent = "Answers must be JSON, like {\"email\": \"maria@example.com\"}.";
          simError.hidden = false;
          return;
        }
      }
      simButton.disabled = true;
      simButton.textContent = "Ringing…";
      startCall("/api/simulate", payload, showSimError, function () { schedule(); simReady(); });
    });
  }

  var dialForm = document.getElementById("dial-form");
  if (dialForm) {
    var dialError = document.getElementById("dial-error");
    var dialButton = document.getElementById("dial-button");
    var showDialError = function (text) {
      dialError.textContent = text;
      dialError.hidden = false;
      dialButton.disabled = false;
      dialButton.textContent = "Call";
    };
    dialForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      dialError.hidden = true;
      var payload = {
        to: document.getElementById("dial-to").value.trim(),
        form: document.getElementById("dial-form-id").value
      };
      var raw = document.getElementById("dial-variables").value.trim();
      if (raw) {
        try { payload.variables = JSON.parse(raw); } catch (e) {
          showDialError("Variables must be JSON, like {\"first_name\": \"Maria\"}.");
          return;
        }
      }
      var callee = document.getElementById("dial-callee");
      if (callee) payload.script = { callee: callee.value };
      dialButton.disabled = true;
      dialButton.textContent = "Dialling…";
      startCall("/api/calls", payload, showDialError, function () {
        showDialError("The call could not be placed.");
      });
    });
  }

  // -- cancel a call -------------------------------------------------------------------
  function bindCancel() {
    var button = document.getElementById("cancel-button");
    if (!button || button.getAttribute("data-bound")) return;
    button.setAttribute("data-bound", "1");
    button.addEventListener("click", function () {
      if (!window.confirm("Cancel this call? The caller hears a goodbye and the session ends as abandoned.")) return;
      button.disabled = true;
      fetch(button.getAttribute("data-cancel-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: "{}"
      }).then(function (r) {
        if (r.status === 401) { toLogin(); return; }
        if (!r.ok) {
          return r.json().then(function (data) {
            var err = document.getElementById("cancel-error");
            err.textContent = (data.error && data.error.message) || "The call could not be cancelled.";
            err.hidden = false;
            button.disabled = false;
          });
        }
        schedule();
      });
    });
  }
  bindCancel();
  refreshTimes();
})();
