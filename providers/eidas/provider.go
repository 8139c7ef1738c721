package eidas

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers"
)

// Provider is an eIDAS service provider (providers.RedirectProvider with
// endpoints of its own: SP metadata, the auto-posting AuthnRequest page,
// the assertion consumer service).
type Provider struct {
	id       string
	s        *Settings
	entityID string
	acsURL   string
	base     string // {issuer}/providers/{id}
	now      func() time.Time
	replay   store.Replay
	logger   *slog.Logger

	mu       sync.Mutex
	metadata []byte
	mdUntil  time.Time
}

var (
	_ providers.RedirectProvider = (*Provider)(nil)
	_ providers.EndpointProvider = (*Provider)(nil)
)

// maxResponseBytes bounds a posted SAMLResponse (base64).
const maxResponseBytes = 512 << 10

// Factory builds a provider of type "eidas".
func Factory(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	s, err := c.Settings(path, HTTPFetcher(deps.HTTPClient))
	if err != nil {
		return nil, err
	}
	return New(id, s, deps)
}

// HTTPFetcher reads node metadata with client (bounded to 1 MiB).
func HTTPFetcher(client *http.Client) Fetcher {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return func(ctx context.Context, url string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", redactedURL(url), resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
}

// redactedURL is raw without a userinfo password, for errors that reach
// the log and /readyz.
func redactedURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// New builds a provider from validated settings. deps.Store keeps the
// one-time use of assertions; without it (a configuration check) the
// provider builds but refuses every response.
func New(id string, s *Settings, deps providers.Deps) (*Provider, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimSuffix(deps.Issuer, "/") + "/providers/" + id
	p := &Provider{id: id, s: s, base: base, acsURL: base + "/acs", entityID: s.EntityID, now: now, logger: logger}
	if deps.Store != nil {
		p.replay = deps.Store.Replay()
	}
	if p.entityID == "" {
		p.entityID = base + "/metadata"
	}
	return p, nil
}

func (p *Provider) ID() string        { return p.id }
func (p *Provider) Kind() string      { return providers.KindEIDAS }
func (p *Provider) MaxLoA() loa.Level { return p.s.MaxLoA }

// EntityID is the SP's entity ID (by eIDAS convention its metadata URL).
func (p *Provider) EntityID() string { return p.entityID }

// ACSURL is the assertion consumer service.
func (p *Provider) ACSURL() string { return p.acsURL }

// state is kept in the login transaction between Begin and Complete.
type state struct {
	RequestID string    `json:"rid"`
	Nonce     string    `json:"n"`
	Request   []byte    `json:"req"`
	SSOURL    string    `json:"sso"`
	Node      string    `json:"node"`
	LoA       loa.Level `json:"loa"`
	Issued    time.Time `json:"iat"`
}

// Begin signs an AuthnRequest and sends the browser to the provider's
// own page that posts it to the node (HTTP-POST binding).
func (p *Provider) Begin(ctx context.Context, req providers.Request) (string, []byte, error) {
	now := p.now()
	node, err := p.s.Node.Node(ctx, now)
	if err != nil {
		return "", nil, publicError(codeNodeUnavailable, req.Lang, err)
	}
	level := max(p.s.RequestLoA, req.MinLoA)
	if level > p.s.MaxLoA {
		return "", nil, publicError(CodeLoATooLow, req.Lang, fmt.Errorf("level %s asked, the node reaches %s", level, p.s.MaxLoA))
	}
	if level < loa.Low {
		level = loa.Low
	}
	st := state{RequestID: newID(), Nonce: randomHex(16), SSOURL: node.SSOURL, Node: node.EntityID, LoA: level, Issued: now}
	if st.Request, err = p.authnRequest(st.RequestID, node, level, req.Attributes, now); err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", nil, err
	}
	return p.base + "/authn/" + req.TransactionID + "?k=" + st.Nonce, b, nil
}

// Complete validates the Response relayed to the callback by the
// assertion consumer service (bound to the browser by the login cookie).
func (p *Provider) Complete(ctx context.Context, req providers.Request, raw []byte, r *http.Request) (*providers.Identity, error) {
	var st state
	if err := json.Unmarshal(raw, &st); err != nil || st.RequestID == "" {
		return nil, publicError(CodeMalformed, req.Lang, errors.New("no pending eIDAS request in the login"))
	}
	if r.Method != http.MethodPost {
		return nil, publicError(CodeMalformed, req.Lang, errors.New("callback without a posted SAMLResponse"))
	}
	if err := r.ParseForm(); err != nil {
		return nil, publicError(CodeMalformed, req.Lang, err)
	}
	if rs := r.PostForm.Get("RelayState"); rs != req.TransactionID {
		return nil, publicError(CodeMalformed, req.Lang, fmt.Errorf("RelayState %q does not name the login", rs))
	}
	enc := r.PostForm.Get("SAMLResponse")
	if enc == "" || len(enc) > maxResponseBytes {
		return nil, publicError(CodeMalformed, req.Lang, errors.New("SAMLResponse missing or too large"))
	}
	xml, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, publicError(CodeMalformed, req.Lang, fmt.Errorf("SAMLResponse: %w", err))
	}
	now := p.now()
	node, err := p.s.Node.Node(ctx, now)
	if err != nil {
		return nil, publicError(codeNodeUnavailable, req.Lang, err)
	}
	if node.EntityID != st.Node {
		return nil, publicError(CodeIssuer, req.Lang, fmt.Errorf("node changed from %s to %s during the login", st.Node, node.EntityID))
	}
	res, err := p.validate(ctx, xml, expect{RequestID: st.RequestID, Node: node, LoA: st.LoA, Now: now})
	if err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			return nil, publicError(rf.code, req.Lang, err)
		}
		return nil, err
	}
	return p.identity(res), nil
}

// identity maps a validated result to the broker's Identity: the
// PersonIdentifier as subject (stable per person and receiving country),
// the natural-person attributes under OIDC claim names, the sending
// country kept, LoA as reached, amr and OIDC4IDA evidence.
func (p *Provider) identity(res *Result) *providers.Identity {
	per := res.Person
	attrs := map[string]any{
		"given_name":              per.FirstName,
		"family_name":             per.FamilyName,
		"name":                    per.FirstName + " " + per.FamilyName,
		"birthdate":               per.DateOfBirth,
		"eidas_person_identifier": per.PersonIdentifier,
		"eidas_sending_country":   per.SendingCountry,
	}
	if per.BirthName != "" {
		attrs["birth_family_name"] = per.BirthName
	}
	if per.PlaceOfBirth != "" {
		attrs["place_of_birth"] = map[string]any{"locality": per.PlaceOfBirth}
	}
	if per.Gender != "" {
		attrs["gender"] = strings.ToLower(per.Gender)
	}
	if per.Address != nil {
		attrs["address"] = per.Address.Claim()
	}
	id := &providers.Identity{
		Subject: per.PersonIdentifier, Attributes: attrs, LoA: res.LoA, AuthTime: res.AuthnInstant,
		AMR: amrFor(res.LoA),
	}
	// OIDC4IDA (DOMAIN.md §4.2, first form): an identification through a
	// notified eID scheme is expressed by the trust framework "eidas" and
	// the level; the node, not the broker, saw the evidence, so no
	// evidence items are claimed. Not-notified schemes get none.
	if res.Notified {
		id.Evidence = &providers.Evidence{TrustFramework: "eidas", AssuranceLevel: res.LoA.String(), Time: res.AuthnInstant}
	}
	return id
}

// amrFor: eIDAS substantial and high require at least two factors of
// different categories (Implementing Regulation (EU) 2015/1502 §2.2.1),
// so "mfa" (RFC 8176); how the member state's scheme authenticated is not
// in the assertion, so nothing more specific is claimed.
func amrFor(l loa.Level) []string {
	if l >= loa.Substantial {
		return []string{"mfa"}
	}
	return nil
}

// Endpoints serves the SP metadata, the AuthnRequest page and the
// assertion consumer service under /providers/{id}/.
func (p *Provider) Endpoints(host providers.EndpointHost) http.Handler {
	mux := http.NewServeMux()
	prefix := "/providers/" + p.id
	mux.HandleFunc("GET "+prefix+"/metadata", p.handleMetadata)
	mux.HandleFunc("GET "+prefix+"/authn/{tx}", func(w http.ResponseWriter, r *http.Request) { p.handleAuthn(w, r, host) })
	mux.HandleFunc("POST "+prefix+"/acs", func(w http.ResponseWriter, r *http.Request) { p.handleACS(w, r, host) })
	return mux
}

func (p *Provider) handleMetadata(w http.ResponseWriter, r *http.Request) {
	now := p.now()
	p.mu.Lock()
	if p.metadata == nil || now.After(p.mdUntil) {
		md, err := p.SPMetadata(now)
		if err != nil {
			p.mu.Unlock()
			p.logger.ErrorContext(r.Context(), "eidas: SP metadata", "provider", p.id, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		// Re-signed when half its validity has passed.
		p.metadata, p.mdUntil = md, now.Add(p.s.MetadataValidity/2)
	}
	md := p.metadata
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(md)
}

// postPage is the data of the eidas_post template: an auto-submitting
// form (broker/ui/assets/form_post.js) with a button for browsers
// without script.
type postPage struct {
	Action    string
	ToNode    bool
	Simulator bool
	Fields    []postField
}

type postField struct{ Name, Value string }

// handleAuthn posts the login's signed AuthnRequest to the node. The
// nonce of the state binds the URL to the login.
func (p *Provider) handleAuthn(w http.ResponseWriter, r *http.Request, host providers.EndpointHost) {
	web.NoStore(w)
	tx := r.PathValue("tx")
	req, raw, err := host.Pending(r.Context(), p.id, tx)
	var st state
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil || st.Nonce == "" || subtle.ConstantTimeCompare([]byte(st.Nonce), []byte(r.URL.Query().Get("k"))) != 1 {
		host.Audit(r.Context(), "browser", "eidas.authn", tx, store.OutcomeDenied, "unknown login or nonce", nil)
		http.Error(w, "unknown or expired login", http.StatusNotFound)
		return
	}
	lang := req.Lang
	if lang == "" {
		lang = host.Lang(r)
	}
	host.Render(w, r, http.StatusOK, "eidas_post", lang, postPage{Action: st.SSOURL, ToNode: true, Simulator: p.s.Simulator,
		Fields: []postField{{"SAMLRequest", b64(st.Request)}, {"RelayState", tx}}})
}

// handleACS receives the node's cross-site POST (no login cookie comes
// with it: SameSite=Lax) and relays the response with a same-origin POST
// to the login's callback, where Complete validates it. It only finds
// the login; it trusts nothing in the response.
func (p *Provider) handleACS(w http.ResponseWriter, r *http.Request, host providers.EndpointHost) {
	web.NoStore(w)
	r.Body = http.MaxBytesReader(w, r.Body, maxResponseBytes+4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tx := r.PostForm.Get("RelayState")
	resp := r.PostForm.Get("SAMLResponse")
	req, _, err := host.Pending(r.Context(), p.id, tx)
	if err != nil || resp == "" {
		reason := "unknown login"
		if err == nil {
			reason = "no SAMLResponse"
		}
		host.Audit(r.Context(), "eidas-node", "eidas.acs", tx, store.OutcomeDenied, reason, nil)
		lang := host.Lang(r)
		host.Render(w, r, http.StatusBadRequest, "error", lang, struct{ Message, RequestID string }{
			Message: host.Text(lang, "eidas.acs.unknown"), RequestID: web.RequestID(r.Context())})
		return
	}
	lang := req.Lang
	if lang == "" {
		lang = host.Lang(r)
	}
	host.Render(w, r, http.StatusOK, "eidas_post", lang, postPage{Action: req.CallbackURL, Simulator: p.s.Simulator,
		Fields: []postField{{"SAMLResponse", resp}, {"RelayState", tx}}})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
