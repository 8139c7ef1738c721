// Package saml is the SAML 2.0 Identity Provider front door, on
// github.com/crewjam/saml: IdP metadata, the service-provider registry from
// configuration, and SP-initiated SSO over the HTTP-Redirect and HTTP-POST
// bindings, answered through the broker's login flow.
//
// First slice: the signing certificate is a self-signed X.509 certificate
// over the broker's active RS256 key, derived on demand (deterministic
// validity, serial from the key id), not a certificate kept in the store;
// rotation is not yet announced in metadata before use. Encryption, SLO,
// metadata URLs and IdP-initiated login are later work.
package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// Protocol is the adapter's name in login transactions.
const Protocol = "saml"

// ReplayNamespace is the store.Replay namespace of answered AuthnRequest IDs.
const ReplayNamespace = "saml_authn_request"

// Paths of the IdP.
const (
	PathMetadata = "/saml/metadata"
	PathSSO      = "/saml/sso"
)

// Options wire the IdP. Every field is required unless said otherwise.
type Options struct {
	Issuer         string
	Broker         *broker.Broker
	Store          store.Store
	Keys           *keys.Manager
	UI             *ui.UI
	RelyingParties []*config.RelyingParty // the saml ones are used
	Now            func() time.Time       // optional
	Logger         *slog.Logger           // optional
}

// IdP is the SAML Identity Provider.
type IdP struct {
	o   Options
	sps map[string]*serviceProvider // by entity id

	mu    sync.Mutex
	certs map[string]*x509.Certificate // by key id
}

type serviceProvider struct {
	rpID string
	md   *crewsaml.EntityDescriptor
}

// New builds the IdP and its service-provider registry.
func New(o Options) (*IdP, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &IdP{o: o, sps: map[string]*serviceProvider{}, certs: map[string]*x509.Certificate{}}
	for _, rp := range o.RelyingParties {
		if rp.Protocol != Protocol || rp.SAML == nil {
			continue
		}
		md, err := spMetadata(rp.SAML)
		if err != nil {
			return nil, fmt.Errorf("saml: relying party %s: %w", rp.ID, err)
		}
		if _, dup := p.sps[md.EntityID]; dup {
			return nil, fmt.Errorf("saml: entity id %q registered twice", md.EntityID)
		}
		p.sps[md.EntityID] = &serviceProvider{rpID: rp.ID, md: md}
	}
	return p, nil
}

// spMetadata is the SP's metadata: the file when given, else built from
// entity_id and acs_urls (HTTP-POST, in order). Every ACS location must be
// http(s) with an HTTP-POST binding (crewjam CVE-2023-45683).
func spMetadata(c *config.SAML) (*crewsaml.EntityDescriptor, error) {
	var md *crewsaml.EntityDescriptor
	if c.MetadataFile != "" {
		raw, err := os.ReadFile(c.MetadataFile)
		if err != nil {
			return nil, err
		}
		md, err = ParseMetadata(raw)
		if err != nil {
			return nil, err
		}
		if md.EntityID != c.EntityID {
			return nil, fmt.Errorf("metadata entity id %q is not entity_id %q", md.EntityID, c.EntityID)
		}
	} else {
		md = &crewsaml.EntityDescriptor{EntityID: c.EntityID, SPSSODescriptors: []crewsaml.SPSSODescriptor{{}}}
		sso := &md.SPSSODescriptors[0]
		sso.ProtocolSupportEnumeration = "urn:oasis:names:tc:SAML:2.0:protocol"
		for i, u := range c.ACSURLs {
			sso.AssertionConsumerServices = append(sso.AssertionConsumerServices, crewsaml.IndexedEndpoint{
				Binding: crewsaml.HTTPPostBinding, Location: u, Index: i,
			})
		}
	}
	n := 0
	for _, sso := range md.SPSSODescriptors {
		for _, acs := range sso.AssertionConsumerServices {
			u, err := url.Parse(acs.Location)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, fmt.Errorf("assertion consumer service %q: not an http(s) URL", acs.Location)
			}
			n++
		}
	}
	if n == 0 {
		return nil, errors.New("no assertion consumer service")
	}
	return md, nil
}

// noDTD refuses a document type declaration (SECURITY.md §2: XXE, entity
// expansion).
func noDTD(raw []byte) error {
	if bytes.Contains(raw, []byte("<!DOCTYPE")) || bytes.Contains(raw, []byte("<!ENTITY")) {
		return errors.New("saml: DOCTYPE not allowed")
	}
	return nil
}

// ParseMetadata parses SP metadata: an EntityDescriptor with at least one
// SPSSODescriptor. A DOCTYPE is refused.
func ParseMetadata(raw []byte) (*crewsaml.EntityDescriptor, error) {
	if err := noDTD(raw); err != nil {
		return nil, err
	}
	var md crewsaml.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if md.EntityID == "" || len(md.SPSSODescriptors) == 0 {
		return nil, errors.New("metadata: no entityID or SPSSODescriptor")
	}
	return &md, nil
}

// Protocol implements broker.Adapter.
func (p *IdP) Protocol() string { return Protocol }

// Routes adds the IdP endpoints.
func (p *IdP) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathMetadata, p.handleMetadata)
	mux.HandleFunc("GET "+PathSSO, p.handleSSO)
	mux.HandleFunc("POST "+PathSSO, p.handleSSO)
}

// CrossOriginBypass are the patterns service providers post to across sites.
func CrossOriginBypass() []string { return []string{"POST " + PathSSO} }

// Certificate returns the signing certificate: self-signed over the active
// RS256 key, valid from 2000-01-01 to 9999-12-31 (RFC 5280 §4.1.2.5: no
// well-defined expiration; SAML metadata keys are trusted as keys), serial
// and subject from the key id. It is the same for the same key.
func (p *IdP) Certificate() (*keys.Signer, *x509.Certificate, error) {
	s, err := p.o.Keys.Signer(keys.RS256)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := s.Key.Public().(*rsa.PublicKey); !ok {
		return nil, nil, errors.New("saml: RS256 key is not RSA")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.certs[s.KID]; c != nil {
		return s, c, nil
	}
	sum := sha256.Sum256([]byte(s.KID))
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]),
		Subject:               pkix.Name{CommonName: "Trustbroker SAML signing " + s.KID},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Key.Public(), s.Key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	p.certs[s.KID] = c
	return s, c, nil
}

// idp is crewjam's IdentityProvider over the current signing key.
func (p *IdP) idp() (*crewsaml.IdentityProvider, error) {
	s, cert, err := p.Certificate()
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(p.o.Issuer)
	if err != nil {
		return nil, err
	}
	return &crewsaml.IdentityProvider{
		Signer:                  s.Key,
		Certificate:             cert,
		MetadataURL:             *base.JoinPath(PathMetadata),
		SSOURL:                  *base.JoinPath(PathSSO),
		ServiceProviderProvider: p,
		SessionProvider:         p,
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		NameIDFormats:           []crewsaml.NameIDFormat{crewsaml.PersistentNameIDFormat},
		SignMetadata:            true,
		RejectSHA1Signatures:    true,
		OnError:                 p.onError,
		ResponseWriter:          responseWriter{},
		ResponseFormTemplate:    postFormTemplate,
	}, nil
}

// postFormTemplate answers over HTTP-POST without inline script: the
// broker's CSP allows scripts only from itself, so crewjam's default form
// (two inline scripts) would stop at its Continue button.
var postFormTemplate = template.Must(template.New("saml-post-form").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trustbroker</title>
<script src="/assets/form_post.js" defer></script></head>
<body><form method="post" action="{{.URL}}" id="SAMLResponseForm">
<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<noscript><button type="submit">Continue / Weiter</button></noscript>
</form></body></html>`))

// responseWriter signs the Response as well as the assertion.
type responseWriter struct{}

func (responseWriter) WriteResponse(w http.ResponseWriter, req *crewsaml.IdpAuthnRequest) error {
	web.NoStore(w)
	return req.WriteResponse(w)
}

func (p *IdP) handleMetadata(w http.ResponseWriter, r *http.Request) {
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	idp.ServeMetadata(w, r)
}

func (p *IdP) handleSSO(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	idp.ServeSSO(w, r)
}

// onError answers on a broker page, never at an ACS the request named.
func (p *IdP) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		p.o.Logger.ErrorContext(r.Context(), "saml", "err", err, "request_id", web.RequestID(r.Context()))
	} else {
		p.o.Logger.InfoContext(r.Context(), "saml request refused", "err", err, "request_id", web.RequestID(r.Context()))
	}
	lang := ui.Lang(r)
	p.o.UI.Render(w, r, status, "error", lang, struct{ Message, RequestID string }{
		p.o.UI.Text(lang, "error.saml_request"), web.RequestID(r.Context())})
}

// GetServiceProvider implements crewjam's ServiceProviderProvider.
func (p *IdP) GetServiceProvider(_ *http.Request, id string) (*crewsaml.EntityDescriptor, error) {
	sp := p.sps[id]
	if sp == nil {
		return nil, os.ErrNotExist
	}
	return sp.md, nil
}

// storedRequest is the AuthnRequest as it arrived, kept in the login
// transaction and validated again on Resume.
type storedRequest struct {
	Method   string `json:"method"`
	RawQuery string `json:"query,omitempty"`
	Form     string `json:"form,omitempty"`
}

// GetSession implements crewjam's SessionProvider for the first pass: the
// request is valid (signature, Destination, IssueInstant, issuer, ACS from
// metadata); its ID is used up in the store, and the browser goes to the
// broker's login flow. It always returns nil.
func (p *IdP) GetSession(w http.ResponseWriter, r *http.Request, req *crewsaml.IdpAuthnRequest) *crewsaml.Session {
	ctx := r.Context()
	sp := p.sps[req.ServiceProviderMetadata.EntityID]
	if sp == nil {
		p.onError(w, r, http.StatusBadRequest, crewsaml.ErrUnknownServiceProvider)
		return nil
	}
	if err := noDTD(req.RequestBuffer); err != nil {
		p.onError(w, r, http.StatusBadRequest, err)
		return nil
	}
	exp := req.Request.IssueInstant.Add(crewsaml.MaxIssueDelay + crewsaml.MaxClockSkew)
	if err := p.o.Store.Replay().Use(ctx, ReplayNamespace, replayKey(req), exp); err != nil {
		if errors.Is(err, store.ErrConflict) {
			p.onError(w, r, http.StatusBadRequest, fmt.Errorf("authn request %q answered before", req.Request.ID))
		} else {
			p.onError(w, r, http.StatusInternalServerError, err)
		}
		return nil
	}
	sr := storedRequest{Method: r.Method}
	if r.Method == http.MethodGet {
		sr.RawQuery = r.URL.RawQuery
	} else {
		sr.Form = r.PostForm.Encode()
	}
	raw, _ := json.Marshal(sr)
	start := broker.StartRequest{
		Protocol:     Protocol,
		RPID:         sp.rpID,
		Request:      raw,
		RequestedLoA: requestedLoA(req.Request.RequestedAuthnContext),
	}
	if req.Request.ForceAuthn != nil && *req.Request.ForceAuthn {
		start.Prompt = append(start.Prompt, "login")
	}
	if req.Request.IsPassive != nil && *req.Request.IsPassive {
		start.Prompt = []string{"none"}
	}
	if err := p.o.Broker.StartLogin(w, r, start); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
	return nil
}

func replayKey(req *crewsaml.IdpAuthnRequest) string {
	issuer := ""
	if req.Request.Issuer != nil {
		issuer = req.Request.Issuer.Value
	}
	return issuer + " " + req.Request.ID
}

// requestedLoA maps the eIDAS (or BSI) AuthnContextClassRefs of a request to
// the lowest level they name; the broker answers with that level or higher,
// the "minimum" comparison. Unknown classes are ignored.
func requestedLoA(rac *crewsaml.RequestedAuthnContext) loa.Level {
	if rac == nil {
		return loa.None
	}
	lvl := loa.None
	for _, ref := range strings.Fields(rac.AuthnContextClassRef) {
		if l, err := loa.Parse(ref); err == nil && (lvl == loa.None || l < lvl) {
			lvl = l
		}
	}
	return lvl
}

// flowStatus maps the broker's outcomes to SAML status codes.
func flowStatus(ferr *broker.FlowError) *crewsaml.StatusError {
	se := &crewsaml.StatusError{TopLevel: crewsaml.StatusResponder}
	switch ferr.Code {
	case "access_denied", "consent_required":
		se.SecondLevel = crewsaml.StatusRequestDenied
	case "login_required", "interaction_required":
		se.SecondLevel = crewsaml.StatusNoPassive
	}
	return se
}

// Resume answers the service provider when the login flow has ended. The
// stored request is parsed and validated again, dated to when it arrived
// (IssueInstant freshness); the assertion is dated now.
func (p *IdP) Resume(w http.ResponseWriter, r *http.Request, tx *store.Transaction, res *broker.Result, ferr *broker.FlowError) {
	web.NoStore(w)
	idp, req, err := p.replay(r.Context(), tx)
	if err != nil {
		p.onError(w, r, http.StatusBadRequest, err)
		return
	}
	if ferr != nil {
		if err := idp.SendErrorResponse(w, req, flowStatus(ferr)); err != nil {
			p.onError(w, r, http.StatusInternalServerError, err)
		}
		return
	}
	if err := (crewsaml.DefaultAssertionMaker{}).MakeAssertion(req, p.session(res)); err != nil {
		var se *crewsaml.StatusError
		if errors.As(err, &se) {
			if err := idp.SendErrorResponse(w, req, se); err != nil {
				p.onError(w, r, http.StatusInternalServerError, err)
			}
			return
		}
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	if err := idp.ResponseWriter.WriteResponse(w, req); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
}

func (p *IdP) replay(ctx context.Context, tx *store.Transaction) (*crewsaml.IdentityProvider, *crewsaml.IdpAuthnRequest, error) {
	var sr storedRequest
	if err := json.Unmarshal(tx.Request, &sr); err != nil {
		return nil, nil, err
	}
	idp, err := p.idp()
	if err != nil {
		return nil, nil, err
	}
	req, err := parseStored(ctx, idp, sr, tx.CreatedAt)
	if err != nil {
		return nil, nil, err
	}
	req.Now = p.o.Now()
	return idp, req, nil
}

// parseStored parses and validates a stored AuthnRequest as of at, the
// time it arrived: binding, signature, Destination, IssueInstant, issuer
// and ACS from metadata, all again.
func parseStored(ctx context.Context, idp *crewsaml.IdentityProvider, sr storedRequest, at time.Time) (*crewsaml.IdpAuthnRequest, error) {
	var hr *http.Request
	var err error
	switch sr.Method {
	case http.MethodGet:
		hr, err = http.NewRequestWithContext(ctx, http.MethodGet, idp.SSOURL.String()+"?"+sr.RawQuery, nil)
	case http.MethodPost:
		hr, err = http.NewRequestWithContext(ctx, http.MethodPost, idp.SSOURL.String(), strings.NewReader(sr.Form))
		if hr != nil {
			hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	default:
		err = fmt.Errorf("stored request: method %q", sr.Method)
	}
	if err != nil {
		return nil, err
	}
	req, err := crewsaml.NewIdpAuthnRequest(idp, hr)
	if err != nil {
		return nil, err
	}
	if err := noDTD(req.RequestBuffer); err != nil {
		return nil, err
	}
	req.Now = at
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return req, nil
}

// session is what the assertion says: the pairwise subject as persistent
// NameID, the level reached as AuthnContextClassRef, and the consented
// claims only as attributes.
func (p *IdP) session(res *broker.Result) *crewsaml.Session {
	idx := sha256.Sum256([]byte("saml-session-index\x00" + res.SessionID))
	s := &crewsaml.Session{
		ID:           res.SessionID,
		CreateTime:   res.AuthTime,
		Index:        "_" + hex.EncodeToString(idx[:16]),
		NameID:       res.Subject,
		NameIDFormat: string(crewsaml.PersistentNameIDFormat),
	}
	if l, err := loa.Parse(res.ACR); err == nil {
		s.AuthnContextClassRef = l.URI()
	}
	s.CustomAttributes = Attributes(res.Claims)
	return s
}

// Attributes turns claims into SAML attributes (basic name format, sorted
// by name). Lists become multi-valued attributes; objects are JSON.
func Attributes(claims map[string]any) []crewsaml.Attribute {
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []crewsaml.Attribute
	for _, n := range names {
		a := crewsaml.Attribute{FriendlyName: n, Name: n, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
		vals := []any{claims[n]}
		if l, ok := claims[n].([]any); ok {
			vals = l
		}
		for _, v := range vals {
			a.Values = append(a.Values, crewsaml.AttributeValue{Type: "xs:string", Value: attrString(v)})
		}
		out = append(out, a)
	}
	return out
}

func attrString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case bool, float64, int, int64, json.Number:
		return fmt.Sprint(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
