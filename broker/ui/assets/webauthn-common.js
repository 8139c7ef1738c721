// Shared helpers of the WebAuthn scripts: base64url <-> ArrayBuffer and
// the conversion of the broker's JSON options into what the browser API
// takes, and of its answers back into JSON. Plain script, no build step.
(function () {
  "use strict";
  function b64uToBuf(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (d) {
      var o = { type: d.type, id: b64uToBuf(d.id) };
      if (d.transports) { o.transports = d.transports; }
      return o;
    });
  }
  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: b64uToBuf(pk.user.id) });
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }
  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = b64uToBuf(pk.challenge);
    pk.allowCredentials = descriptors(pk.allowCredentials);
    var out = { publicKey: pk };
    if (o.mediation) { out.mediation = o.mediation; }
    return out;
  }
  function credentialJSON(c) {
    var r = c.response, resp = { clientDataJSON: bufToB64u(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = bufToB64u(r.attestationObject);
      if (r.getTransports) { resp.transports = r.getTransports(); }
    } else {
      resp.authenticatorData = bufToB64u(r.authenticatorData);
      resp.signature = bufToB64u(r.signature);
      if (r.userHandle) { resp.userHandle = bufToB64u(r.userHandle); }
    }
    return {
      id: c.id, rawId: bufToB64u(c.rawId), type: c.type, response: resp,
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
  }
  // Texts in the page's language (German unless the page says en).
  var texts = {
    de: {
      passkey: "Mit Passkey anmelden", username: "Benutzername (für Sicherheitsschlüssel ohne Passkey)",
      withName: "Mit Sicherheitsschlüssel anmelden", waiting: "Bitte bestätigen Sie am Sicherheitsschlüssel …",
      unsupported: "Ihr Browser unterstützt keine Sicherheitsschlüssel.", cancelled: "Der Vorgang wurde abgebrochen oder ist abgelaufen.",
      failed: "Das hat nicht geklappt. Bitte versuchen Sie es erneut.",
      registerTitle: "Noch kein Konto?", registerName: "Benutzername für das neue Konto",
      register: "Konto mit Passkey anlegen"
    },
    en: {
      passkey: "Log in with a passkey", username: "User name (for security keys without passkey)",
      withName: "Log in with a security key", waiting: "Please confirm on your security key …",
      unsupported: "Your browser does not support security keys.", cancelled: "The operation was cancelled or timed out.",
      failed: "That did not work. Please try again.",
      registerTitle: "No account yet?", registerName: "User name for the new account",
      register: "Create an account with a passkey"
    }
  };
  function text(key) {
    var lang = (document.documentElement.lang || "de").slice(0, 2);
    return (texts[lang] || texts.de)[key];
  }
  window.TrustbrokerWebAuthn = {
    b64uToBuf: b64uToBuf, bufToB64u: bufToB64u, creationOptions: creationOptions,
    requestOptions: requestOptions, credentialJSON: credentialJSON, text: text
  };
})();
