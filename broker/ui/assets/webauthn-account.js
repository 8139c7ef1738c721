// Registration of a security key or passkey on the account page.
(function () {
  "use strict";
  var form = document.getElementById("webauthn-register");
  if (!form) { return; }
  var status = document.getElementById("webauthn-status");
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().then(function (j) {
        if (!resp.ok) { throw { message: j.error }; }
        return j;
      });
    });
  }
  function start(W) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) { status.textContent = form.dataset.unsupported; return; }
      var user = form.elements.username ? form.elements.username.value.trim() : "";
      var name = form.elements.name.value.trim();
      var base = form.dataset.base, registration;
      status.textContent = "…";
      post(base + "/register/options", { username: user }).then(function (r) {
        registration = r.registration;
        return navigator.credentials.create(W.creationOptions(r.options));
      }).then(function (cred) {
        return post(base + "/register/finish", { registration: registration, name: name, credential: W.credentialJSON(cred) });
      }).then(function (r) {
        var lang = document.documentElement.lang;
        window.location.assign(r.next + (lang ? "&lang=" + lang : ""));
      }).catch(function (err) {
        if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
          status.textContent = form.dataset.cancelled;
        } else {
          status.textContent = (err && err.message && !err.name) ? err.message : form.dataset.failed;
        }
      });
    });
  }
  var s = document.createElement("script");
  s.src = "/assets/webauthn-common.js";
  s.onload = function () { start(window.TrustbrokerWebAuthn); };
  document.head.appendChild(s);
})();
