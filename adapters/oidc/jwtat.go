package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/trustbroker/trustbroker/broker/keys"
)

// accessTokens issues opaque (HMAC) access tokens by default and JWT
// access tokens (RFC 9068) to clients registered with
// access_token_format: jwt. Both kinds are stored by signature, so
// revocation and introspection treat them alike.
type accessTokens struct {
	hmac   *orderedHMAC
	signer *keySigner
	keys   *keys.Manager
	issuer string
	now    func() time.Time
	// hdr caches the encoded JOSE header of the active ES256 key.
	hdr atomic.Pointer[encodedHeader]
}

var _ oauth2.AccessTokenStrategy = (*accessTokens)(nil)

// isJWT tells a compact JWS (two dots) from an HMAC token (one dot).
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

func (a *accessTokens) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return signaturePart(token)
	}
	return a.hmac.AccessTokenSignature(ctx, token)
}

func (a *accessTokens) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	c, ok := req.GetClient().(*Client)
	if !ok || c.RP.OIDC.AccessTokenFormat != "jwt" {
		return a.hmac.GenerateAccessToken(ctx, req)
	}
	return a.generateJWT(ctx, req, c)
}

// generateJWT builds an RFC 9068 access token (typ at+jwt, ES256).
func (a *accessTokens) generateJWT(ctx context.Context, req fosite.Requester, c *Client) (string, string, error) {
	s, _ := req.GetSession().(*Session)
	if s == nil {
		return "", "", errors.New("oidc: no session for the access token")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", "", err
	}
	now := a.now().UTC()
	exp := s.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(DefaultAccessTokenLifetime)
	}
	aud := []string(req.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{c.GetID()}
	}
	claims := atClaims{
		Issuer: a.issuer, Subject: s.Subject, Audience: aud, ClientID: c.GetID(),
		IssuedAt: now.Unix(), Expiry: exp.Unix(), JTI: base64.RawURLEncoding.EncodeToString(jti[:]),
		Scope: strings.Join(req.GetGrantedScopes(), " "),
	}
	if idc := s.DefaultSession.Claims; idc != nil && !idc.AuthTime.IsZero() {
		at := idc.AuthTime.Unix()
		claims.AuthTime = &at
		claims.ACR = idc.AuthenticationContextClassReference
		claims.AMR = idc.AuthenticationMethodsReferences
	}
	if s.JKT != "" || s.X5T != "" {
		claims.Cnf = s.cnf()
	}
	raw, err := a.sign(&claims)
	if err != nil {
		return "", "", err
	}
	return raw, signaturePart(raw), nil
}

// serviceJWT is the token generateJWT gives a client_credentials request
// of c that was granted scope (space-separated) and no audience, expiring
// at exp, built without a fosite request (ccfast.go).
func (a *accessTokens) serviceJWT(c *Client, scope string, exp time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	id := c.GetID()
	claims := atClaims{
		Issuer: a.issuer, Subject: id, Audience: []string{id}, ClientID: id,
		IssuedAt: a.now().UTC().Unix(), Expiry: exp.Unix(), JTI: base64.RawURLEncoding.EncodeToString(jti[:]),
		Scope: scope,
	}
	return a.sign(&claims)
}

// sign signs access token claims with the active ES256 key.
func (a *accessTokens) sign(claims *atClaims) (string, error) {
	sg, err := a.keys.Signer(keys.ES256)
	if err != nil {
		return "", err
	}
	raw, err := signEncoded(sg, a.header(sg), claims)
	if err != nil {
		return "", fmt.Errorf("oidc: sign: %w", err)
	}
	return raw, nil
}

// encodedHeader is the base64url JOSE header of the access tokens one key
// signs.
type encodedHeader struct{ kid, alg, b64 string }

// header returns the encoded header {"alg","kid","typ":"at+jwt"} of sg,
// built once per key (it changes only on rotation): the same bytes
// json.Marshal gives for the map, without marshalling it per token.
func (a *accessTokens) header(sg *keys.Signer) string {
	if h := a.hdr.Load(); h != nil && h.kid == sg.KID && h.alg == sg.Alg {
		return h.b64
	}
	hb, _ := json.Marshal(map[string]any{"alg": sg.Alg, "kid": sg.KID, "typ": "at+jwt"}) // strings only: cannot fail
	h := &encodedHeader{kid: sg.KID, alg: sg.Alg, b64: base64.RawURLEncoding.EncodeToString(hb)}
	a.hdr.Store(h)
	return h.b64
}

// atClaims are the claims of a JWT access token (RFC 9068 §2.2), encoded
// from a struct rather than a map (no reflection over map keys, no
// sorting).
type atClaims struct {
	Issuer   string            `json:"iss"`
	Subject  string            `json:"sub"`
	Audience []string          `json:"aud"`
	ClientID string            `json:"client_id"`
	IssuedAt int64             `json:"iat"`
	Expiry   int64             `json:"exp"`
	JTI      string            `json:"jti"`
	Scope    string            `json:"scope,omitempty"`
	AuthTime *int64            `json:"auth_time,omitempty"`
	ACR      string            `json:"acr,omitempty"`
	AMR      []string          `json:"amr,omitempty"`
	Cnf      map[string]string `json:"cnf,omitempty"`
}

func (a *accessTokens) ValidateAccessToken(ctx context.Context, req fosite.Requester, token string) error {
	if !isJWT(token) {
		return a.hmac.ValidateAccessToken(ctx, req, token)
	}
	tok, err := a.signer.Decode(ctx, token)
	if err != nil {
		var ve *jwt.ValidationError
		if errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired) {
			return fosite.ErrTokenExpired.WithWrap(err)
		}
		return fosite.ErrTokenSignatureMismatch.WithWrap(err)
	}
	if typ, _ := tok.Header["typ"].(string); typ != "at+jwt" {
		return fosite.ErrTokenSignatureMismatch.WithHint("Not an access token.")
	}
	return nil
}
