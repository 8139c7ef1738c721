// Package broker is the orchestrator of the login flow: an adapter starts a
// login transaction for a protocol request; the browser chooses a
// credential; the provider proves an identity; the identity is linked to an
// account; the policy decides; the consent step says what may leave; and the
// adapter is resumed to answer the relying party.
package broker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/trustbroker/trustbroker/broker/clientcert"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/session"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
	"github.com/trustbroker/trustbroker/providers"
)

// Adapter is a front door (OIDC, SAML, the demo) as the broker sees it.
type Adapter interface {
	// Protocol names the adapter; transactions carry it.
	Protocol() string
	// Resume answers the relying party when the flow of tx has ended:
	// with res on success, or with ferr (a *FlowError) on failure.
	Resume(w http.ResponseWriter, r *http.Request, tx *store.Transaction, res *Result, ferr *FlowError)
}

// FlowError is why a login ended without an identity. Code is an OAuth 2.0
// style code an adapter can pass on ("access_denied", "login_required",
// "interaction_required", "consent_required", "server_error").
type FlowError struct {
	Code        string
	Description string
	// Reason is a policy.PublicReason code when the policy denied, for an
	// adapter that shows its own page in the user's language.
	Reason string `json:",omitempty"`
}

func (e *FlowError) Error() string { return e.Code + ": " + e.Description }

// LoginParams is the broker-level view of what the relying party asked.
type LoginParams struct {
	// MinLoA is the lowest level that satisfies the request.
	MinLoA loa.Level `json:"min_loa"`
	// Kinds are the credential kinds that may be used.
	Kinds []string `json:"kinds"`
	// Attributes are the claim names asked for.
	Attributes []string `json:"attributes"`
	// Prompt values of OIDC Core §3.1.2.1 (none, login, consent,
	// select_account); SAML ForceAuthn maps to login, IsPassive to none.
	Prompt []string `json:"prompt,omitempty"`
	// MaxAge in seconds; nil when not given.
	MaxAge    *int64 `json:"max_age,omitempty"`
	LoginHint string `json:"login_hint,omitempty"`
	// Lang is a ui_locales value.
	Lang string `json:"lang,omitempty"`
	// BindingHash is the SHA-256 of the browser-binding cookie value.
	BindingHash string `json:"binding_hash"`
	// Link is the identity waiting at the link offer (link.go); nil
	// otherwise.
	Link *PendingLink `json:"link,omitempty"`
}

func (p LoginParams) has(prompt string) bool { return slices.Contains(p.Prompt, prompt) }

// Result is the outcome of a successful flow, stored in the transaction and
// handed to the adapter.
type Result struct {
	Identity  providers.Identity `json:"identity"`
	AccountID string             `json:"account_id"`
	SessionID string             `json:"session_id"`
	// Subject is what this RP sees: pairwise by default.
	Subject string `json:"subject"`
	// Claims holds only the consented attributes.
	Claims    map[string]any `json:"claims"`
	Granted   []string       `json:"granted"`
	AuthTime  time.Time      `json:"auth_time"`
	ACR       string         `json:"acr"`
	AMR       []string       `json:"amr"`
	PolicyTag string         `json:"policy_rule"`
	// SSO is true when an existing session answered.
	SSO bool `json:"sso"`
}

// Provider is a configured provider with its display name.
type Provider struct {
	providers.Provider
	Name config.Text
}

// Options wire a Broker. Every field is required unless said otherwise.
type Options struct {
	Store     store.Store
	Providers []Provider
	// RelyingParties by id.
	RelyingParties map[string]*config.RelyingParty
	Policy         policy.DecisionPoint
	Consent        consent.Step
	Sessions       *session.Manager
	UI             *ui.UI
	CSRF           *web.CSRF
	Cookies        web.Cookies
	Issuer         string
	LoginTimeout   time.Duration
	// PairwiseKey derives pairwise subjects (32 bytes).
	PairwiseKey []byte
	Networks    []config.Network
	Locator     *location.Locator // optional: zone, trust, site, country of the client
	TimeZone    *time.Location
	Now         func() time.Time
	Rand        io.Reader
	Logger      *slog.Logger
	// ClientCert says where card certificates are read from (the TLS
	// handshake, a trusted proxy's header).
	ClientCert clientcert.Source
	// CardLoginURL is the public base URL of the card-login listener
	// (server.card_login.url); empty: card logins stay on this host.
	CardLoginURL string
}

// Broker runs login flows.
type Broker struct {
	o         Options
	providers map[string]Provider
	adapters  map[string]Adapter
	networks  []zone
}

type zone struct {
	name string
	nets []*net.IPNet
}

// New checks the options and builds a Broker.
func New(o Options) (*Broker, error) {
	if o.Store == nil || o.Sessions == nil || o.UI == nil || o.CSRF == nil || o.Policy == nil || o.Consent == nil {
		return nil, errors.New("broker: store, sessions, ui, csrf, policy and consent are required")
	}
	if len(o.PairwiseKey) < 32 {
		return nil, errors.New("broker: pairwise key shorter than 32 bytes")
	}
	b := &Broker{o: o, providers: map[string]Provider{}, adapters: map[string]Adapter{}}
	for _, p := range o.Providers {
		if _, dup := b.providers[p.ID()]; dup {
			return nil, fmt.Errorf("broker: provider %q configured twice", p.ID())
		}
		b.providers[p.ID()] = p
	}
	for _, n := range o.Networks {
		z := zone{name: n.Name}
		for _, c := range n.CIDRs {
			ipn, err := config.ParseCIDROrIP(c)
			if err != nil {
				return nil, fmt.Errorf("broker: network %s: %w", n.Name, err)
			}
			z.nets = append(z.nets, ipn)
		}
		b.networks = append(b.networks, z)
	}
	return b, nil
}

// RegisterAdapter makes an adapter resumable. Adapters register before the
// server starts.
func (b *Broker) RegisterAdapter(a Adapter) { b.adapters[a.Protocol()] = a }

// RelyingParty returns a registration by id.
func (b *Broker) RelyingParty(id string) (*config.RelyingParty, bool) {
	rp, ok := b.o.RelyingParties[id]
	return rp, ok
}

// Routes adds the login pages to mux.
func (b *Broker) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login/{tx}", b.handleLogin)
	mux.HandleFunc("POST /login/{tx}", b.handleChoose)
	mux.HandleFunc("POST /login/{tx}/cancel", b.handleCancel)
	mux.HandleFunc("GET /login/{tx}/callback", b.handleCallback)
	mux.HandleFunc("POST /login/{tx}/callback", b.handleCallback)
	mux.HandleFunc("POST /login/{tx}/ceremony/options", b.handleCeremonyOptions)
	mux.HandleFunc("POST /login/{tx}/ceremony/finish", b.handleCeremonyFinish)
	mux.HandleFunc("GET /login/{tx}/certificate", b.handleCertificate)
	mux.HandleFunc("GET /login/{tx}/consent", b.handleConsentPage)
	mux.HandleFunc("POST /login/{tx}/consent", b.handleConsentAnswer)
	mux.HandleFunc("POST /login/{tx}/link", b.handleLinkAnswer)
}

// StartRequest is what an adapter hands the broker to start a login.
type StartRequest struct {
	Protocol string
	RPID     string
	// Request is the adapter's own serialized protocol request.
	Request json.RawMessage
	// RequestedLoA is the level the request asked for (acr_values,
	// RequestedAuthnContext); the RP's minimum applies anyway.
	RequestedLoA loa.Level
	// Attributes asked for beyond the RP's registration are ignored;
	// nil means all registered claims.
	Attributes []string
	Prompt     []string
	MaxAge     *int64
	LoginHint  string
	Lang       string
	// Kinds narrows the RP's accepted credential kinds (a step-up that
	// needs a particular credential); nil keeps them all.
	Kinds []string
}

// StartLogin creates a login transaction, binds it to this browser, and
// sends the browser to the login page (303).
func (b *Broker) StartLogin(w http.ResponseWriter, r *http.Request, sr StartRequest) error {
	ctx := r.Context()
	rp, ok := b.o.RelyingParties[sr.RPID]
	if !ok {
		return fmt.Errorf("broker: unknown relying party %q", sr.RPID)
	}
	if _, ok := b.adapters[sr.Protocol]; !ok {
		return fmt.Errorf("broker: no adapter for protocol %q", sr.Protocol)
	}
	minLoA, _ := loa.Parse(rp.MinLoA)
	p := LoginParams{
		MinLoA:     max(minLoA, sr.RequestedLoA),
		Kinds:      narrowKinds(rp.AcceptedCredentials, sr.Kinds),
		Attributes: registeredAttributes(rp, sr.Attributes),
		Prompt:     sr.Prompt,
		MaxAge:     sr.MaxAge,
		LoginHint:  sr.LoginHint,
		Lang:       sr.Lang,
	}
	id, err := b.random(16)
	if err != nil {
		return err
	}
	binding, err := b.random(32)
	if err != nil {
		return err
	}
	p.BindingHash = hashString(binding)
	params, _ := json.Marshal(p)
	now := b.o.Now()
	tx := &store.Transaction{
		ID: id, Protocol: sr.Protocol, RPID: sr.RPID, State: store.TxStateMethod,
		CreatedAt: now, ExpiresAt: now.Add(b.o.LoginTimeout), Request: sr.Request, Params: params,
	}
	if err := b.o.Store.Transactions().Create(ctx, tx); err != nil {
		return fmt.Errorf("broker: create transaction: %w", err)
	}
	b.o.Cookies.Set(w, "tb_login", loginPath(id), binding, b.o.LoginTimeout)
	b.audit(ctx, "rp:"+sr.RPID, "login.start", id, store.OutcomeSuccess, sr.Protocol, nil)
	http.Redirect(w, r, loginPath(id), http.StatusSeeOther)
	return nil
}

// narrowKinds keeps the accepted kinds that are also wanted; nil wants all.
func narrowKinds(accepted, wanted []string) []string {
	if wanted == nil {
		return slices.Clone(accepted)
	}
	return slices.DeleteFunc(slices.Clone(accepted), func(k string) bool { return !slices.Contains(wanted, k) })
}

// registeredAttributes keeps only what the RP registered; nil asks for all.
func registeredAttributes(rp *config.RelyingParty, asked []string) []string {
	var out []string
	for _, c := range rp.Claims {
		if asked == nil || slices.Contains(asked, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func loginPath(txID string) string { return "/login/" + txID }

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (b *Broker) random(n int) (string, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(b.o.Rand, buf); err != nil {
		return "", fmt.Errorf("broker: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// Subject is the subject identifier an RP sees for an account: pairwise
// (OIDC Core §8.1, a keyed hash over the sector and the account) unless
// the registration says public. Clients of one sector (config
// RelyingParty.Sector) see the same subject.
//
// The hash input is sector || 0 || account. An OIDC client's sector, a
// host, enters as "oidc-sector/" + host: relying-party ids cannot contain
// "/", so no SAML service provider or gate service (whose sector is its
// id, unchanged from before sectors) can share an OIDC sector's subjects
// by being named like its host.
func (b *Broker) Subject(rp *config.RelyingParty, accountID string) string {
	if rp.SubjectType == "public" {
		return accountID
	}
	sector := rp.ID
	if rp.OIDC != nil {
		if h, ok := rp.OIDC.SectorHost(); ok {
			sector = "oidc-sector/" + h
		}
	}
	m := hmac.New(sha256.New, b.o.PairwiseKey)
	m.Write([]byte(sector))
	m.Write([]byte{0})
	m.Write([]byte(accountID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// audit appends an audit event; a failure to audit is logged loudly (the
// flow has already happened and cannot be undone by it).
func (b *Broker) audit(ctx context.Context, actor, action, target, outcome, reason string, details any) {
	ev := &store.AuditEvent{
		Time: b.o.Now(), Actor: actor, Action: action, Target: target,
		Outcome: outcome, Reason: reason, RequestID: web.RequestID(ctx),
	}
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	if err := b.o.Store.Audit().Append(ctx, ev); err != nil {
		b.o.Logger.ErrorContext(ctx, "audit append failed", "action", action, "target", target, "err", err)
	}
}

// CurrentSession returns the browser's SSO session, if any.
func (b *Broker) CurrentSession(r *http.Request) (*store.Session, error) {
	return b.o.Sessions.Current(r.Context(), r)
}

// PolicyContext builds the decision context of a request.
func (b *Broker) PolicyContext(r *http.Request, level loa.Level, kind string, amr []string) policy.Context {
	ip := web.ClientIP(r.Context())
	pc := policy.Context{
		ClientIP: ip, Time: b.o.Now().In(b.o.TimeZone), LoA: level, CredentialKind: kind,
		HardwareToken: slices.Contains(amr, "hwk") || slices.Contains(amr, "sc"),
	}
	if parsed := net.ParseIP(ip); parsed != nil {
		for _, z := range b.networks {
			for _, n := range z.nets {
				if n.Contains(parsed) {
					pc.Networks = append(pc.Networks, z.name)
					break
				}
			}
		}
	}
	if b.o.Locator != nil {
		b.o.Locator.Apply(&pc)
	}
	return pc
}
