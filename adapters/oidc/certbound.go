package oidc

import (
	"crypto/subtle"
	"net/http"

	"github.com/trustbroker/trustbroker/broker/clientcert"
)

// Certificate-bound access tokens (RFC 8705 §3). The certificate is the
// user's card, presented on the broker's card-login TLS listener at login;
// a client registered with tls_client_certificate_bound_access_tokens gets
// tokens bound to it (cnf.x5t#S256), and userinfo then wants the same
// certificate on its own TLS connection, i.e. when called on the
// card-login listener by the card holder's client.

// cnf is the confirmation claim of an access token (RFC 7800): the DPoP
// key (RFC 9449 §6) and/or the certificate (RFC 8705 §3.1).
func (s *Session) cnf() map[string]string {
	out := map[string]string{}
	if s.JKT != "" {
		out["jkt"] = s.JKT
	}
	if s.X5T != "" {
		out["x5t#S256"] = s.X5T
	}
	return out
}

// certificateBound reports whether the request may use a token of session
// s: true for tokens not bound to a certificate, and for bound ones when
// the request's TLS connection presented the same certificate (RFC 8705
// §3: the resource compares the thumbprint).
func certificateBound(r *http.Request, s *Session) bool {
	if s.X5T == "" {
		return true
	}
	got := clientcert.TLSThumbprint(r)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.X5T)) == 1
}
