// The WebAuthn login ceremony on the broker's ceremony page: asks the
// broker for options (a passkey request, or one for the credentials of a
// user name), hands them to navigator.credentials.get, posts the answer to
// the finish URL and shows the page the broker answers with.
(function () {
  "use strict";
  var root = document.getElementById("ceremony");
  var status = document.getElementById("ceremony-status");
  if (!root) { return; }
  var W;
  function say(msg) { status.textContent = msg; }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", redirect: "follow",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf },
      body: JSON.stringify(body)
    });
  }
  // A successful finish answers {"next": URL}: the browser navigates there
  // and the broker answers the relying party (which may be on another
  // origin, where a script could not follow). Anything else is a page of
  // the broker (an error, the method choice) that replaces this document.
  function showPage(resp) {
    if (resp.ok && (resp.headers.get("Content-Type") || "").indexOf("application/json") === 0) {
      return resp.json().then(function (answer) { window.location.assign(answer.next); });
    }
    return resp.text().then(function (html) {
      if (resp.redirected && resp.url) { history.replaceState(null, "", resp.url); }
      document.open(); document.write(html); document.close();
    });
  }
  function login(input) {
    if (!window.PublicKeyCredential || !navigator.credentials) { say(W.text("unsupported")); return; }
    say(W.text("waiting"));
    post(root.dataset.options, input).then(function (resp) {
      if (!resp.ok || (resp.headers.get("Content-Type") || "").indexOf("application/json") !== 0) {
        return showPage(resp);
      }
      return resp.json().then(function (opts) {
        return navigator.credentials.get(W.requestOptions(opts));
      }).then(function (cred) {
        return post(root.dataset.finish, W.credentialJSON(cred));
      }).then(showPage);
    }).catch(function (err) {
      say(err && (err.name === "NotAllowedError" || err.name === "AbortError") ? W.text("cancelled") : W.text("failed"));
    });
  }
  function build() {
    W = window.TrustbrokerWebAuthn;
    var pk = document.createElement("button");
    pk.type = "button"; pk.id = "webauthn-passkey"; pk.textContent = W.text("passkey");
    pk.addEventListener("click", function () { login({}); });
    var form = document.createElement("form");
    form.id = "webauthn-username-form";
    var label = document.createElement("label");
    label.htmlFor = "webauthn-login-username"; label.textContent = W.text("username");
    var input = document.createElement("input");
    input.id = "webauthn-login-username"; input.name = "username"; input.required = true;
    input.setAttribute("autocomplete", "username webauthn");
    var go = document.createElement("button");
    go.type = "submit"; go.className = "secondary"; go.textContent = W.text("withName");
    form.append(label, document.createElement("br"), input, " ", go);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      login({ username: input.value.trim() });
    });
    var p = document.createElement("p");
    p.append(pk);
    root.insertBefore(p, status);
    root.insertBefore(form, status);
  }
  // The shared helpers come from webauthn-common.js, loaded next to us.
  var s = document.createElement("script");
  s.src = "/assets/webauthn-common.js";
  s.onload = build;
  document.head.appendChild(s);
})();
