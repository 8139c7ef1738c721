package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
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
	hmac   *oauth2.HMACSHAStrategy
	signer *keySigner
	keys   *keys.Manager
	issuer string
	now    func() time.Time
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
	claims := jwt.MapClaims{
		"iss": a.issuer, "sub": s.Subject, "aud": aud, "client_id": c.GetID(),
		"iat": now.Unix(), "exp": exp.Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	if scopes := req.GetGrantedScopes(); len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if idc := s.DefaultSession.Claims; idc != nil && !idc.AuthTime.IsZero() {
		claims["auth_time"] = idc.AuthTime.Unix()
		if idc.AuthenticationContextClassReference != "" {
			claims["acr"] = idc.AuthenticationContextClassReference
		}
		if len(idc.AuthenticationMethodsReferences) > 0 {
			claims["amr"] = idc.AuthenticationMethodsReferences
		}
	}
	if s.JKT != "" || s.X5T != "" {
		claims["cnf"] = s.cnf()
	}
	sg, err := a.keys.Signer(keys.ES256)
	if err != nil {
		return "", "", err
	}
	return a.signer.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"kid": sg.KID, "typ": "at+jwt"}})
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
