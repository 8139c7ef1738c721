package oidc

import (
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what the OpenID Provider keeps with every code and token: the
// ID token claims, and what the broker decided (account, SSO session, the
// consented claims). Only consented claims are in it, so whatever reads a
// token's session can release nothing else.
type Session struct {
	*openid.DefaultSession
	// AccountID is the broker account (never shown to RPs).
	AccountID string `json:"account_id,omitempty"`
	// SSOSession is the broker's SSO session id, for logout.
	SSOSession string `json:"sso_session,omitempty"`
	// Claims are the consented end-user claims.
	Claims map[string]any `json:"claims,omitempty"`
	// ClientID that the tokens were issued to.
	ClientID string `json:"client_id,omitempty"`
	// JKT is the DPoP key thumbprint the tokens are bound to (RFC 9449).
	JKT string `json:"jkt,omitempty"`
	// X5T is the SHA-256 thumbprint of the card certificate the tokens
	// are bound to (RFC 8705 cnf.x5t#S256).
	X5T string `json:"x5t_s256,omitempty"`
	// CredentialKind is the kind of credential the user logged in with.
	CredentialKind string `json:"credential_kind,omitempty"`
}

var _ openid.Session = (*Session)(nil)

// newSession returns an empty session ready to be filled or unmarshalled.
func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{
		Claims:    &jwt.IDTokenClaims{Extra: map[string]any{}},
		Headers:   &jwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}}
}

// Clone deep-copies the session (fosite clones before refresh).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	if s.Claims != nil {
		c.Claims = make(map[string]any, len(s.Claims))
		for k, v := range s.Claims {
			c.Claims[k] = v
		}
	}
	return &c
}

// MarshalJSON is the default encoding, except that a session without ID
// token claims and headers (a client_credentials session) leaves them out
// instead of writing every claim's zero value: a third of the row fewer
// to write, and four time values fewer to parse on each introspection.
// Decoding into a fresh session (newSession) gives the same session either
// way: what is left out is exactly what newSession holds.
func (s *Session) MarshalJSON() ([]byte, error) {
	return gojson.Marshal(s.encodable())
}

// plainSession is Session without its MarshalJSON method: the default
// encoding.
type plainSession Session

// compactSession leaves out empty ID token claims and headers.
type compactSession struct {
	*plainSession
	// Shadow the DefaultSession fields of the same JSON names.
	IDTokenClaims *jwt.IDTokenClaims `json:"id_token_claims,omitempty"`
	Headers       *jwt.Headers       `json:"headers,omitempty"`
}

// encodable is the value whose encoding MarshalJSON returns. The storage
// encodes it in place of the session: the encoder then runs no
// MarshalJSON method and need not validate and copy its output.
func (s *Session) encodable() any {
	if s.DefaultSession == nil || !emptyIDToken(s.DefaultSession) {
		return (*plainSession)(s)
	}
	return compactSession{plainSession: (*plainSession)(s)}
}

// emptyIDToken reports whether the ID token claims and headers are what
// newSession holds: every claim its zero value (times the zero instant in
// UTC, lists nil), no extra claim, no extra header.
func emptyIDToken(ds *openid.DefaultSession) bool {
	c, h := ds.Claims, ds.Headers
	if c == nil || h == nil || len(h.Extra) != 0 || len(c.Extra) != 0 || c.Extra == nil || h.Extra == nil {
		return false
	}
	zeroTime := func(t time.Time) bool { return t.IsZero() && t.Location() == time.UTC }
	return c.JTI == "" && c.Issuer == "" && c.Subject == "" && c.Audience == nil && c.Nonce == "" &&
		zeroTime(c.ExpiresAt) && zeroTime(c.IssuedAt) && zeroTime(c.RequestedAt) && zeroTime(c.AuthTime) &&
		c.AccessTokenHash == "" && c.AuthenticationContextClassReference == "" &&
		c.AuthenticationMethodsReferences == nil && c.CodeHash == ""
}
