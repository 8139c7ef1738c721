package oidc

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/web"
)

// userSession builds the session of a login: the ID token claims and what
// the broker decided. Only the consented claims enter it.
func (p *Provider) userSession(ar fosite.AuthorizeRequester, c *Client, res *broker.Result) (*Session, error) {
	s := newSession()
	s.Subject = res.Subject
	s.AccountID, s.SSOSession, s.ClientID = res.AccountID, res.SessionID, c.GetID()
	s.CredentialKind = res.Identity.Kind
	if c.RP.OIDC.TLSClientCertificateBoundAccessTokens {
		s.X5T = res.Identity.CertThumbprint
	}
	s.Claims = res.Claims
	cl := s.DefaultSession.Claims
	cl.Subject, cl.Issuer = res.Subject, p.o.Issuer
	cl.AuthTime = res.AuthTime.UTC()
	cl.RequestedAt = ar.GetRequestedAt()
	cl.AuthenticationContextClassReference = res.ACR
	cl.AuthenticationMethodsReferences = res.AMR
	cl.Extra["sid"] = sid(c.GetID(), res.SessionID)
	for k, v := range res.Claims {
		cl.Extra[k] = v
	}
	if vc := verifiedClaims(res); vc != nil {
		cr, _ := parseClaimsParam(ar.GetRequestForm().Get("claims"))
		if cr.VerifiedClaims {
			cl.Extra["verified_claims"] = vc
			s.Claims = withVerified(s.Claims, vc)
		}
	}
	sg, err := p.o.Keys.Signer(c.RP.OIDC.IDTokenSignedResponseAlg)
	if err != nil {
		return nil, err
	}
	s.DefaultSession.Headers.Extra["kid"] = sg.KID
	return s, nil
}

// withVerified returns claims plus verified_claims, without changing the
// caller's map.
func withVerified(claims map[string]any, vc any) map[string]any {
	out := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		out[k] = v
	}
	out["verified_claims"] = vc
	return out
}

// verifiedClaims expresses an identity from an eID or health card in
// OpenID Connect for Identity Assurance 1.0 form (§5): the verification
// block the provider reported and the consented claims it covers.
func verifiedClaims(res *broker.Result) map[string]any {
	ev := res.Identity.Evidence
	if ev == nil || len(res.Claims) == 0 {
		return nil
	}
	verification := map[string]any{"trust_framework": ev.TrustFramework}
	if ev.AssuranceLevel != "" {
		verification["assurance_level"] = ev.AssuranceLevel
	}
	if !ev.Time.IsZero() {
		verification["time"] = ev.Time.UTC().Format("2006-01-02T15:04:05Z")
	}
	if len(ev.Items) > 0 {
		verification["evidence"] = ev.Items
	}
	return map[string]any{"verification": verification, "claims": res.Claims}
}

// handleToken is the token endpoint (RFC 6749 §3.2).
func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	proof, err := p.dpopProof(r, PathToken, "", "")
	if err != nil {
		p.dpopTokenError(w, r, err)
		return
	}
	if err := p.precheckAssertion(r); err != nil {
		p.tokenError(w, r, nil, err)
		return
	}
	// The fast path opens no storage transaction and holds no request
	// state.
	if p.clientCredentials(r.Context(), w, r, proof) {
		return
	}
	ctx, rs := withRequestState(r.Context())
	defer func() {
		if err := p.store.finish(ctx, rs); err != nil {
			p.o.Logger.ErrorContext(ctx, "token endpoint: end of storage transaction", "err", err)
		}
	}()
	// The code a code exchange redeems is known to the storage from the
	// start: fosite's PKCE check runs inside NewAccessRequest.
	if r.PostForm.Get("grant_type") == "authorization_code" {
		rs.code = r.PostForm.Get("code")
	}
	sess := newSession()
	ar, err := p.f.NewAccessRequest(ctx, r, sess)
	if err != nil {
		p.tokenError(w, r, ar, err)
		return
	}
	if !ar.GetGrantTypes().ExactOne("authorization_code") {
		rs.code = ""
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		c := p.client(ar)
		for _, s := range ar.GetRequestedScopes() {
			if s == "openid" || s == "offline_access" {
				p.tokenError(w, r, ar, fosite.ErrInvalidScope.WithHintf("Scope %q is not for client_credentials.", s))
				return
			}
			ar.GrantScope(s)
		}
		sess.Subject, sess.ClientID = c.GetID(), c.GetID()
	}
	if err := bindTokens(ar, p.client(ar), proof); err != nil {
		p.tokenError(w, r, ar, err)
		return
	}
	resp, err := p.f.NewAccessResponse(ctx, ar)
	if err != nil {
		p.tokenError(w, r, ar, err)
		return
	}
	if proof != nil {
		resp.SetTokenType("DPoP")
		if n, err := p.dpop.NewNonce(); err == nil {
			w.Header().Set("DPoP-Nonce", n)
		}
	}
	writeAccessResponse(w, resp)
}

func (p *Provider) tokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.CodeField >= 500 {
		p.o.Logger.ErrorContext(r.Context(), "token endpoint", "err", err, "request_id", web.RequestID(r.Context()))
	}
	p.f.WriteAccessError(r.Context(), w, ar, err)
}

// bearer answers a protected-resource error (RFC 6750 §3).
func bearer(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`", error_description="`+strings.ReplaceAll(desc, `"`, "'")+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// handleUserinfo returns the consented claims of an access token
// (OIDC Core §5.3), by GET or POST, with a bearer token (RFC 6750) or a
// DPoP-bound one and its proof (RFC 9449 §7).
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	sess, ar, ok := p.protectedResource(w, r, PathUserinfo)
	if !ok {
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		bearer(w, http.StatusForbidden, "insufficient_scope", "The access token was not issued for OpenID Connect.")
		return
	}
	out := map[string]any{}
	for k, v := range sess.Claims {
		out[k] = v
	}
	out["sub"] = sess.Subject
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// protectedResource authenticates the access token of a request and its
// sender; on failure it has answered.
func (p *Provider) protectedResource(w http.ResponseWriter, r *http.Request, path string) (*Session, fosite.AccessRequester, bool) {
	ctx := r.Context()
	tok, scheme := accessToken(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+p.o.Issuer+`", DPoP algs="`+strings.Join(p.dpop.Algorithms(), " ")+`"`)
		w.WriteHeader(http.StatusUnauthorized)
		return nil, nil, false
	}
	sess := newSession()
	_, ar, err := p.f.IntrospectToken(ctx, tok, fosite.AccessToken, sess)
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			p.o.Logger.ErrorContext(ctx, "protected resource", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return nil, nil, false
		}
		bearer(w, http.StatusUnauthorized, "invalid_token", "The access token is not active.")
		return nil, nil, false
	}
	if err := p.checkSender(r, path, tok, scheme, sess); err != nil {
		p.resourceError(w, r, err)
		return nil, nil, false
	}
	if !certificateBound(r, sess) {
		bearer(w, http.StatusUnauthorized, "invalid_token", "The access token is bound to a client certificate this connection did not present.")
		return nil, nil, false
	}
	return sess, ar, true
}

// handleRevoke is token revocation (RFC 7009). A storage failure answers
// 5xx, never a false 200 (fosite CVE-2020-15223).
func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	err := p.precheckAssertion(r)
	if err == nil {
		err = p.f.NewRevocationRequest(r.Context(), r)
	}
	if err == nil {
		// fosite authenticated the client and found no stored token: a
		// self-contained service token is revoked by recording its jti.
		if rerr := p.revokeServiceToken(r.Context(), r.PostForm.Get("token"), requestClientID(r)); rerr != nil {
			err = fosite.ErrServerError.WithWrap(rerr)
		}
	}
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.CodeField >= 500 {
		p.o.Logger.ErrorContext(r.Context(), "revocation", "err", err)
	}
	p.f.WriteRevocationResponse(r.Context(), w, err)
}

// handleIntrospect is token introspection (RFC 7662), for clients
// registered as resource servers (introspection: true) only. The answer
// carries cnf.jkt for DPoP-bound tokens (RFC 9449 §6.2).
func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, _, ok := r.BasicAuth()
	if !ok {
		_ = r.ParseForm()
		id = r.PostForm.Get("client_id")
	}
	if c, found := p.clients[unescape(id)]; !found || !c.RP.OIDC.Introspection {
		p.f.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithHint("Only registered resource servers may introspect tokens."))
		return
	}
	resp, err := p.f.NewIntrospectionRequest(ctx, r, newSession())
	if errors.Is(err, fosite.ErrInactiveToken) {
		// Not stored: perhaps a self-contained service token.
		out, handled, serr := p.introspectServiceToken(ctx, r.PostForm.Get("token"))
		if serr != nil {
			p.f.WriteIntrospectionError(ctx, w, fosite.ErrServerError.WithWrap(serr))
			return
		}
		if handled {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(out)
			return
		}
	}
	if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
		p.f.WriteIntrospectionError(ctx, w, err)
		return
	}
	out := map[string]any{"active": false}
	if err == nil && resp.IsActive() {
		out = introspection(p.o.Issuer, resp.GetTokenUse(), resp.GetAccessRequester())
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// introspection is the RFC 7662 §2.2 answer for an active token.
func introspection(issuer string, use fosite.TokenUse, ar fosite.AccessRequester) map[string]any {
	out := map[string]any{
		"active": true, "iss": issuer, "client_id": ar.GetClient().GetID(),
		"scope": strings.Join(ar.GetGrantedScopes(), " "), "iat": ar.GetRequestedAt().Unix(),
		"token_type": "Bearer",
	}
	if use == fosite.RefreshToken {
		out["token_type"] = "refresh_token"
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	}
	if s, ok := ar.GetSession().(*Session); ok {
		out["sub"] = s.Subject
		tt := fosite.AccessToken
		if use == fosite.RefreshToken {
			tt = fosite.RefreshToken
		}
		if exp := s.GetExpiresAt(tt); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
		if s.JKT != "" {
			out["cnf"] = map[string]string{"jkt": s.JKT}
			if use != fosite.RefreshToken {
				out["token_type"] = "DPoP"
			}
		}
		if s.X5T != "" && use != fosite.RefreshToken {
			out["cnf"] = s.cnf()
		}
	}
	return out
}

// unescape undoes the form encoding of client_secret_basic (RFC 6749 §2.3.1).
func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
