package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Service tokens: a JWT access token (RFC 9068) issued by
// client_credentials stands for no user and carries everything a resource
// server needs, so it is not stored — issuing one costs a signature, not a
// database write. Revoking one records its jti until it would have expired
// (kind tokenRevokedJWT); introspection verifies the signature and checks
// that record. Tokens issued to users are stored as always (they carry the
// session with the consented claims).

// tokenRevokedJWT is the store kind of revoked self-contained tokens,
// keyed by jti.
const tokenRevokedJWT = "revoked_jwt_at"

// selfContained reports whether the access token of req is not stored: a
// JWT-format client's token that stands for the client itself. (fosite
// hands storage a sanitised request without its grant type; the session
// tells: client_credentials sessions have no account.)
func selfContained(req fosite.Requester) bool {
	c, ok := req.GetClient().(*Client)
	if !ok || c.RP.OIDC.AccessTokenFormat != "jwt" {
		return false
	}
	s, ok := req.GetSession().(*Session)
	return ok && s.AccountID == "" && s.Subject == c.GetID()
}

// serviceToken verifies a self-contained access token and returns its
// claims; ok is false for anything else (opaque, user tokens, bad
// signatures, expired).
func (p *Provider) serviceToken(ctx context.Context, token string) (jwt.MapClaims, bool) {
	if !isJWT(token) {
		return nil, false
	}
	tok, err := p.signer.Decode(ctx, token)
	if err != nil {
		return nil, false
	}
	if typ, _ := tok.Header["typ"].(string); typ != "at+jwt" {
		return nil, false
	}
	c := tok.Claims
	if _, user := c["auth_time"]; user || c["sub"] != c["client_id"] {
		return nil, false
	}
	return c, true
}

// revoked reports whether a self-contained token was revoked.
func (p *Provider) revoked(ctx context.Context, jti string) (bool, error) {
	_, err := p.o.Store.OAuth().GetToken(ctx, tokenRevokedJWT, jti)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// introspectServiceToken answers introspection of a self-contained token;
// handled is false when the token is not one.
func (p *Provider) introspectServiceToken(ctx context.Context, token string) (map[string]any, bool, error) {
	c, ok := p.serviceToken(ctx, token)
	if !ok {
		return nil, false, nil
	}
	jti, _ := c["jti"].(string)
	rev, err := p.revoked(ctx, jti)
	if err != nil {
		return nil, true, err
	}
	if rev {
		return map[string]any{"active": false}, true, nil
	}
	out := map[string]any{"active": true, "iss": c["iss"], "client_id": c["client_id"], "sub": c["sub"],
		"exp": c["exp"], "iat": c["iat"], "jti": jti, "token_type": "Bearer"}
	if s, ok := c["scope"]; ok {
		out["scope"] = s
	}
	if aud, ok := c["aud"]; ok {
		out["aud"] = aud
	}
	if cnf, ok := c["cnf"]; ok {
		out["cnf"], out["token_type"] = cnf, "DPoP"
	}
	return out, true, nil
}

// revokeServiceToken records the revocation of a self-contained token
// issued to clientID (RFC 7009 §2.1: only the client it was issued to may
// revoke it). Other tokens are not its business.
func (p *Provider) revokeServiceToken(ctx context.Context, token, clientID string) error {
	c, ok := p.serviceToken(ctx, token)
	if !ok || c["client_id"] != clientID {
		return nil
	}
	jti, _ := c["jti"].(string)
	exp, ok := numericClaim(c["exp"])
	if !ok {
		return errors.New("oidc: service token without exp")
	}
	err := p.o.Store.OAuth().CreateToken(ctx, &store.OAuthToken{
		Kind: tokenRevokedJWT, Signature: jti, RequestID: jti, ClientID: clientID, Subject: clientID,
		Active: true, RequestedAt: p.o.Now(), ExpiresAt: time.Unix(exp, 0).Add(time.Minute),
	})
	if errors.Is(err, store.ErrConflict) {
		return nil // revoked before
	}
	return err
}

// requestClientID is the client id a request authenticates with (basic
// auth or the form); meaningful only after fosite authenticated it.
func requestClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		return unescape(id)
	}
	return r.PostForm.Get("client_id")
}

// numericClaim reads a NumericDate claim as decoded by the JWT library
// (float64 or json.Number).
func numericClaim(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			return int64(f), ferr == nil
		}
		return i, true
	}
	return 0, false
}
