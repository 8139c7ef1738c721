package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/broker/config"
)

// Client is a registered relying party as fosite sees it.
type Client struct {
	fosite.DefaultOpenIDConnectClient
	RP *config.RelyingParty
}

var (
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ResponseModeClient             = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
)

// GetResponseModes allows query and form_post (OAuth 2.0 Form Post
// Response Mode); fragment is not offered since there is no implicit flow.
func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFormPost}
}

// GetEffectiveLifespan applies the client's configured lifetimes.
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	o := c.RP.OIDC
	var d time.Duration
	switch tt {
	case fosite.AccessToken:
		d = o.AccessTokenLifetime
	case fosite.RefreshToken:
		d = o.RefreshTokenLifetime
	case fosite.IDToken:
		d = o.IDTokenLifetime
	}
	if d > 0 {
		return d
	}
	return fallback
}

// newClient builds the fosite client of a registration. The secret is kept
// only as its SHA-256: configured secrets have at least 32 characters of
// entropy, so a slow password hash would only cost CPU on every request.
func newClient(rp *config.RelyingParty) (*Client, error) {
	o := rp.OIDC
	secret := o.ClientSecret
	if o.ClientSecretFile != "" {
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", rp.ID, err)
		}
		secret = strings.TrimSpace(string(b))
		if len(secret) < config.MinClientSecretLength {
			return nil, fmt.Errorf("client %s: secret in %s is shorter than %d characters", rp.ID, o.ClientSecretFile, config.MinClientSecretLength)
		}
	}
	c := &Client{RP: rp, DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{
			ID:            rp.ID,
			RedirectURIs:  slices.Clone(o.RedirectURIs),
			GrantTypes:    slices.Clone(o.GrantTypes),
			ResponseTypes: []string{"code"},
			Scopes:        slices.Clone(o.Scopes),
			Public:        o.Public,
		},
		TokenEndpointAuthMethod:           o.TokenEndpointAuthMethod,
		TokenEndpointAuthSigningAlgorithm: "RS256",
	}}
	if secret != "" {
		sum := sha256.Sum256([]byte(secret))
		c.Secret = sum[:]
	}
	if o.JWKSFile != "" {
		b, err := os.ReadFile(o.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", rp.ID, err)
		}
		var set josev3.JSONWebKeySet
		if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) == 0 {
			return nil, fmt.Errorf("client %s: %s holds no JSON Web Key Set", rp.ID, o.JWKSFile)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				return nil, fmt.Errorf("client %s: %s holds a private key; give only public keys", rp.ID, o.JWKSFile)
			}
		}
		c.JSONWebKeys = &set
		if alg := set.Keys[0].Algorithm; alg != "" {
			c.TokenEndpointAuthSigningAlgorithm = alg
		}
	}
	return c, nil
}

// sha256Hasher compares a presented secret with the stored SHA-256 in
// constant time.
type sha256Hasher struct{}

var _ fosite.Hasher = sha256Hasher{}

func (sha256Hasher) Compare(_ context.Context, hash, data []byte) error {
	sum := sha256.Sum256(data)
	if len(hash) != len(sum) || subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return errors.New("client secret mismatch")
	}
	return nil
}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return sum[:], nil
}
