package oidc

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/adapters/oidc/dpop"
)

// dpopProof verifies the request's DPoP proof (RFC 9449 §4.3) when it
// carries one; nil without a DPoP header.
func (p *Provider) dpopProof(r *http.Request, path, accessToken, boundJKT string) (*dpop.Proof, error) {
	headers := r.Header.Values("DPoP")
	if len(headers) == 0 {
		return nil, nil
	}
	return p.dpop.Verify(r.Context(), dpop.Request{
		Headers: headers, Method: r.Method, URL: p.o.Issuer + path, AccessToken: accessToken, BoundJKT: boundJKT,
	})
}

// dpopTokenError answers a refused proof at the token or PAR endpoint
// (RFC 9449 §5, §8): 400 with the error code, and a fresh nonce when the
// client must use one. A server-side failure is a 500.
func (p *Provider) dpopTokenError(w http.ResponseWriter, r *http.Request, err error) {
	var de *dpop.Error
	if !errors.As(err, &de) {
		p.o.Logger.ErrorContext(r.Context(), "dpop", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if de.Code == dpop.CodeUseNonce {
		if n, nerr := p.dpop.NewNonce(); nerr == nil {
			w.Header().Set("DPoP-Nonce", n)
		}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": de.Code, "error_description": de.Description})
}

// errDPoP builds an invalid_dpop_proof token error.
func errDPoP(hint string) *fosite.RFC6749Error {
	return (&fosite.RFC6749Error{ErrorField: dpop.CodeInvalidProof, DescriptionField: "The DPoP proof is invalid.", CodeField: http.StatusBadRequest}).WithHint(hint)
}

// bindTokens applies the DPoP rules of the token endpoint to a validated
// access request: a code bound with dpop_jkt, and a public client's refresh
// tokens, need a proof by the same key; the new tokens are bound to the
// proof's key (cnf.jkt).
func bindTokens(ar fosite.AccessRequester, c *Client, proof *dpop.Proof) error {
	s, ok := ar.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithHint("unexpected session type")
	}
	if c.RP.OIDC.RequireDPoP && proof == nil {
		return errDPoP("This client must present a DPoP proof.")
	}
	boundBefore := s.JKT != ""
	switch {
	case ar.GetGrantTypes().ExactOne("authorization_code") && boundBefore:
		if proof == nil || proof.JKT != s.JKT {
			return errDPoP("The proof key does not match the dpop_jkt of the authorization request.")
		}
	case ar.GetGrantTypes().ExactOne("refresh_token") && boundBefore && c.IsPublic():
		if proof == nil || proof.JKT != s.JKT {
			return errDPoP("This refresh token is bound to another key.")
		}
	}
	s.JKT = ""
	if proof != nil {
		s.JKT = proof.JKT
	}
	return nil
}

// accessToken reads the access token of a protected-resource request and
// its scheme: "Bearer" (RFC 6750) or "DPoP" (RFC 9449 §7.1).
func accessToken(r *http.Request) (token, scheme string) {
	auth := r.Header.Get("Authorization")
	if s, t, ok := strings.Cut(auth, " "); ok {
		switch strings.ToLower(s) {
		case "bearer":
			return strings.TrimSpace(t), "Bearer"
		case "dpop":
			return strings.TrimSpace(t), "DPoP"
		}
	}
	if r.Method == http.MethodPost && auth == "" {
		if err := r.ParseForm(); err == nil {
			return r.PostForm.Get("access_token"), "Bearer"
		}
	}
	return "", ""
}

// checkSender enforces sender constraint at a protected resource: a
// DPoP-bound token needs the DPoP scheme and a proof by its key, with ath
// (RFC 9449 §7); an unbound token is a bearer token.
func (p *Provider) checkSender(r *http.Request, path, token, scheme string, s *Session) error {
	if s.JKT == "" {
		if scheme == "DPoP" {
			return &dpop.Error{Code: dpop.CodeInvalidToken, Description: "The access token is not DPoP-bound."}
		}
		return nil
	}
	if scheme != "DPoP" {
		return &dpop.Error{Code: dpop.CodeInvalidToken, Description: "The access token is DPoP-bound: use the DPoP scheme with a proof."}
	}
	proof, err := p.dpopProof(r, path, token, s.JKT)
	if err != nil {
		return err
	}
	if proof == nil {
		return &dpop.Error{Code: dpop.CodeInvalidProof, Description: "A DPoP proof is required."}
	}
	return nil
}

// resourceError answers a refused protected-resource request (RFC 6750 §3,
// RFC 9449 §7.1).
func (p *Provider) resourceError(w http.ResponseWriter, r *http.Request, err error) {
	var de *dpop.Error
	if !errors.As(err, &de) {
		p.o.Logger.ErrorContext(r.Context(), "protected resource", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("WWW-Authenticate", p.dpop.WWWAuthenticate(err, p.o.Issuer))
	if de.Code == dpop.CodeUseNonce {
		if n, nerr := p.dpop.NewNonce(); nerr == nil {
			w.Header().Set("DPoP-Nonce", n)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
}
