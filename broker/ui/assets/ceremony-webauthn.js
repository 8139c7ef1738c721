// The WebAuthn login ceremony on the broker's ceremony page: asks the
// broker for options (a passkey request, or one for the credentials of a
// user name), hands them to navigator.credentials.get, posts the answer to
// the finish URL and shows the page the broker answers with.
//
// Where the browser offers conditional mediation, a passkey request runs
// in the background from the start, so the browser can offer the passkeys
// in the user-name field's autofill; pressing a button or submitting a
// form aborts it first. Where the relying party allows self-registration
// (data-register), a form creates an account with a new passkey.
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
  function isJSON(resp) {
    return resp.ok && (resp.headers.get("Content-Type") || "").indexOf("application/json") === 0;
  }
  // The background (conditional) request: its AbortController, and the
  // promise of its options request, which an explicit ceremony waits for
  // so that its own options (and challenge) are the ones the broker keeps.
  var conditional = null, conditionalOptions = Promise.resolve();
  function stopConditional() {
    if (conditional) { conditional.abort(); conditional = null; }
    return conditionalOptions;
  }
  function startConditional() {
    if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) { return; }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || conditional) { return; }
      var ac = new AbortController();
      conditional = ac;
      root.dataset.conditional = "requested";
      var optsPromise = post(root.dataset.options, { mediation: "conditional" }).then(function (resp) {
        return isJSON(resp) ? resp.json() : null;
      });
      conditionalOptions = optsPromise.then(function () {}, function () {});
      optsPromise.then(function (opts) {
        if (!opts || ac.signal.aborted) { return null; }
        var o = W.requestOptions(opts);
        o.mediation = "conditional";
        o.signal = ac.signal;
        root.dataset.conditional = "pending";
        return navigator.credentials.get(o);
      }).then(function (cred) {
        if (!cred || ac.signal.aborted) { return; }
        conditional = null;
        say(W.text("waiting"));
        return post(root.dataset.finish, W.credentialJSON(cred)).then(showPage);
      }).catch(function (err) {
        if (ac.signal.aborted) { return; }
        conditional = null;
        if (!(err && (err.name === "NotAllowedError" || err.name === "AbortError"))) { say(W.text("failed")); }
      });
    }, function () {});
  }
  // ceremony asks for options with input, hands them to the browser API
  // (get, or create for a self-registration) and posts the answer.
  function ceremony(input, create) {
    if (!window.PublicKeyCredential || !navigator.credentials) { say(W.text("unsupported")); return; }
    say(W.text("waiting"));
    stopConditional().then(function () {
      return post(root.dataset.options, input);
    }).then(function (resp) {
      if (!isJSON(resp)) { return showPage(resp); }
      return resp.json().then(function (opts) {
        return create ? navigator.credentials.create(W.creationOptions(opts)) : navigator.credentials.get(W.requestOptions(opts));
      }).then(function (cred) {
        return post(root.dataset.finish, W.credentialJSON(cred));
      }).then(showPage);
    }).catch(function (err) {
      say(err && (err.name === "NotAllowedError" || err.name === "AbortError") ? W.text("cancelled") : W.text("failed"));
    });
  }
  function login(input) { ceremony(input, false); }
  // registerForm offers a new account with a passkey (self-registration).
  function registerForm() {
    var form = document.createElement("form");
    form.id = "webauthn-register-form";
    var h = document.createElement("h2");
    h.textContent = W.text("registerTitle");
    var label = document.createElement("label");
    label.htmlFor = "webauthn-register-username"; label.textContent = W.text("registerName");
    var input = document.createElement("input");
    input.id = "webauthn-register-username"; input.name = "username"; input.required = true;
    input.setAttribute("autocomplete", "username");
    var go = document.createElement("button");
    go.type = "submit"; go.className = "secondary"; go.textContent = W.text("register");
    form.append(h, label, document.createElement("br"), input, " ", go);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      ceremony({ register: true, username: input.value.trim() }, true);
    });
    return form;
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
    if (root.dataset.register === "1") { root.insertBefore(registerForm(), status); }
    startConditional();
  }
  // The shared helpers come from webauthn-common.js, loaded next to us.
  var s = document.createElement("script");
  s.src = "/assets/webauthn-common.js";
  s.onload = build;
  document.head.appendChild(s);
})();
