package oidc

import (
	"context"
	"errors"

	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/broker/loa"
)

// TokenInfo is what an active access token stands for, for the broker's
// own resource servers (the forward-auth gate).
type TokenInfo struct {
	AccountID      string
	ClientID       string
	LoA            loa.Level
	CredentialKind string
	AMR            []string
	// Claims are the consented claims released with the token.
	Claims map[string]any
}

// ErrTokenNotUsable: the token is not active, or it is DPoP-bound, whose
// proof a reverse proxy in front of the gate cannot pass on.
var ErrTokenNotUsable = errors.New("oidc: access token not active or not usable as a bearer token")

// AccessTokenInfo checks an access token as a bearer token.
func (p *Provider) AccessTokenInfo(ctx context.Context, token string) (*TokenInfo, error) {
	sess := newSession()
	_, ar, err := p.f.IntrospectToken(ctx, token, fosite.AccessToken, sess)
	if err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			return nil, err
		}
		return nil, ErrTokenNotUsable
	}
	if sess.JKT != "" || sess.X5T != "" || sess.AccountID == "" {
		// DPoP- or certificate-bound, or a client_credentials token that
		// stands for no user.
		return nil, ErrTokenNotUsable
	}
	info := &TokenInfo{AccountID: sess.AccountID, ClientID: ar.GetClient().GetID(), CredentialKind: sess.CredentialKind, Claims: sess.Claims}
	if c := sess.DefaultSession.Claims; c != nil {
		info.LoA, _ = loa.Parse(c.AuthenticationContextClassReference)
		info.AMR = c.AuthenticationMethodsReferences
	}
	return info, nil
}
