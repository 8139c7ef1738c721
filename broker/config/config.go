// Package config is the typed YAML schema of the broker, its defaults, the
// overlay of TRUSTBROKER_* environment variables and command-line flags,
// and validation that reports every error at once with its key path.
//
// Precedence, highest first: flags, environment, the YAML file, defaults.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

// Config is the whole configuration.
type Config struct {
	// Demo marks a demo configuration: every page says so.
	Demo           bool           `yaml:"demo"`
	Server         Server         `yaml:"server"`
	Log            Log            `yaml:"log"`
	Database       Database       `yaml:"database"`
	Keys           Keys           `yaml:"keys"`
	Session        Session        `yaml:"session"`
	Providers      []Provider     `yaml:"providers"`
	RelyingParties []RelyingParty `yaml:"relying_parties"`
	Policy         Policy         `yaml:"policy"`
	Consent        Consent        `yaml:"consent"`
	Gate           Gate           `yaml:"gate"`
	OIDC           OIDCProvider   `yaml:"oidc"`
}

// OIDCProvider holds settings of the OpenID Provider as a whole (the
// clients' own settings are under relying_parties[].oidc).
type OIDCProvider struct {
	// DPoPRequireNonce makes every DPoP proof carry a server nonce
	// (RFC 9449 §8): a proof without one is answered use_dpop_nonce with
	// a fresh nonce in the DPoP-Nonce header.
	DPoPRequireNonce bool `yaml:"dpop_require_nonce"`
}

// Server is the HTTP listener.
type Server struct {
	Listen string `yaml:"listen"`
	// Issuer is the public base URL (OIDC issuer, SAML entity base).
	Issuer            string        `yaml:"issuer"`
	TLS               TLS           `yaml:"tls"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CardLogin is where card certificates arrive.
	CardLogin CardLogin `yaml:"card_login"`
	// Management is the operators' listener: metrics and the readiness
	// report with every check, which the public listener does not show.
	Management Management `yaml:"management"`
}

// Management configures the management listener (plain HTTP): GET
// /metrics, /healthz and /readyz with ?verbose. Metrics and the names and
// states of relying parties and providers are operational details, so the
// listener is apart from the public one and, by default, reachable from
// this host only.
type Management struct {
	// Listen is host:port, or ManagementOff for no management listener.
	// Default localhost:9464; ":9464" opens it to a Prometheus in the
	// cluster.
	Listen string `yaml:"listen"`
}

// ManagementOff as server.management.listen serves no management
// listener: no metrics anywhere, readiness in the terse public form only.
// A word rather than "": an empty value would be easy to set by accident
// (an empty YAML value) and could not be told from an unset variable.
const ManagementOff = "off"

// Enabled reports whether the management listener is served.
func (m Management) Enabled() bool { return m.Listen != ManagementOff }

// CardLogin configures the two ways a card's client certificate reaches
// the broker: a dedicated TLS listener that requests it, and a header set
// by a reverse proxy that terminated TLS.
type CardLogin struct {
	// Listen (host:port) starts a TLS listener, with CertFile and KeyFile,
	// that requests a client certificate; URL is its public base URL on
	// the issuer's host (another port), so the login cookies reach it.
	Listen   string `yaml:"listen"`
	URL      string `yaml:"url"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Header carries the URL-escaped PEM certificate (nginx
	// $ssl_client_escaped_cert), believed only from Proxies (CIDRs).
	Header  string   `yaml:"header"`
	Proxies []string `yaml:"proxies"`
}

// TLS enables HTTPS on the listener.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// Database selects the store.
type Database struct {
	// DSN: "sqlite:PATH" (embedded default) or "postgres://...".
	DSN          string        `yaml:"dsn"`
	AutoMigrate  bool          `yaml:"auto_migrate"`
	GCInterval   time.Duration `yaml:"gc_interval"`
	MaxOpenConns int           `yaml:"max_open_conns"`
}

// Keys configures signing keys.
type Keys struct {
	// MasterKeyFile holds the key that encrypts private keys at rest;
	// TRUSTBROKER_MASTER_KEY may hold the key itself instead.
	MasterKeyFile  string        `yaml:"master_key_file"`
	Algorithms     []string      `yaml:"algorithms"`
	RSABits        int           `yaml:"rsa_bits"`
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// MaxTokenLifetime is how long a retired key stays in the JWKS.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// MasterKey is set from the environment only, never from YAML.
	MasterKey string `yaml:"-"`
}

// Session configures the browser SSO session and login transactions.
type Session struct {
	CookieName   string        `yaml:"cookie_name"`
	Lifetime     time.Duration `yaml:"lifetime"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	LoginTimeout time.Duration `yaml:"login_timeout"`
}

// Text is a text in German and English, keyed "de" and "en".
type Text map[string]string

// Get returns the text in lang, falling back to the other language.
func (t Text) Get(lang string) string {
	if s := t[lang]; s != "" {
		return s
	}
	if s := t["en"]; s != "" {
		return s
	}
	return t["de"]
}

// Provider is a `{type, config}` block with an id and display name.
type Provider struct {
	ID     string    `yaml:"id"`
	Type   string    `yaml:"type"`
	Name   Text      `yaml:"name"`
	Config yaml.Node `yaml:"config"`
}

// RelyingParty is a relying-party registration.
type RelyingParty struct {
	ID       string `yaml:"id"`
	Name     Text   `yaml:"name"`
	Protocol string `yaml:"protocol"` // oidc or saml
	// AcceptedCredentials are the credential kinds offered on the login page.
	AcceptedCredentials []string `yaml:"accepted_credentials"`
	MinLoA              string   `yaml:"min_loa"`
	Claims              []Claim  `yaml:"claims"`
	SubjectType         string   `yaml:"subject_type"` // pairwise (default) or public
	// SelfRegistration lets a user without an account create one with a
	// credential alone (a passkey on the WebAuthn ceremony page), at
	// level low; needs min_loa: low.
	SelfRegistration bool  `yaml:"self_registration"`
	OIDC             *OIDC `yaml:"oidc"`
	SAML             *SAML `yaml:"saml"`
}

// Claim is an attribute the relying party asks for, with its purpose.
type Claim struct {
	Name     string `yaml:"name"`
	Purpose  Text   `yaml:"purpose"`
	Required bool   `yaml:"required"`
	// LegalBasis under GDPR Art. 6(1): consent (the default; the user is
	// asked), contract or legal_obligation (shown as information only).
	LegalBasis string `yaml:"legal_basis"`
}

// Legal bases of a claim (GDPR Art. 6(1) a, b, c).
const (
	BasisConsent         = "consent"
	BasisContract        = "contract"
	BasisLegalObligation = "legal_obligation"
)

// Basis is the claim's legal basis, consent when not set.
func (c Claim) Basis() string {
	if c.LegalBasis == "" {
		return BasisConsent
	}
	return c.LegalBasis
}

// OIDC is the OpenID Connect client part of a registration.
type OIDC struct {
	RedirectURIs           []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	// SectorIdentifierURI (OIDC Core §8.1, Dynamic Client Registration
	// §2): its host is the sector of the client's pairwise subjects, so
	// clients of one sector see the same sub. At start the broker fetches
	// it (https, or http on loopback) and refuses to start unless the JSON
	// array there lists every redirect URI of the client. Without it the
	// sector is the one host of redirect_uris.
	SectorIdentifierURI string `yaml:"sector_identifier_uri"`
	// SectorIdentifierCAFile (PEM) holds the CA certificates that alone are
	// trusted for the TLS connection to SectorIdentifierURI (a private
	// PKI); empty: the system roots.
	SectorIdentifierCAFile string `yaml:"sector_identifier_ca_file"`
	// Public clients (no secret) must use PKCE.
	Public           bool   `yaml:"public"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// TokenEndpointAuthMethod: client_secret_basic (default for
	// confidential clients), client_secret_post, private_key_jwt; "none"
	// for public clients.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
	// JWKSFile holds the client's public keys for private_key_jwt.
	JWKSFile string `yaml:"jwks_file"`
	// GrantTypes: authorization_code (default), refresh_token,
	// client_credentials.
	GrantTypes []string `yaml:"grant_types"`
	// Scopes the client may request; default openid profile email address
	// phone offline_access.
	Scopes []string `yaml:"scopes"`
	// IDTokenSignedResponseAlg: RS256 (default, OIDC Core §2) or ES256.
	IDTokenSignedResponseAlg string `yaml:"id_token_signed_response_alg"`
	// AccessTokenFormat: opaque (default) or jwt (RFC 9068).
	AccessTokenFormat string `yaml:"access_token_format"`
	// RequirePKCE: on by default; a confidential legacy client may turn it
	// off. Public clients always need PKCE.
	RequirePKCE *bool `yaml:"require_pkce"`
	// RequirePAR: authorization requests must be pushed (RFC 9126).
	RequirePAR bool `yaml:"require_par"`
	// RequireDPoP: tokens must be DPoP-bound (RFC 9449).
	RequireDPoP bool `yaml:"require_dpop"`
	// TLSClientCertificateBoundAccessTokens (RFC 8705 §3.4): the access
	// tokens of a card login over the card-login TLS listener are bound to
	// the card's certificate (cnf.x5t#S256), which userinfo then requires
	// on its TLS connection.
	TLSClientCertificateBoundAccessTokens bool `yaml:"tls_client_certificate_bound_access_tokens"`
	// Introspection lets this client introspect tokens (a resource server).
	Introspection bool `yaml:"introspection"`
	// BackchannelLogoutURI receives logout tokens (OIDC Back-Channel Logout).
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri"`
	// FrontchannelLogoutURI is rendered in a hidden iframe of the broker's
	// logout page when a session of this client ends in the browser (OIDC
	// Front-Channel Logout 1.0 §2): absolute, https (http only on
	// loopback), no fragment, and on the scheme, host and port of one of
	// the redirect_uris.
	FrontchannelLogoutURI string `yaml:"frontchannel_logout_uri"`
	// FrontchannelLogoutSessionRequired: iss and sid are appended to
	// FrontchannelLogoutURI (Front-Channel Logout §2).
	FrontchannelLogoutSessionRequired bool `yaml:"frontchannel_logout_session_required"`
	// Lifetimes; zero takes the defaults (access 10m, refresh 720h, id 10m).
	AccessTokenLifetime  time.Duration `yaml:"access_token_lifetime"`
	RefreshTokenLifetime time.Duration `yaml:"refresh_token_lifetime"`
	IDTokenLifetime      time.Duration `yaml:"id_token_lifetime"`
}

// SectorHost is the sector identifier of an OIDC client's pairwise
// subjects (OIDC Core §8.1): the host of SectorIdentifierURI when set,
// else the host of the redirect URIs when they all share one; false when
// neither gives one host (a configuration error for pairwise clients).
// Hosts are compared in lower case and without the port. SAML service
// providers and gate services have no sector in their protocols: each is
// a sector of its own (broker.Subject uses their id).
func (o *OIDC) SectorHost() (string, bool) {
	if o.SectorIdentifierURI != "" {
		h := uriHost(o.SectorIdentifierURI)
		return h, h != ""
	}
	hosts := o.redirectHosts()
	if len(hosts) != 1 || hosts[0] == "" {
		return "", false
	}
	return hosts[0], true
}

// redirectHosts lists the distinct hosts of the redirect URIs in order.
func (o *OIDC) redirectHosts() []string {
	var hosts []string
	for _, u := range o.RedirectURIs {
		if h := uriHost(u); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func uriHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// PKCERequired reports whether the client must use PKCE.
func (o *OIDC) PKCERequired() bool {
	return o.Public || o.RequirePKCE == nil || *o.RequirePKCE
}

// SAML is the SAML service-provider part of a registration.
type SAML struct {
	EntityID     string   `yaml:"entity_id"`
	ACSURLs      []string `yaml:"acs_urls"`
	MetadataFile string   `yaml:"metadata_file"`
	// NameIDFormats the service provider may receive: persistent (the
	// pairwise subject, the default), transient, email (only when the
	// email attribute is released). The first answers requests that name
	// no format.
	NameIDFormats []string `yaml:"name_id_formats"`
	// RequireSignedRequests refuses unsigned AuthnRequests even when the
	// metadata does not say AuthnRequestsSigned; needs metadata_file or
	// metadata_url (the signing certificate).
	RequireSignedRequests bool `yaml:"require_signed_requests"`
	// MetadataURL: the SP's metadata is fetched from here (https, or http
	// on loopback), its signature checked against MetadataCertFile (PEM),
	// and refreshed every MetadataRefresh (default 1h), sooner when its
	// cacheDuration or validUntil say so.
	MetadataURL      string        `yaml:"metadata_url"`
	MetadataCertFile string        `yaml:"metadata_cert_file"`
	MetadataRefresh  time.Duration `yaml:"metadata_refresh"`
	// IDPInitiated allows IdP-initiated login (an unsolicited Response at
	// the SP's default ACS, started at /saml/idp-initiated?sp=…); off by
	// default, as the SP then cannot tie the Response to a request.
	IDPInitiated bool `yaml:"idp_initiated"`
}

// SAML NameID formats (short names of name_id_formats).
const (
	NameIDPersistent = "persistent"
	NameIDTransient  = "transient"
	NameIDEmail      = "email"
)

// Policy holds the context the decision point evaluates.
type Policy struct {
	// TimeZone in which time-of-day conditions are read.
	TimeZone string `yaml:"time_zone"`
	// Networks are named network zones.
	Networks []Network `yaml:"networks"`
	// The decision point and its rules: see policy.go beside this file.
	Engine          string           `yaml:"engine"`
	Sites           []Network        `yaml:"sites"`
	GeoIPFile       string           `yaml:"geoip_file"`
	Roles           []RoleMapping    `yaml:"roles"`
	RoleAssignments []RoleAssignment `yaml:"role_assignments"`
	Rules           []PolicyRule     `yaml:"rules"`
	ReloadInterval  time.Duration    `yaml:"reload_interval"`
}

// Network is a named set of CIDRs.
type Network struct {
	Name  string   `yaml:"name"`
	CIDRs []string `yaml:"cidrs"`
	// Trust of a zone: trusted, semi-trusted or untrusted (the default).
	Trust string `yaml:"trust"`
}

// Consent configures consent records.
type Consent struct {
	// Validity is how long a grant lasts; 0 means until withdrawn.
	Validity time.Duration `yaml:"validity"`
	// Mode: "ask" (the default) shows the consent page and records
	// consents; "passthrough" releases every registered attribute without
	// asking (for deployments where consent is obtained elsewhere, and
	// tests that are not about consent).
	Mode string `yaml:"mode"`
}

// Consent modes.
const (
	ConsentAsk         = "ask"
	ConsentPassThrough = "passthrough"
)

// Default returns the built-in defaults, used under any YAML file.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:            "localhost:8080",
			Issuer:            "http://localhost:8080",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			Management:        Management{Listen: "localhost:9464"},
		},
		Log:      Log{Format: "json", Level: "info"},
		Database: Database{DSN: "sqlite:./trustbroker.db", AutoMigrate: true, GCInterval: 5 * time.Minute},
		Keys: Keys{
			Algorithms:       []string{"ES256", "RS256"},
			RSABits:          3072,
			ReloadInterval:   30 * time.Second,
			MaxTokenLifetime: 30 * 24 * time.Hour,
		},
		Session: Session{
			CookieName:   "tb_session",
			Lifetime:     8 * time.Hour,
			IdleTimeout:  time.Hour,
			LoginTimeout: 15 * time.Minute,
		},
		Policy:  Policy{TimeZone: "Europe/Berlin"},
		Consent: Consent{Validity: 365 * 24 * time.Hour, Mode: ConsentAsk},
	}
}

//go:embed demo.yaml
var demoYAML []byte

// Demo returns the demo configuration: embedded SQLite, http://localhost:8080,
// a demo relying party, the providers that have a simulator.
func Demo() (*Config, error) {
	return Parse(demoYAML, "demo.yaml")
}

// Parse decodes YAML over the defaults and validates the result.
func Parse(data []byte, name string) (*Config, error) {
	c, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode reads YAML over the defaults without validating.
func decode(data []byte, name string) (*Config, error) {
	c := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		return nil, Errors{{Path: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, Errors{{Path: name, Line: more.Line, Msg: "more than one YAML document"}}
	}
	if err := DecodeStrict(&doc, c, ""); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadFile reads and parses a YAML file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var (
	idPattern     = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$`)
	cookiePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	claimPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// MinClientSecretLength is the shortest configured client secret accepted.
const MinClientSecretLength = 32

// Validate checks the whole configuration and returns every problem.
func (c *Config) Validate() error {
	var es Errors
	c.validateServer(&es)
	c.validateBasics(&es)
	c.validateProviders(&es)
	c.validateRelyingParties(&es)
	c.validatePolicy(&es)
	c.validatePolicyEngine(&es)
	c.validateGate(&es)
	return es.err()
}

func (c *Config) validateServer(es *Errors) {
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		es.add("server.listen", 0, "%q is not host:port", s.Listen)
	}
	if err := checkIssuer(s.Issuer); err != nil {
		es.add("server.issuer", 0, "%v", err)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		es.add("server.tls", 0, "cert_file and key_file go together")
	}
	for name, d := range map[string]time.Duration{
		"read_header_timeout": s.ReadHeaderTimeout, "read_timeout": s.ReadTimeout,
		"write_timeout": s.WriteTimeout, "idle_timeout": s.IdleTimeout, "shutdown_timeout": s.ShutdownTimeout,
	} {
		if d <= 0 {
			es.add("server."+name, 0, "must be positive")
		}
	}
	for i, p := range s.TrustedProxies {
		if _, err := parseCIDROrIP(p); err != nil {
			es.add(fmt.Sprintf("server.trusted_proxies[%d]", i), 0, "%v", err)
		}
	}
	validateCardLogin(es, s.CardLogin)
	validateManagement(es, s)
}

// validateManagement checks server.management.listen: host:port with a
// numeric port (0 lets the system choose, for tests), or off; not an
// address another listener of the broker takes.
func validateManagement(es *Errors, s Server) {
	l := s.Management.Listen
	if l == ManagementOff {
		return
	}
	host, port, err := net.SplitHostPort(l)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		es.add("server.management.listen", 0, "%q is not host:port (or %s for no management listener)", l, ManagementOff)
		return
	}
	for _, o := range []struct{ key, addr string }{{"server.listen", s.Listen}, {"server.card_login.listen", s.CardLogin.Listen}} {
		if sameListener(host, port, o.addr) {
			es.add("server.management.listen", 0, "%q: %s takes that port already", l, o.key)
		}
	}
}

// sameListener reports whether host:port and addr would bind the same
// port: the same non-zero port on the same host or on all interfaces.
func sameListener(host, port, addr string) bool {
	h, p, err := net.SplitHostPort(addr)
	if err != nil || p != port || port == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return h == host || wildcard(h) || wildcard(host)
}

func validateCardLogin(es *Errors, c CardLogin) {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			es.add("server.card_login.listen", 0, "%q is not host:port", c.Listen)
		}
		if c.CertFile == "" || c.KeyFile == "" {
			es.add("server.card_login", 0, "listen needs cert_file and key_file")
		}
		if u, err := url.Parse(c.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			es.add("server.card_login.url", 0, "%q: the listener's public https://host:port, without a path", c.URL)
		}
	}
	if c.Header != "" && len(c.Proxies) == 0 {
		es.add("server.card_login.proxies", 0, "the header needs the proxies it may come from")
	}
	for i, p := range c.Proxies {
		if _, err := parseCIDROrIP(p); err != nil {
			es.add(fmt.Sprintf("server.card_login.proxies[%d]", i), 0, "%v", err)
		}
	}
}

func (c *Config) validateBasics(es *Errors) {
	if c.Log.Format != "text" && c.Log.Format != "json" {
		es.add("log.format", 0, "%q: use text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		es.add("log.level", 0, "%q: use debug, info, warn or error", c.Log.Level)
	}
	if err := CheckDSN(c.Database.DSN); err != nil {
		es.add("database.dsn", 0, "%v", err)
	}
	if c.Database.GCInterval <= 0 {
		es.add("database.gc_interval", 0, "must be positive")
	}
	if c.Database.MaxOpenConns < 0 {
		es.add("database.max_open_conns", 0, "must not be negative")
	}
	if len(c.Keys.Algorithms) == 0 {
		es.add("keys.algorithms", 0, "name at least one of ES256, RS256")
	}
	for i, a := range c.Keys.Algorithms {
		if a != "ES256" && a != "RS256" {
			es.add(fmt.Sprintf("keys.algorithms[%d]", i), 0, "%q: use ES256 or RS256", a)
		}
	}
	if c.Keys.RSABits < 2048 || c.Keys.RSABits > 8192 {
		es.add("keys.rsa_bits", 0, "%d: use 2048 to 8192 (3072 recommended)", c.Keys.RSABits)
	}
	if c.Keys.ReloadInterval <= 0 || c.Keys.MaxTokenLifetime <= 0 {
		es.add("keys", 0, "reload_interval and max_token_lifetime must be positive")
	}
	if !cookiePattern.MatchString(c.Session.CookieName) {
		es.add("session.cookie_name", 0, "%q: use 1 to 64 letters, digits, _ or -", c.Session.CookieName)
	}
	if c.Session.Lifetime <= 0 || c.Session.IdleTimeout <= 0 || c.Session.LoginTimeout <= 0 {
		es.add("session", 0, "lifetime, idle_timeout and login_timeout must be positive")
	}
	if c.Session.IdleTimeout > c.Session.Lifetime {
		es.add("session.idle_timeout", 0, "longer than session.lifetime")
	}
	if c.Consent.Validity < 0 {
		es.add("consent.validity", 0, "must not be negative (0: until withdrawn)")
	}
	if c.Consent.Mode != ConsentAsk && c.Consent.Mode != ConsentPassThrough {
		es.add("consent.mode", 0, "%q: use ask or passthrough", c.Consent.Mode)
	}
}

func (c *Config) validateProviders(es *Errors) {
	seen := map[string]bool{}
	for i, p := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		if !idPattern.MatchString(p.ID) {
			es.add(path+".id", 0, "%q: use letters, digits, . _ : -", p.ID)
		} else if seen[p.ID] {
			es.add(path+".id", 0, "%q is used twice", p.ID)
		}
		seen[p.ID] = true
		if p.Type == "" {
			es.add(path+".type", 0, "missing")
		}
		checkText(es, path+".name", p.Name, true)
	}
}

func (c *Config) validateRelyingParties(es *Errors) {
	seen := map[string]bool{}
	for i := range c.RelyingParties {
		rp := &c.RelyingParties[i]
		path := fmt.Sprintf("relying_parties[%d]", i)
		if !idPattern.MatchString(rp.ID) {
			es.add(path+".id", 0, "%q: use letters, digits, . _ : -", rp.ID)
		} else if seen[rp.ID] {
			es.add(path+".id", 0, "%q is used twice", rp.ID)
		}
		seen[rp.ID] = true
		checkText(es, path+".name", rp.Name, true)
		if len(rp.AcceptedCredentials) == 0 {
			es.add(path+".accepted_credentials", 0, "name at least one of %s", strings.Join(providers.Kinds, ", "))
		}
		for j, k := range rp.AcceptedCredentials {
			if !providers.KnownKind(k) {
				es.add(fmt.Sprintf("%s.accepted_credentials[%d]", path, j), 0, "%q: use one of %s", k, strings.Join(providers.Kinds, ", "))
			}
		}
		if rp.MinLoA == "" {
			rp.MinLoA = "substantial"
		}
		if l, err := loa.Parse(rp.MinLoA); err != nil {
			es.add(path+".min_loa", 0, "%v", err)
		} else if rp.SelfRegistration && !loa.Low.Satisfies(l) {
			es.add(path+".self_registration", 0, "gives level low: needs min_loa: low")
		}
		if rp.SelfRegistration && !slices.Contains(rp.AcceptedCredentials, providers.KindWebAuthn) {
			es.add(path+".self_registration", 0, "needs %s in accepted_credentials", providers.KindWebAuthn)
		}
		if rp.SubjectType == "" {
			rp.SubjectType = "pairwise"
		}
		if rp.SubjectType != "pairwise" && rp.SubjectType != "public" {
			es.add(path+".subject_type", 0, "%q: use pairwise or public", rp.SubjectType)
		}
		claims := map[string]bool{}
		for j, cl := range rp.Claims {
			cp := fmt.Sprintf("%s.claims[%d]", path, j)
			if !claimPattern.MatchString(cl.Name) {
				es.add(cp+".name", 0, "%q is not a claim name", cl.Name)
			} else if claims[cl.Name] {
				es.add(cp+".name", 0, "%q is listed twice", cl.Name)
			}
			claims[cl.Name] = true
			checkText(es, cp+".purpose", cl.Purpose, true)
			switch cl.LegalBasis {
			case "", BasisConsent, BasisContract, BasisLegalObligation:
			default:
				es.add(cp+".legal_basis", 0, "%q: use consent, contract or legal_obligation", cl.LegalBasis)
			}
		}
		switch rp.Protocol {
		case "oidc":
			c.validateOIDC(es, path, rp)
		case "saml":
			validateSAML(es, path, rp)
			if !slices.Contains(c.Keys.Algorithms, "RS256") {
				es.add(path+".protocol", 0, "saml signs with RSA-SHA256: add RS256 to keys.algorithms")
			}
		case "gate":
			validateGateRP(es, path, rp)
		default:
			es.add(path+".protocol", 0, "%q: use oidc, saml or gate", rp.Protocol)
		}
	}
}

func (c *Config) validateOIDC(es *Errors, path string, rp *RelyingParty) {
	if rp.SAML != nil {
		es.add(path+".saml", 0, "only for protocol saml")
	}
	o := rp.OIDC
	if o == nil {
		es.add(path+".oidc", 0, "missing (protocol is oidc)")
		return
	}
	if len(o.RedirectURIs) == 0 {
		es.add(path+".oidc.redirect_uris", 0, "name at least one redirect URI")
	}
	for j, u := range o.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			es.add(fmt.Sprintf("%s.oidc.redirect_uris[%d]", path, j), 0, "%v", err)
		}
	}
	for j, u := range o.PostLogoutRedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			es.add(fmt.Sprintf("%s.oidc.post_logout_redirect_uris[%d]", path, j), 0, "%v", err)
		}
	}
	validateSector(es, path+".oidc", rp.SubjectType, o)
	switch {
	case o.Public && (o.ClientSecret != "" || o.ClientSecretFile != ""):
		es.add(path+".oidc.client_secret", 0, "a public client has no secret")
	case !o.Public && o.ClientSecret == "" && o.ClientSecretFile == "" && o.JWKSFile == "":
		es.add(path+".oidc.client_secret", 0, "a confidential client needs client_secret, client_secret_file or jwks_file (or set public: true)")
	case o.ClientSecret != "" && o.ClientSecretFile != "":
		es.add(path+".oidc.client_secret", 0, "give client_secret or client_secret_file, not both")
	case o.ClientSecret != "" && len(o.ClientSecret) < MinClientSecretLength:
		es.add(path+".oidc.client_secret", 0, "shorter than %d characters (generate one with: openssl rand -base64 32)", MinClientSecretLength)
	}
	validateOIDCOptions(es, path+".oidc", o)
}

// validateSector checks sector_identifier_uri and, for a pairwise client
// without one, that its redirect URIs give one sector (OIDC Core §8.1).
// Whether the document at the URI lists the redirect URIs is checked at
// start (adapters/oidc CheckSectorIdentifiers), not here: validation does
// no I/O.
func validateSector(es *Errors, path, subjectType string, o *OIDC) {
	if o.SectorIdentifierURI != "" {
		if err := CheckRedirectURI(o.SectorIdentifierURI); err != nil {
			es.add(path+".sector_identifier_uri", 0, "%v", err)
		}
	}
	switch {
	case o.SectorIdentifierCAFile != "" && o.SectorIdentifierURI == "":
		es.add(path+".sector_identifier_ca_file", 0, "only with sector_identifier_uri")
	case o.SectorIdentifierCAFile != "" && !strings.HasPrefix(strings.ToLower(o.SectorIdentifierURI), "https:"):
		es.add(path+".sector_identifier_ca_file", 0, "only with an https sector_identifier_uri")
	}
	if subjectType == "pairwise" && o.SectorIdentifierURI == "" {
		if hosts := o.redirectHosts(); len(hosts) > 1 {
			es.add(path+".redirect_uris", 0, "the redirect URIs span the hosts %s, so they name no one sector for pairwise subjects (OIDC Core §8.1): set sector_identifier_uri, or subject_type: public",
				strings.Join(hosts, ", "))
		}
	}
}

// validateOIDCOptions checks and defaults the protocol options of a client.
func validateOIDCOptions(es *Errors, path string, o *OIDC) {
	switch {
	case o.TokenEndpointAuthMethod == "" && o.Public:
		o.TokenEndpointAuthMethod = "none"
	case o.TokenEndpointAuthMethod == "" && o.JWKSFile != "":
		o.TokenEndpointAuthMethod = "private_key_jwt"
	case o.TokenEndpointAuthMethod == "":
		o.TokenEndpointAuthMethod = "client_secret_basic"
	}
	switch o.TokenEndpointAuthMethod {
	case "none":
		if !o.Public {
			es.add(path+".token_endpoint_auth_method", 0, "none is only for public clients")
		}
	case "client_secret_basic", "client_secret_post":
		if o.Public {
			es.add(path+".token_endpoint_auth_method", 0, "a public client has no secret: use none")
		}
	case "private_key_jwt":
		if o.JWKSFile == "" {
			es.add(path+".jwks_file", 0, "private_key_jwt needs the client's public keys")
		}
	default:
		es.add(path+".token_endpoint_auth_method", 0, "%q: use client_secret_basic, client_secret_post, private_key_jwt or none", o.TokenEndpointAuthMethod)
	}
	if len(o.GrantTypes) == 0 {
		o.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	for i, g := range o.GrantTypes {
		switch g {
		case "authorization_code", "refresh_token":
		case "client_credentials":
			if o.Public {
				es.add(fmt.Sprintf("%s.grant_types[%d]", path, i), 0, "a public client cannot use client_credentials")
			}
		default:
			es.add(fmt.Sprintf("%s.grant_types[%d]", path, i), 0, "%q: use authorization_code, refresh_token or client_credentials (implicit and password are not offered)", g)
		}
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"openid", "profile", "email", "address", "phone", "offline_access"}
	}
	if o.IDTokenSignedResponseAlg == "" {
		o.IDTokenSignedResponseAlg = "RS256"
	}
	if o.IDTokenSignedResponseAlg != "RS256" && o.IDTokenSignedResponseAlg != "ES256" {
		es.add(path+".id_token_signed_response_alg", 0, "%q: use RS256 or ES256", o.IDTokenSignedResponseAlg)
	}
	if o.AccessTokenFormat == "" {
		o.AccessTokenFormat = "opaque"
	}
	if o.AccessTokenFormat != "opaque" && o.AccessTokenFormat != "jwt" {
		es.add(path+".access_token_format", 0, "%q: use opaque or jwt", o.AccessTokenFormat)
	}
	if o.BackchannelLogoutURI != "" {
		if err := CheckRedirectURI(o.BackchannelLogoutURI); err != nil {
			es.add(path+".backchannel_logout_uri", 0, "%v", err)
		}
	}
	if o.FrontchannelLogoutURI != "" {
		if err := checkFrontchannelLogoutURI(o.FrontchannelLogoutURI, o.RedirectURIs); err != nil {
			es.add(path+".frontchannel_logout_uri", 0, "%v", err)
		}
	} else if o.FrontchannelLogoutSessionRequired {
		es.add(path+".frontchannel_logout_session_required", 0, "needs frontchannel_logout_uri")
	}
	for name, d := range map[string]*time.Duration{"access_token_lifetime": &o.AccessTokenLifetime, "refresh_token_lifetime": &o.RefreshTokenLifetime, "id_token_lifetime": &o.IDTokenLifetime} {
		if *d < 0 {
			es.add(path+"."+name, 0, "must not be negative")
		}
	}
}

func validateSAML(es *Errors, path string, rp *RelyingParty) {
	if rp.OIDC != nil {
		es.add(path+".oidc", 0, "only for protocol oidc")
	}
	s := rp.SAML
	if s == nil {
		es.add(path+".saml", 0, "missing (protocol is saml)")
		return
	}
	if s.EntityID == "" {
		es.add(path+".saml.entity_id", 0, "missing")
	}
	sources := 0
	for _, set := range []bool{len(s.ACSURLs) > 0, s.MetadataFile != "", s.MetadataURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		es.add(path+".saml", 0, "name one of acs_urls, metadata_file, metadata_url")
	}
	if s.MetadataURL != "" {
		if err := CheckRedirectURI(s.MetadataURL); err != nil {
			es.add(path+".saml.metadata_url", 0, "%v", err)
		}
		if s.MetadataCertFile == "" {
			es.add(path+".saml.metadata_cert_file", 0, "missing (the certificate the metadata at metadata_url is signed with)")
		}
	}
	if s.MetadataRefresh < 0 {
		es.add(path+".saml.metadata_refresh", 0, "must not be negative")
	} else if s.MetadataRefresh == 0 {
		s.MetadataRefresh = time.Hour
	}
	for j, u := range s.ACSURLs {
		if err := CheckRedirectURI(u); err != nil {
			es.add(fmt.Sprintf("%s.saml.acs_urls[%d]", path, j), 0, "%v", err)
		}
	}
	if len(s.NameIDFormats) == 0 {
		s.NameIDFormats = []string{NameIDPersistent}
	}
	for j, f := range s.NameIDFormats {
		switch f {
		case NameIDPersistent, NameIDTransient, NameIDEmail:
		default:
			es.add(fmt.Sprintf("%s.saml.name_id_formats[%d]", path, j), 0, "%q: use persistent, transient or email", f)
		}
		if slices.Index(s.NameIDFormats, f) != j {
			es.add(fmt.Sprintf("%s.saml.name_id_formats[%d]", path, j), 0, "%q is listed twice", f)
		}
	}
	if s.RequireSignedRequests && s.MetadataFile == "" && s.MetadataURL == "" {
		es.add(path+".saml.require_signed_requests", 0, "needs metadata_file or metadata_url (the signing certificate)")
	}
}

func (c *Config) validatePolicy(es *Errors) {
	if _, err := time.LoadLocation(c.Policy.TimeZone); err != nil || c.Policy.TimeZone == "" {
		es.add("policy.time_zone", 0, "%q is not a known time zone (e.g. Europe/Berlin)", c.Policy.TimeZone)
	}
	names := map[string]bool{}
	for i, n := range c.Policy.Networks {
		path := fmt.Sprintf("policy.networks[%d]", i)
		if !idPattern.MatchString(n.Name) {
			es.add(path+".name", 0, "%q: use letters, digits, . _ : -", n.Name)
		} else if names[n.Name] {
			es.add(path+".name", 0, "%q is used twice", n.Name)
		}
		names[n.Name] = true
		if len(n.CIDRs) == 0 {
			es.add(path+".cidrs", 0, "name at least one CIDR")
		}
		for j, cidr := range n.CIDRs {
			if _, err := parseCIDROrIP(cidr); err != nil {
				es.add(fmt.Sprintf("%s.cidrs[%d]", path, j), 0, "%v", err)
			}
		}
	}
}

func checkText(es *Errors, path string, t Text, required bool) {
	if required && t.Get("en") == "" {
		es.add(path, 0, "missing: give de and en texts")
	}
	for lang := range t {
		if lang != "de" && lang != "en" {
			es.add(path+"."+lang, 0, "unknown language (use de and en)")
		}
	}
}

// parseCIDROrIP accepts "10.0.0.0/8" or a single address.
func parseCIDROrIP(s string) (*net.IPNet, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n, nil
	}
	if ip := net.ParseIP(s); ip != nil {
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
}

// ParseCIDROrIP is parseCIDROrIP for other packages (network zones).
func ParseCIDROrIP(s string) (*net.IPNet, error) { return parseCIDROrIP(s) }

// IsLoopbackHost reports whether host names this machine: localhost,
// 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// CheckRedirectURI enforces what a registered redirect URI may be: an
// absolute https URL (http only on a loopback host), no fragment, no
// user information (RFC 6749 §3.1.2, RFC 9700 §2.1).
func CheckRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q has a fragment", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries user information", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q must use https (http only for localhost)", s)
		}
	default:
		return fmt.Errorf("%q must use https", s)
	}
	return nil
}

// checkFrontchannelLogoutURI: a redirect URI's rules, and the scheme, host
// and port of one of the client's redirect URIs (Front-Channel Logout 1.0
// §2), so the logout page frames only origins the client owns.
func checkFrontchannelLogoutURI(s string, redirectURIs []string) error {
	if err := CheckRedirectURI(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	for _, r := range redirectURIs {
		if ru, err := url.Parse(r); err == nil && strings.EqualFold(ru.Scheme, u.Scheme) && strings.EqualFold(ru.Host, u.Host) {
			return nil
		}
	}
	return fmt.Errorf("%q: scheme, host and port must be those of one of the redirect_uris (Front-Channel Logout §2)", s)
}

func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%q: no query, fragment or trailing slash (OIDC Discovery §3)", s)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must use https (http only for localhost)", s)
	}
	return nil
}

// CheckDSN accepts the database DSNs the store understands:
// "sqlite:PATH", "sqlite://PATH", "file:PATH" and
// "postgres://user@host:port/db?..." (also "postgresql://").
func CheckDSN(dsn string) error {
	switch {
	case dsn == "":
		return errors.New("missing (e.g. sqlite:./trustbroker.db or postgres://user@host/db)")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return errors.New("not a valid PostgreSQL URL")
		}
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return errors.New("a PostgreSQL URL needs a host and a database name")
		}
		return nil
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "file:"):
		if strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:"), "//") == "" {
			return errors.New("an SQLite DSN needs a file path")
		}
		return nil
	default:
		scheme, _, ok := strings.Cut(dsn, ":")
		if ok {
			return fmt.Errorf("unsupported scheme %q (use sqlite: or postgres://)", scheme)
		}
		return errors.New("use sqlite:PATH or postgres://...")
	}
}
