// Package oidc is the OpenID Provider: the front door relying parties use
// with OpenID Connect. It is built on github.com/ory/fosite, wired by hand
// with typed handlers (fosite's compose helpers assert storage methods at
// run time and panic at start when one is missing), and stores everything
// through the broker store, so SQLite and PostgreSQL serve it alike.
//
// Only the authorization code flow is offered (no implicit, no hybrid, no
// password grant), with PKCE (S256) required for public clients and by
// default for all clients, refresh-token rotation with reuse detection,
// client_credentials for service clients, userinfo, revocation (RFC 7009),
// introspection (RFC 7662) and discovery.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/par"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/hmac"

	"github.com/trustbroker/trustbroker/adapters/oidc/dpop"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// Protocol is the adapter name in login transactions.
const Protocol = "oidc"

// Endpoint paths.
const (
	PathAuthorize  = "/oauth2/auth"
	PathToken      = "/oauth2/token"
	PathUserinfo   = "/oauth2/userinfo"
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	PathPAR        = "/oauth2/par"
	PathJWKS       = "/jwks.json"
	PathDiscovery  = "/.well-known/openid-configuration"
)

// Default lifetimes (a client may set its own).
const (
	DefaultAccessTokenLifetime  = 10 * time.Minute
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
	DefaultIDTokenLifetime      = 10 * time.Minute
	// AuthorizeCodeLifetime: codes are short-lived (RFC 9700 §4.5).
	AuthorizeCodeLifetime = time.Minute
	parPrefix             = "urn:ietf:params:oauth:request_uri:"
)

// Options wire the OpenID Provider.
type Options struct {
	Issuer  string
	Broker  *broker.Broker
	Store   store.Store
	Keys    *keys.Manager
	UI      *ui.UI
	CSRF    *web.CSRF
	Clients []*config.RelyingParty
	// HMACKey signs opaque tokens (32 bytes, shared by all replicas).
	HMACKey []byte
	// DPoPNonceKey signs DPoP nonces (32 bytes, shared by all replicas).
	DPoPNonceKey []byte
	// DPoPRequireNonce: every DPoP proof must carry a server nonce.
	DPoPRequireNonce bool
	// SAMLLogout, when set, sends the SAML service providers of s, a
	// session an RP-initiated logout has just ended, a LogoutRequest
	// through the browser, which ends at returnURL. It reports false, and
	// writes nothing, when no SAML service provider took part in s.
	SAMLLogout func(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string) bool
	Now        func() time.Time
	Logger     *slog.Logger
}

// Provider is the OpenID Provider.
type Provider struct {
	o       Options
	f       *fosite.Fosite
	cfg     *fosite.Config
	store   *storage
	signer  *keySigner
	dpop    *dpop.Verifier
	clients map[string]*Client
	// tokens generates access tokens (fosite's strategy and the fast
	// client_credentials path use the same).
	tokens *accessTokens
	// noFastPath sends every token request through fosite (tests that
	// compare the two).
	noFastPath bool
	origins    map[string]bool // CORS origins of browser-based clients
	discovery  []byte
	// httpClient delivers back-channel logout tokens.
	httpClient *http.Client
	wg         sync.WaitGroup
}

var _ broker.Adapter = (*Provider)(nil)

// formPostTemplate answers response_mode=form_post without inline script
// (the broker's CSP allows scripts only from itself).
var formPostTemplate = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trustbroker</title>
<script src="/assets/form_post.js" defer></script></head>
<body><form method="post" action="{{ .RedirURL }}">
{{ range $key, $value := .Parameters }}{{ range $parameter := $value }}<input type="hidden" name="{{ $key }}" value="{{ $parameter }}">
{{ end }}{{ end }}<noscript><button type="submit">Continue / Weiter</button></noscript>
</form></body></html>`))

// New builds the provider.
func New(o Options) (*Provider, error) {
	if len(o.HMACKey) < 32 {
		return nil, errors.New("oidc: HMAC key shorter than 32 bytes")
	}
	p := &Provider{o: o, clients: map[string]*Client{}, httpClient: &http.Client{Timeout: 5 * time.Second}}
	for _, rp := range o.Clients {
		if rp.Protocol != "oidc" {
			continue
		}
		c, err := newClient(rp)
		if err != nil {
			return nil, fmt.Errorf("oidc: %w", err)
		}
		p.clients[rp.ID] = c
	}
	p.origins = corsOrigins(p.clients)
	p.store = &storage{st: o.Store, clients: p.clients, now: o.Now, fallbackTTL: DefaultRefreshTokenLifetime}
	p.signer = &keySigner{keys: o.Keys, defaultAlg: keys.RS256}
	v, err := dpop.NewVerifier(dpop.Options{Now: o.Now, Replay: o.Store.Replay(), NonceKey: o.DPoPNonceKey, RequireNonce: o.DPoPRequireNonce})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	p.dpop = v
	p.cfg = &fosite.Config{
		AccessTokenLifespan:             DefaultAccessTokenLifetime,
		RefreshTokenLifespan:            DefaultRefreshTokenLifetime,
		AuthorizeCodeLifespan:           AuthorizeCodeLifetime,
		IDTokenLifespan:                 DefaultIDTokenLifetime,
		PushedAuthorizeContextLifespan:  time.Minute,
		IDTokenIssuer:                   o.Issuer,
		AccessTokenIssuer:               o.Issuer,
		TokenURL:                        o.Issuer + PathToken,
		GlobalSecret:                    o.HMACKey,
		ClientSecretsHasher:             sha256Hasher{},
		ScopeStrategy:                   fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:        fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients:     true,
		EnablePKCEPlainChallengeMethod:  false,
		MinParameterEntropy:             fosite.MinParameterEntropy,
		RefreshTokenScopes:              []string{"offline_access"},
		PushedAuthorizeRequestURIPrefix: parPrefix,
		FormPostHTMLTemplate:            formPostTemplate,
		TokenEntropy:                    32,
		SendDebugMessagesToClients:      false,
		RedirectSecureChecker: func(_ context.Context, u *url.URL) bool {
			return config.CheckRedirectURI(u.String()) == nil
		},
	}
	p.wire()
	p.f = &fosite.Fosite{Store: p.store, Config: p.cfg}
	d, err := p.buildDiscovery()
	if err != nil {
		return nil, err
	}
	p.discovery = d
	return p, nil
}

// wire builds fosite's handlers with typed values: the compiler checks that
// the storage has every method each handler uses.
func (p *Provider) wire() {
	cfg := p.cfg
	hmacStrategy := &orderedHMAC{inner: oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: cfg}, cfg), now: p.o.Now}
	p.store.codeSig = hmacStrategy.AuthorizeCodeSignature
	at := &accessTokens{hmac: hmacStrategy, signer: p.signer, keys: p.o.Keys, issuer: p.o.Issuer, now: p.o.Now}
	p.tokens = at
	idStrategy := &openid.DefaultStrategy{Signer: p.signer, Config: cfg}
	validator := openid.NewOpenIDConnectRequestValidator(p.signer, cfg)
	idHelper := &openid.IDTokenHandleHelper{IDTokenStrategy: idStrategy}

	authCode := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy: at, RefreshTokenStrategy: hmacStrategy, AuthorizeCodeStrategy: hmacStrategy,
		CoreStorage: p.store, TokenRevocationStorage: p.store, Config: cfg,
	}
	oidcExplicit := &openid.OpenIDConnectExplicitHandler{
		IDTokenHandleHelper: idHelper, OpenIDConnectRequestStorage: p.store,
		OpenIDConnectRequestValidator: validator, Config: cfg,
	}
	pkceHandler := &pkce.Handler{AuthorizeCodeStrategy: hmacStrategy, Storage: p.store, Config: cfg}
	refresh := &oauth2.RefreshTokenGrantHandler{
		AccessTokenStrategy: at, RefreshTokenStrategy: hmacStrategy,
		TokenRevocationStorage: p.store, Config: cfg,
	}
	oidcRefresh := &openid.OpenIDConnectRefreshHandler{IDTokenHandleHelper: idHelper, Config: cfg}
	clientCreds := &oauth2.ClientCredentialsGrantHandler{
		HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: at, AccessTokenStorage: p.store, Config: cfg},
		Config:       cfg,
	}
	core := struct {
		oauth2.AccessTokenStrategy
		oauth2.RefreshTokenStrategy
		oauth2.AuthorizeCodeStrategy
	}{at, hmacStrategy, hmacStrategy}
	introspector := &oauth2.CoreValidator{CoreStrategy: core, CoreStorage: p.store, Config: cfg}
	revocation := &oauth2.TokenRevocationHandler{
		TokenRevocationStorage: p.store, AccessTokenStrategy: at, RefreshTokenStrategy: hmacStrategy,
	}
	parHandler := &par.PushedAuthorizeHandler{Storage: p.store, Config: cfg}

	cfg.AuthorizeEndpointHandlers = fosite.AuthorizeEndpointHandlers{authCode, oidcExplicit, pkceHandler}
	cfg.TokenEndpointHandlers = gate(authCode, oidcExplicit, pkceHandler, refresh, oidcRefresh, clientCreds)
	cfg.TokenIntrospectionHandlers = fosite.TokenIntrospectionHandlers{introspector}
	cfg.RevocationHandlers = fosite.RevocationHandlers{revocation}
	cfg.PushedAuthorizeEndpointHandlers = fosite.PushedAuthorizeEndpointHandlers{parHandler}
}

// Protocol implements broker.Adapter.
func (p *Provider) Protocol() string { return Protocol }

// Routes adds the endpoints to mux.
func (p *Provider) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathAuthorize, p.handleAuthorize)
	mux.HandleFunc("POST "+PathAuthorize, p.handleAuthorize)
	token := p.cors("POST", p.handleToken)
	userinfo := p.cors("GET, POST", p.handleUserinfo)
	revoke := p.cors("POST", p.handleRevoke)
	mux.HandleFunc("POST "+PathToken, token)
	mux.HandleFunc("OPTIONS "+PathToken, token)
	mux.HandleFunc("GET "+PathUserinfo, userinfo)
	mux.HandleFunc("POST "+PathUserinfo, userinfo)
	mux.HandleFunc("OPTIONS "+PathUserinfo, userinfo)
	mux.HandleFunc("POST "+PathRevoke, revoke)
	mux.HandleFunc("OPTIONS "+PathRevoke, revoke)
	mux.HandleFunc("POST "+PathIntrospect, p.handleIntrospect)
	mux.HandleFunc("POST "+PathPAR, p.handlePAR)
	mux.HandleFunc("GET "+PathDiscovery, p.handleDiscovery)
	mux.HandleFunc("GET "+PathLogout, p.handleLogout)
	mux.HandleFunc("POST "+PathLogout, p.handleLogout)
	mux.HandleFunc("GET "+PathFrontchannelLogout, p.handleFrontchannel)
	mux.HandleFunc("GET "+PathLogoutDone, p.handleLogoutDone)
}

// CrossOriginBypass lists the endpoints that legitimately take
// cross-origin POSTs (relying parties' servers and browser apps); none of
// them acts on the broker's cookies alone.
func CrossOriginBypass() []string {
	return []string{"POST " + PathAuthorize, "POST " + PathToken, "POST " + PathUserinfo,
		"POST " + PathRevoke, "POST " + PathIntrospect, "POST " + PathPAR}
}

func (p *Provider) client(ar fosite.Requester) *Client {
	c, _ := ar.GetClient().(*Client)
	return c
}
