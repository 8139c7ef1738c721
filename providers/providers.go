// Package providers is the contract between the broker core and the places
// identities come from. A provider has a small base interface and exactly
// one of three capability interfaces, one per shape of login:
//
//   - RedirectProvider: begins with a browser redirect to an outside party
//     (eID-Server, eIDAS node, upstream OIDC or SAML IdP) and completes from
//     its callback;
//   - CertificateProvider: the TLS client certificate of a card;
//   - CeremonyProvider: a browser ceremony (WebAuthn: options out,
//     assertion in).
//
// The broker checks the capability with a type assertion. Implementations
// live in providers/<kind>; providers/builtin maps type names to factories.
// This package imports none of them.
package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
)

// Credential kinds: what a relying party can accept.
const (
	KindEID       = "eid"       // German eID card (nPA) via a TR-03130 eID-Server
	KindEIDAS     = "eidas"     // EU eID via an eIDAS node
	KindSmartcard = "smartcard" // X.509 cards: employee ID, HBA/SMC-B, eGK, signature cards
	KindWebAuthn  = "webauthn"  // FIDO2 security keys and passkeys
	KindOIDC      = "oidc"      // upstream OpenID Provider
	KindSAML      = "saml"      // upstream SAML IdP
)

// Kinds lists every credential kind in the order the login page shows them.
var Kinds = []string{KindEID, KindEIDAS, KindSmartcard, KindWebAuthn, KindOIDC, KindSAML}

// KnownKind reports whether k is one of Kinds.
func KnownKind(k string) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Identity is what a provider proves about the user.
type Identity struct {
	ProviderID string `json:"provider_id"`
	Kind       string `json:"kind"`
	// Subject is stable for the same person at this provider (for an eID
	// card: the restricted identification of the sector).
	Subject string `json:"subject"`
	// Attributes are verified attributes under OIDC claim names
	// (given_name, family_name, birthdate, address, ...).
	Attributes map[string]any `json:"attributes,omitempty"`
	LoA        loa.Level      `json:"loa"`
	AMR        []string       `json:"amr,omitempty"` // RFC 8176
	AuthTime   time.Time      `json:"auth_time"`
	// Evidence says what was verified and how, for OIDC4IDA
	// verified_claims; nil for unverified identities.
	Evidence *Evidence `json:"evidence,omitempty"`
	// CertThumbprint is the base64url SHA-256 thumbprint of the client
	// certificate a card login presented on the broker's own TLS
	// listener (RFC 8705 x5t#S256), for certificate-bound access tokens;
	// empty for every other login, the proxy header path included.
	CertThumbprint string `json:"x5t_s256,omitempty"`
	// MatchKey is a provider-computed value identifying the person across
	// credentials of the same kind (eID: the normalised verified given
	// names, family names and date of birth); empty when the provider has
	// none. The broker only ever stores a keyed hash of it, and it never
	// travels in a transaction, a session or a token (json "-").
	MatchKey string `json:"-"`
}

// Evidence is the verification block of OpenID Connect for Identity
// Assurance 1.0 (§5.1 "verification"): trust framework, time, and the
// evidence checked.
type Evidence struct {
	TrustFramework string            `json:"trust_framework"`
	AssuranceLevel string            `json:"assurance_level,omitempty"`
	Time           time.Time         `json:"time,omitempty"`
	Items          []json.RawMessage `json:"evidence,omitempty"`
}

// Request is what the broker tells a provider about the login at hand.
type Request struct {
	TransactionID string
	RPID          string
	// Attributes the relying party asked for (claim names).
	Attributes []string
	// MinLoA is the lowest level that satisfies the relying party.
	MinLoA loa.Level
	// Lang is the user's language, "de" or "en".
	Lang string
	// CallbackURL is where a redirect-based provider sends the browser
	// back to (absolute).
	CallbackURL string
	// ClientIP of the browser, for providers that bind to it.
	ClientIP string
	// Input is the JSON the page's script sent with a ceremony's options
	// request (for WebAuthn: a user name); nil when it sent none.
	Input json.RawMessage
	// SelfRegistration: the relying party allows a new account to be
	// created from a credential alone (relying_parties[].self_registration),
	// and the login needs no more than level low.
	SelfRegistration bool
}

// Provider is the base interface every provider implements.
type Provider interface {
	// ID is the configured id, unique in the broker.
	ID() string
	// Kind is one of the Kind constants.
	Kind() string
	// MaxLoA is the highest level this provider can reach; the login page
	// offers it only where that satisfies the relying party.
	MaxLoA() loa.Level
}

// RedirectProvider begins with a redirect and completes from a callback.
type RedirectProvider interface {
	Provider
	// Begin returns where to send the browser and the state to keep until
	// the callback (the broker stores it in the login transaction).
	Begin(ctx context.Context, req Request) (redirectURL string, state []byte, err error)
	// Complete reads the callback request.
	Complete(ctx context.Context, req Request, state []byte, callback *http.Request) (*Identity, error)
}

// CertificateProvider authenticates the client certificate of a card. peer
// holds the DER certificates as the client presented them (leaf first),
// from the broker's card-login TLS listener or a trusted reverse proxy's
// header; they are NOT verified: the provider validates the path to its
// own trust anchors (Go's TLS stack cannot verify every card's curve).
type CertificateProvider interface {
	Provider
	Authenticate(ctx context.Context, req Request, peer [][]byte) (*Identity, error)
}

// CeremonyProvider runs a browser ceremony: options out, response in.
type CeremonyProvider interface {
	Provider
	// Options returns the JSON the page's script hands to the browser API,
	// and the state to keep until Finish.
	Options(ctx context.Context, req Request) (options json.RawMessage, state []byte, err error)
	Finish(ctx context.Context, req Request, state []byte, response json.RawMessage) (*Identity, error)
}

// AccountProvider is implemented by providers whose credentials the
// signed-in account owner manages (WebAuthn: register, list, rename,
// remove). The broker mounts the handler under /account/{id}/.
type AccountProvider interface {
	Provider
	AccountHandler(host AccountHost) http.Handler
}

// AccountHost is what the broker lends a provider's account pages.
type AccountHost interface {
	// Session returns the browser's SSO session, or an error when there
	// is none.
	Session(r *http.Request) (*store.Session, error)
	Lang(r *http.Request) string
	Text(lang, key string) string
	Render(w http.ResponseWriter, r *http.Request, status int, page, lang string, data any)
	// CSRFToken and CSRFValid bind form tokens to the session.
	CSRFToken(s *store.Session) string
	CSRFValid(s *store.Session, token string) bool
	Audit(ctx context.Context, actor, action, target, outcome, reason string, details any)
}

// EndpointProvider serves endpoints of its own under /providers/{id}/ for
// the outside parties of a redirect-based login, which call without the
// browser's login cookie: the eID client fetching its TC token, an eIDAS
// node posting to the assertion consumer service at the fixed URL of the
// SP metadata, the metadata itself. Such an endpoint finds the login it
// belongs to with EndpointHost.Pending and hands the browser back to
// Request.CallbackURL, where Complete runs bound to the browser.
type EndpointProvider interface {
	Provider
	Endpoints(host EndpointHost) http.Handler
}

// EndpointHost is what the broker lends a provider's endpoints.
type EndpointHost interface {
	// Pending returns the request and the provider state of the login
	// transaction txID while it waits at provider providerID, and
	// store.ErrNotFound when there is no such login (unknown, expired,
	// finished, or at another provider). It does not check the browser:
	// an endpoint must bind itself to the login with a secret of its
	// state (or leave the binding to Complete). Request.ClientIP is
	// empty, Request.Lang too unless the relying party named a language.
	Pending(ctx context.Context, providerID, txID string) (Request, []byte, error)
	Lang(r *http.Request) string
	Text(lang, key string) string
	Render(w http.ResponseWriter, r *http.Request, status int, page, lang string, data any)
	Audit(ctx context.Context, actor, action, target, outcome, reason string, details any)
}

// Error is a provider failure with a part that is safe to show the user
// (Public, in the user's language where the provider knows it) and a private
// part for the log.
type Error struct {
	// Code is a stable machine-readable reason, e.g. "cancelled",
	// "card_expired", "loa_too_low".
	Code string
	// Public is the text the login page may show.
	Public string
	// Err is the cause, logged, never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Public, e.Err)
	}
	return e.Code + ": " + e.Public
}

func (e *Error) Unwrap() error { return e.Err }

// PublicError extracts the showable part of err, if it carries one.
func PublicError(err error) (*Error, bool) {
	var pe *Error
	if errors.As(err, &pe) {
		return pe, true
	}
	return nil, false
}

// Deps are the shared services a factory may use. No globals: the clock,
// randomness source and logger come from here.
type Deps struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Issuer is the broker's public base URL.
	Issuer string
	// HTTPClient for talking to outside parties.
	HTTPClient *http.Client
	// Store is the broker's store, for providers that keep credentials of
	// their own (WebAuthn).
	Store store.Store
}

// Factory builds a provider from its configured id, display names and the
// raw `config` block, which the factory decodes strictly (see
// config.DecodeStrict) reporting errors under path.
type Factory func(id string, cfg *yaml.Node, path string, deps Deps) (Provider, error)

// Registry maps a configured `type` to its factory. It is a plain map the
// caller builds and passes in; nothing registers itself.
type Registry map[string]Factory
