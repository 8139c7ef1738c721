// The eID activation page: probes a local eID client with the ?Status
// call of BSI TR-03124-1 and says whether one answered. The link to start
// the client works either way; the probe only helps the user.
(function () {
  "use strict";
  var el = document.getElementById("eid-status");
  if (!el || !el.dataset.status || !window.fetch) { return; }
  var ctl = window.AbortController ? new AbortController() : null;
  var timer = setTimeout(function () { if (ctl) { ctl.abort(); } }, 2000);
  fetch(el.dataset.status, { method: "GET", mode: "cors", credentials: "omit", signal: ctl ? ctl.signal : undefined })
    .then(function (resp) {
      clearTimeout(timer);
      el.textContent = resp.ok ? el.dataset.found : el.dataset.missing;
      el.className = resp.ok ? "eid-found" : "eid-missing";
    })
    .catch(function () {
      clearTimeout(timer);
      el.textContent = el.dataset.missing;
      el.className = "eid-missing";
    });
})();
