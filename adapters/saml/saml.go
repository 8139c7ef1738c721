// Package saml is the SAML 2.0 Identity Provider front door, on
// github.com/crewjam/saml: IdP metadata, the service-provider registry from
// configuration, and SP-initiated SSO over the HTTP-Redirect and HTTP-POST
// bindings, answered through the broker's login flow.
//
// The request checks (signature, Destination, IssueInstant, issuer, ACS
// from metadata) are crewjam's; this adapter adds replay protection in the
// store, the mapping of RequestedAuthnContext to the broker's levels, the
// per-SP NameID policy, SAML error statuses for refusals it can answer at
// a registered ACS, and encryption of assertions for SPs with an
// encryption key (AES-256-GCM unless the SP lists only CBC).
//
// The signing certificate is a self-signed X.509 certificate over the
// broker's active RS256 key, derived on demand (deterministic validity,
// serial from the key id), not a certificate kept in the store; the next
// RS256 key is announced in the metadata before it signs (announced).
// Single logout is in slo.go, metadata URLs in mdurl.go, IdP-initiated
// login in idpinit.go, the SessionIndex in sessionindex.go.
package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
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
	"sync/atomic"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
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
	// OnLogout, optional, hears of sessions a SAML logout ended (the OIDC
	// back-channel logout of the session's relying parties).
	OnLogout func(*store.Session)
	// SessionKey (32 bytes or more, secret, the same in every replica and
	// across restarts) seals the session's store key into the SessionIndex
	// (sessionindex.go), so that a signed LogoutRequest that arrives
	// without the session cookie still names its session.
	SessionKey []byte
}

// IdP is the SAML Identity Provider.
type IdP struct {
	o   Options
	sps map[string]*serviceProvider // by entity id
	ix  sessionIndexer

	mu    sync.Mutex
	certs map[string]*x509.Certificate // by key id
}

type serviceProvider struct {
	rpID     string
	entityID string
	formats  []string // name_id_formats, the first is the default
	cfg      *config.SAML
	// cur is the metadata in use; nil while a metadata_url SP has none
	// (never fetched, or the last good copy is past its validUntil).
	cur atomic.Pointer[crewsaml.EntityDescriptor]
	// remote is set for metadata_url SPs (mdurl.go).
	remote *remoteMetadata
}

// metadata is the SP's current metadata, nil when there is none.
func (sp *serviceProvider) metadata() *crewsaml.EntityDescriptor { return sp.cur.Load() }

// adopt makes md the SP's metadata, with the registration's settings
// applied (require_signed_requests).
func (sp *serviceProvider) adopt(md *crewsaml.EntityDescriptor) {
	if sp.cfg.RequireSignedRequests {
		// crewjam then refuses unsigned requests from this SP.
		yes := true
		for i := range md.SPSSODescriptors {
			md.SPSSODescriptors[i].AuthnRequestsSigned = &yes
		}
	}
	sp.cur.Store(md)
}

// New builds the IdP and its service-provider registry.
func New(o Options) (*IdP, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ix, err := newSessionIndexer(o.SessionKey)
	if err != nil {
		return nil, err
	}
	p := &IdP{o: o, sps: map[string]*serviceProvider{}, certs: map[string]*x509.Certificate{}, ix: ix}
	for _, rp := range o.RelyingParties {
		if rp.Protocol != Protocol || rp.SAML == nil {
			continue
		}
		formats := rp.SAML.NameIDFormats
		if len(formats) == 0 {
			formats = []string{config.NameIDPersistent}
		}
		sp := &serviceProvider{rpID: rp.ID, entityID: rp.SAML.EntityID, formats: formats, cfg: rp.SAML}
		if _, dup := p.sps[sp.entityID]; dup {
			return nil, fmt.Errorf("saml: entity id %q registered twice", sp.entityID)
		}
		if rp.SAML.MetadataURL != "" {
			r, err := newRemoteMetadata(rp.SAML)
			if err != nil {
				return nil, fmt.Errorf("saml: relying party %s: %w", rp.ID, err)
			}
			sp.remote = r
		} else {
			md, err := spMetadata(rp.SAML)
			if err != nil {
				return nil, fmt.Errorf("saml: relying party %s: %w", rp.ID, err)
			}
			sp.adopt(md)
		}
		p.sps[sp.entityID] = sp
	}
	// The first fetch of metadata_url SPs, before the first request.
	for _, sp := range p.sps {
		if sp.remote != nil {
			p.refresh(context.Background(), sp)
		}
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
	return md, checkACS(md)
}

// checkACS: every ACS location must be an http(s) URL, and there must be
// one.
func checkACS(md *crewsaml.EntityDescriptor) error {
	n := 0
	for _, sso := range md.SPSSODescriptors {
		for _, acs := range sso.AssertionConsumerServices {
			u, err := url.Parse(acs.Location)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("assertion consumer service %q: not an http(s) URL", acs.Location)
			}
			n++
		}
	}
	if n == 0 {
		return errors.New("no assertion consumer service")
	}
	return nil
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
	mux.HandleFunc("GET "+PathSLO, p.handleSLO)
	mux.HandleFunc("POST "+PathSLO, p.handleSLO)
	mux.HandleFunc("GET "+PathIDPInitiated, p.handleIDPInitiated)
}

// CrossOriginBypass are the patterns service providers post to across sites.
func CrossOriginBypass() []string { return []string{"POST " + PathSSO, "POST " + PathSLO} }

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
	c, err := p.selfSigned(s)
	if err != nil {
		return nil, nil, err
	}
	return s, c, nil
}

// selfSigned is the certificate of a key: self-signed, valid from
// 2000-01-01 to 9999-12-31, serial and subject from the key id. It is the
// same for the same key (RSA PKCS #1 v1.5 signatures are deterministic),
// in every replica and before and after the key becomes active.
func (p *IdP) selfSigned(s *keys.Signer) (*x509.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.certs[s.KID]; c != nil {
		return c, nil
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
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p.certs[s.KID] = c
	return c, nil
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
		Signer:                    s.Key,
		Certificate:               cert,
		ExtraCertificates:         p.announced(),
		MetadataURL:               endpoint(base, PathMetadata),
		SSOURL:                    endpoint(base, PathSSO),
		Logger:                    slog.NewLogLogger(p.o.Logger.Handler(), slog.LevelInfo),
		LogoutURL:                 endpoint(base, PathSLO),
		LogoutBindings:            []string{crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding},
		ReplayCache:               replayCache{p.o.Store},
		LogoutRequestFormTemplate: logoutRequestFormTemplate,
		LogoutCompleteTemplate:    logoutCompleteTemplate,
		ServiceProviderProvider:   p,
		SessionProvider:           p,
		SignatureMethod:           dsig.RSASHA256SignatureMethod,
		NameIDFormats: []crewsaml.NameIDFormat{crewsaml.PersistentNameIDFormat, crewsaml.TransientNameIDFormat,
			crewsaml.EmailAddressNameIDFormat},
		SignMetadata:                 true,
		RejectSHA1Signatures:         true,
		OnError:                      p.onError,
		ResponseWriter:               responseWriter{},
		ResponseFormTemplate:         postFormTemplate,
		EnforceRequestedAuthnContext: true,
		AuthnContextClassStrengths:   classStrengths,
		EnforceNameIDPolicy:          true,
	}, nil
}

// classStrengths rank the eIDAS and BSI level URIs for crewjam's check of
// RequestedAuthnContext, which runs after the adapter chose the class it
// asserts (assertedClass), as a second line.
var classStrengths = map[string]int{
	loa.URILow: 1, loa.URISubstantial: 2, loa.URIHigh: 3,
	loa.URIBSINormal: 1, loa.URIBSISubstantiell: 2, loa.URIBSIHoch: 3,
}

// encrypter encrypts assertions for an SP with an encryption key:
// RSA-OAEP key transport (rsa-oaep-mgf1p, SHA-256 digest) and AES-256-GCM
// when the key's EncryptionMethod list names AES-GCM, else AES-256-CBC:
// an SP that does not say it can decrypt GCM (XML Encryption 1.1) gets
// CBC, which every XML Encryption 1.0 implementation reads (mod_auth_mellon
// through Lasso fails on GCM and lists nothing).
func encrypter(methods []crewsaml.EncryptionMethod) xmlenc.Encrypter {
	e := xmlenc.OAEP()
	e.DigestMethod = &xmlenc.SHA1
	e.BlockCipher = xmlenc.AES256CBC
	for _, m := range methods {
		switch m.Algorithm {
		case "http://www.w3.org/2009/xmlenc11#aes256-gcm", "http://www.w3.org/2009/xmlenc11#aes128-gcm", "http://www.w3.org/2009/xmlenc11#aes192-gcm":
			e.BlockCipher = xmlenc.AES256GCM
			e.DigestMethod = &xmlenc.SHA256
		}
	}
	return e
}

// encryptionMethods are the EncryptionMethods of the SP's encryption key
// (use="encryption", else a key without use), as crewjam picks the key.
func encryptionMethods(sso *crewsaml.SPSSODescriptor) []crewsaml.EncryptionMethod {
	for _, use := range []string{"encryption", ""} {
		for _, kd := range sso.KeyDescriptors {
			if kd.Use == use && len(kd.KeyInfo.X509Data.X509Certificates) > 0 {
				return kd.EncryptionMethods
			}
		}
	}
	return nil
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

// handleSSO is crewjam's ServeSSO with the adapter's refusals: a request
// that fails a check is answered with a SAML error Response at an ACS from
// the SP's metadata when the request is otherwise sound (known SP, valid
// signature, registered ACS), else with a broker error page (400).
func (p *IdP) handleSSO(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	req, err := crewsaml.NewIdpAuthnRequest(idp, r)
	if err != nil {
		p.onError(w, r, http.StatusBadRequest, fmt.Errorf("parse request: %w", err))
		return
	}
	req.Now = p.o.Now()
	if err := noDTD(req.RequestBuffer); err != nil {
		p.onError(w, r, http.StatusBadRequest, err)
		return
	}
	if err := req.Validate(); err != nil {
		if sound := p.soundDespite(idp, r, req, err); sound != nil {
			p.sendStatus(w, r, idp, sound, &crewsaml.StatusError{
				TopLevel: crewsaml.StatusRequester, SecondLevel: crewsaml.StatusRequestDenied, Message: refusalMessage(err)})
			return
		}
		p.onError(w, r, http.StatusBadRequest, fmt.Errorf("validate request: %w", err))
		return
	}
	p.start(w, r, idp, req)
}

// maxRequestBytes bounds a POSTed AuthnRequest or LogoutRequest form.
const maxRequestBytes = 256 << 10

// soundDespite validates a request that failed only on its IssueInstant
// (stale or from the future) or its Destination again, with those two
// checks out of the way: when everything else holds, the request comes
// from a registered SP (its signature checked when it signs) and names an
// ACS in its metadata, and it gets a Requester status there. Otherwise nil.
func (p *IdP) soundDespite(idp *crewsaml.IdentityProvider, r *http.Request, req *crewsaml.IdpAuthnRequest, err error) *crewsaml.IdpAuthnRequest {
	if !errors.Is(err, crewsaml.ErrExpired) && !errors.Is(err, crewsaml.ErrNotYetValid) && !errors.Is(err, crewsaml.ErrDestinationMismatch) {
		return nil
	}
	lenient := *idp
	if d, perr := url.Parse(req.Request.Destination); perr == nil && req.Request.Destination != "" {
		lenient.SSOURL = *d
	}
	again, err := crewsaml.NewIdpAuthnRequest(&lenient, r)
	if err != nil {
		return nil
	}
	// The request as of its own IssueInstant (clamped: Validate reads the
	// time before it knows the request, so parse it first).
	var head struct {
		IssueInstant time.Time `xml:",attr"`
	}
	if xml.Unmarshal(again.RequestBuffer, &head) != nil {
		return nil
	}
	again.Now = head.IssueInstant
	if again.Validate() != nil {
		return nil
	}
	again.IDP = idp
	again.Now = p.o.Now()
	return again
}

func refusalMessage(err error) string {
	switch {
	case errors.Is(err, crewsaml.ErrExpired):
		return "the request has expired"
	case errors.Is(err, crewsaml.ErrNotYetValid):
		return "the request is not yet valid"
	case errors.Is(err, crewsaml.ErrDestinationMismatch):
		return "the request was not addressed to this identity provider"
	}
	return "the request was refused"
}

// sendStatus answers req with an error Response at its ACS.
func (p *IdP) sendStatus(w http.ResponseWriter, r *http.Request, idp *crewsaml.IdentityProvider, req *crewsaml.IdpAuthnRequest, se *crewsaml.StatusError) {
	p.o.Logger.InfoContext(r.Context(), "saml request answered with an error status", "status", se.Error(),
		"request_id", web.RequestID(r.Context()))
	if err := idp.SendErrorResponse(w, req, se); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
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
	if sp == nil || sp.metadata() == nil {
		return nil, os.ErrNotExist
	}
	return sp.metadata(), nil
}

// storedRequest is the AuthnRequest as it arrived, kept in the login
// transaction and validated again on Resume.
type storedRequest struct {
	Method   string `json:"method"`
	RawQuery string `json:"query,omitempty"`
	Form     string `json:"form,omitempty"`
	// IdP-initiated login (Method methodIDPInitiated): the SP's entity
	// id and the RelayState checked when it started (idpinit.go).
	SP         string `json:"sp,omitempty"`
	RelayState string `json:"relay_state,omitempty"`
}

// GetSession implements crewjam's SessionProvider; the adapter runs the
// SSO endpoint itself (handleSSO), so crewjam never asks.
func (p *IdP) GetSession(w http.ResponseWriter, r *http.Request, _ *crewsaml.IdpAuthnRequest) *crewsaml.Session {
	p.onError(w, r, http.StatusInternalServerError, errors.New("saml: unexpected GetSession"))
	return nil
}

// start takes a valid request (signature, Destination, IssueInstant,
// issuer, ACS from metadata): its ID is used up in the store, what it asks
// is checked against the SP's registration, and the browser goes to the
// broker's login flow.
func (p *IdP) start(w http.ResponseWriter, r *http.Request, idp *crewsaml.IdentityProvider, req *crewsaml.IdpAuthnRequest) {
	ctx := r.Context()
	sp := p.sps[req.ServiceProviderMetadata.EntityID]
	if sp == nil {
		p.onError(w, r, http.StatusBadRequest, crewsaml.ErrUnknownServiceProvider)
		return
	}
	exp := req.Request.IssueInstant.Add(crewsaml.MaxIssueDelay + crewsaml.MaxClockSkew)
	if err := p.o.Store.Replay().Use(ctx, ReplayNamespace, replayKey(req), exp); err != nil {
		if errors.Is(err, store.ErrConflict) {
			p.sendStatus(w, r, idp, req, &crewsaml.StatusError{TopLevel: crewsaml.StatusRequester,
				SecondLevel: crewsaml.StatusRequestDenied, Message: "the request was answered before"})
		} else {
			p.onError(w, r, http.StatusInternalServerError, err)
		}
		return
	}
	if _, se := sp.nameIDFormat(req.Request.NameIDPolicy); se != nil {
		p.sendStatus(w, r, idp, req, se)
		return
	}
	rp := p.rp(sp)
	rpMin, _ := loa.Parse(rp.MinLoA)
	minLoA, se := requestedLoA(req.Request.RequestedAuthnContext, rpMin)
	if se != nil {
		p.sendStatus(w, r, idp, req, se)
		return
	}
	sr := storedRequest{Method: r.Method}
	if r.Method == http.MethodGet {
		sr.RawQuery = r.URL.RawQuery
	} else {
		sr.Form = r.PostForm.Encode()
	}
	raw, _ := json.Marshal(sr)
	start := broker.StartRequest{Protocol: Protocol, RPID: sp.rpID, Request: raw, RequestedLoA: minLoA}
	force := req.Request.ForceAuthn != nil && *req.Request.ForceAuthn
	passive := req.Request.IsPassive != nil && *req.Request.IsPassive
	if force {
		start.Prompt = append(start.Prompt, "login")
	}
	if passive {
		// With ForceAuthn too nothing can satisfy it: NoPassive.
		start.Prompt = append(start.Prompt, "none")
	}
	if err := p.o.Broker.StartLogin(w, r, start); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
}

func (p *IdP) rp(sp *serviceProvider) *config.RelyingParty {
	for _, rp := range p.o.RelyingParties {
		if rp.ID == sp.rpID {
			return rp
		}
	}
	return &config.RelyingParty{ID: sp.rpID}
}

func replayKey(req *crewsaml.IdpAuthnRequest) string {
	issuer := ""
	if req.Request.Issuer != nil {
		issuer = req.Request.Issuer.Value
	}
	return issuer + " " + req.Request.ID
}

// nameIDFormat is the NameID format the SP gets for a NameIDPolicy: the
// SP's first format when the policy names none (or unspecified), else the
// named one if the SP's registration allows it; anything else is
// Requester/InvalidNameIDPolicy.
func (sp *serviceProvider) nameIDFormat(policy *crewsaml.NameIDPolicy) (string, *crewsaml.StatusError) {
	want := ""
	if policy != nil && policy.Format != nil {
		want = *policy.Format
	}
	var short string
	switch crewsaml.NameIDFormat(want) {
	case "", crewsaml.UnspecifiedNameIDFormat:
		return sp.formats[0], nil
	case crewsaml.PersistentNameIDFormat:
		short = config.NameIDPersistent
	case crewsaml.TransientNameIDFormat:
		short = config.NameIDTransient
	case crewsaml.EmailAddressNameIDFormat:
		short = config.NameIDEmail
	}
	if short == "" || !slices.Contains(sp.formats, short) {
		return "", &crewsaml.StatusError{TopLevel: crewsaml.StatusRequester, SecondLevel: crewsaml.StatusInvalidNameIDPolicy,
			Message: "the name identifier format is not available to this service provider"}
	}
	return short, nil
}

// requestedClass is an AuthnContextClassRef of a request the broker
// knows: an eIDAS or BSI level URI.
type requestedClass struct {
	uri   string
	level loa.Level
}

// requestedClasses are the known classes of a RequestedAuthnContext and
// its comparison ("exact" when omitted). A context that names classes but
// none the broker knows cannot be met: NoAuthnContext; an unknown
// comparison is Requester/RequestUnsupported.
func requestedClasses(rac *crewsaml.RequestedAuthnContext) (string, []requestedClass, *crewsaml.StatusError) {
	if rac == nil || len(rac.ClassRefs()) == 0 {
		return "", nil, nil
	}
	cmp := rac.Comparison
	switch cmp {
	case "":
		cmp = "exact"
	case "exact", "minimum", "maximum", "better":
	default:
		return "", nil, &crewsaml.StatusError{TopLevel: crewsaml.StatusRequester, SecondLevel: crewsaml.StatusRequestUnsupported,
			Message: "unknown comparison"}
	}
	var out []requestedClass
	for _, ref := range rac.ClassRefs() {
		ref = strings.TrimSpace(ref)
		if l, err := loa.Parse(ref); err == nil && strings.Contains(ref, "/") {
			out = append(out, requestedClass{uri: ref, level: l})
		}
	}
	if len(out) == 0 {
		return "", nil, noAuthnContext()
	}
	return cmp, out, nil
}

func noAuthnContext() *crewsaml.StatusError {
	return &crewsaml.StatusError{TopLevel: crewsaml.StatusResponder, SecondLevel: crewsaml.StatusNoAuthnContext,
		Message: "the requested authentication context cannot be satisfied"}
}

// requestedLoA is the lowest level that can answer a RequestedAuthnContext
// (eIDAS levels are cumulative: a login at high meets substantial and low):
// exact and minimum the lowest level named, better the next above it,
// maximum none (but the SP's own minimum must not exceed the highest
// level named). A context that cannot be met is NoAuthnContext at once.
func requestedLoA(rac *crewsaml.RequestedAuthnContext, rpMin loa.Level) (loa.Level, *crewsaml.StatusError) {
	cmp, classes, se := requestedClasses(rac)
	if se != nil || classes == nil {
		return loa.None, se
	}
	lo, hi := classes[0].level, classes[0].level
	for _, c := range classes {
		lo, hi = min(lo, c.level), max(hi, c.level)
	}
	switch cmp {
	case "better":
		if lo >= loa.High {
			return loa.None, noAuthnContext()
		}
		return lo + 1, nil
	case "maximum":
		if rpMin > hi {
			return loa.None, noAuthnContext()
		}
		return loa.None, nil
	default: // exact, minimum
		if cmp == "exact" && rpMin > hi {
			return loa.None, noAuthnContext()
		}
		return lo, nil
	}
}

// assertedClass is the AuthnContextClassRef the assertion carries for a
// login at reached: without a RequestedAuthnContext the eIDAS URI of the
// level; for exact the highest class named at or below the level (the URI
// as the SP wrote it); for maximum the level capped at the highest named;
// for minimum and better the level itself when it meets the request.
func assertedClass(rac *crewsaml.RequestedAuthnContext, reached loa.Level) (string, *crewsaml.StatusError) {
	cmp, classes, se := requestedClasses(rac)
	if se != nil {
		return "", se
	}
	if reached == loa.None {
		return "", noAuthnContext()
	}
	if classes == nil {
		return reached.URI(), nil
	}
	var best *requestedClass
	lo := classes[0].level
	for i, c := range classes {
		lo = min(lo, c.level)
		if c.level <= reached && (best == nil || c.level > best.level) {
			best = &classes[i]
		}
	}
	switch cmp {
	case "exact":
		if best != nil {
			return best.uri, nil
		}
	case "maximum":
		if best != nil {
			return best.level.URI(), nil
		}
		return reached.URI(), nil
	case "minimum":
		if reached >= lo {
			return reached.URI(), nil
		}
	case "better":
		if reached > lo {
			return reached.URI(), nil
		}
	}
	return "", noAuthnContext()
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
	idp, req, err := p.replay(r, tx)
	if err != nil {
		p.onError(w, r, http.StatusBadRequest, err)
		return
	}
	if ferr != nil && req.Request.ID == "" {
		// IdP-initiated: the SP asked for nothing, so the refusal is
		// shown here rather than sent to it.
		p.refusePage(w, r, http.StatusForbidden, "error.denied", fmt.Errorf("idp-initiated login to %s: %s", req.ServiceProviderMetadata.EntityID, ferr.Code))
		return
	}
	if ferr != nil {
		p.sendStatus(w, r, idp, req, flowStatus(ferr))
		return
	}
	sp := p.sps[req.ServiceProviderMetadata.EntityID]
	if sp == nil {
		p.onError(w, r, http.StatusBadRequest, crewsaml.ErrUnknownServiceProvider)
		return
	}
	session, se := p.session(sp, req, res)
	if se != nil {
		p.sendStatus(w, r, idp, req, se)
		return
	}
	if err := (crewsaml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		if errors.As(err, &se) {
			p.sendStatus(w, r, idp, req, se)
			return
		}
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	// Only the consented claims: crewjam would add empty attributes for
	// what the SP's metadata requests.
	req.Assertion.AttributeStatements = nil
	if len(session.CustomAttributes) > 0 {
		req.Assertion.AttributeStatements = []crewsaml.AttributeStatement{{Attributes: session.CustomAttributes}}
	}
	idp.AssertionEncrypter = encrypter(encryptionMethods(req.SPSSODescriptor))
	if err := idp.ResponseWriter.WriteResponse(w, req); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
}

func (p *IdP) replay(r *http.Request, tx *store.Transaction) (*crewsaml.IdentityProvider, *crewsaml.IdpAuthnRequest, error) {
	var sr storedRequest
	if err := json.Unmarshal(tx.Request, &sr); err != nil {
		return nil, nil, err
	}
	idp, err := p.idp()
	if err != nil {
		return nil, nil, err
	}
	if sr.Method == methodIDPInitiated {
		req, err := p.idpInitiatedRequest(r, idp, sr.SP, sr.RelayState)
		if err != nil {
			return nil, nil, err
		}
		return idp, req, nil
	}
	req, err := parseStored(r.Context(), idp, sr, tx.CreatedAt)
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

// session is what the assertion says: the NameID in the SP's format
// (persistent: the pairwise subject; transient: a value of this SSO
// session and SP; email: the released email), the class for the level reached, and the
// consented claims only as attributes.
func (p *IdP) session(sp *serviceProvider, req *crewsaml.IdpAuthnRequest, res *broker.Result) (*crewsaml.Session, *crewsaml.StatusError) {
	s := &crewsaml.Session{
		ID:         res.SessionID,
		CreateTime: res.AuthTime,
		Index:      p.ix.index(res.SessionID),
	}
	format, se := sp.nameIDFormat(req.Request.NameIDPolicy)
	if se != nil {
		return nil, se
	}
	switch format {
	case config.NameIDPersistent:
		s.NameID, s.NameIDFormat = res.Subject, string(crewsaml.PersistentNameIDFormat)
	case config.NameIDTransient:
		s.NameID, s.NameIDFormat = transientNameID(res.SessionID, sp.entityID), string(crewsaml.TransientNameIDFormat)
	case config.NameIDEmail:
		email, _ := res.Claims["email"].(string)
		if email == "" {
			return nil, &crewsaml.StatusError{TopLevel: crewsaml.StatusRequester, SecondLevel: crewsaml.StatusInvalidNameIDPolicy,
				Message: "no email address was released"}
		}
		s.NameID, s.NameIDFormat = email, string(crewsaml.EmailAddressNameIDFormat)
	}
	l, _ := loa.Parse(res.ACR)
	class, se := assertedClass(req.Request.RequestedAuthnContext, l)
	if se != nil {
		return nil, se
	}
	s.AuthnContextClassRef = class
	s.CustomAttributes = Attributes(res.Claims)
	return s, nil
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

// endpoint is base with path p appended. url.JoinPath would leave the
// path without its leading slash when base has none ("saml/slo"), which
// String hides but a cookie path (the logout state) does not.
func endpoint(base *url.URL, p string) url.URL {
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + p
	u.RawPath = ""
	return u
}

// base is the issuer URL (validated by the configuration).
func (p *IdP) base() *url.URL {
	u, err := url.Parse(p.o.Issuer)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// announced is the certificate of the next RS256 key, published beside
// the active one so that SPs that refresh the metadata trust it before it
// signs (keys.Rotate makes a key active only after a rotation period as
// next). It is byte for byte the certificate the key signs with once
// active (selfSigned), as signature checkers match certificates exactly.
func (p *IdP) announced() []*x509.Certificate {
	next, ok := p.o.Keys.NextSigner(keys.RS256)
	if !ok {
		return nil
	}
	if _, isRSA := next.Key.Public().(*rsa.PublicKey); !isRSA {
		return nil
	}
	c, err := p.selfSigned(next)
	if err != nil {
		p.o.Logger.Error("saml: certificate for the next key", "kid", next.KID, "err", err)
		return nil
	}
	return []*x509.Certificate{c}
}
