package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// handleAuthorize validates the authorization request and hands the
// browser to the broker's login flow (OIDC Core §3.1.2).
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web.NoStore(w)
	refused := refuseRequestObject(r, false)
	ar, err := p.f.NewAuthorizeRequest(ctx, r)
	if refused != nil && ar != nil && ar.IsRedirectURIValid() {
		// The client and its redirect URI are known: it learns that its
		// request object is not supported (OIDC Core §6.3), rather than
		// what is missing from the parameters outside it.
		err = refused
	}
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := p.checkAuthorize(r, ar, false); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	form := ar.GetRequestForm()
	cr, _ := parseClaimsParam(form.Get("claims")) // validated in checkAuthorize
	c := p.client(ar)
	var registered []string
	for _, cl := range c.RP.Claims {
		registered = append(registered, cl.Name)
	}
	sr := broker.StartRequest{
		Protocol:     Protocol,
		RPID:         c.GetID(),
		Request:      storedForm(ar),
		RequestedLoA: requestedLoA(form.Get("acr_values"), cr.ACRValues),
		Attributes:   requestedAttributes(registered, ar.GetRequestedScopes(), cr),
		Prompt:       fosite.RemoveEmpty(strings.Split(form.Get("prompt"), " ")),
		LoginHint:    form.Get("login_hint"),
		Lang:         form.Get("ui_locales"),
	}
	if v := form.Get("max_age"); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64) // validated in checkAuthorize
		sr.MaxAge = &n
	}
	if err := p.o.Broker.StartLogin(w, r, sr); err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
	}
}

// checkAuthorize adds the broker's rules to fosite's validation; pushed
// is true at the PAR endpoint.
func (p *Provider) checkAuthorize(r *http.Request, ar fosite.AuthorizeRequester, pushed bool) error {
	c := p.client(ar)
	form := ar.GetRequestForm()
	if !ar.GetResponseTypes().ExactOne("code") {
		return fosite.ErrUnsupportedResponseType.WithHint("Only the authorization code flow (response_type=code) is offered.")
	}
	if !ar.GetRequestedScopes().Has("openid") {
		return fosite.ErrInvalidScope.WithHint("The openid scope is required.")
	}
	if c.RP.OIDC.PKCERequired() && form.Get("code_challenge") == "" {
		return fosite.ErrInvalidRequest.WithHint("This client must use PKCE (code_challenge with S256).")
	}
	if m := form.Get("code_challenge_method"); form.Get("code_challenge") != "" && m != "S256" {
		return fosite.ErrInvalidRequest.WithHint("Only code_challenge_method=S256 is accepted.")
	}
	if c.RP.OIDC.RequirePAR && !pushed && !strings.HasPrefix(r.Form.Get("request_uri"), parPrefix) {
		return fosite.ErrInvalidRequest.WithHint("This client must push its authorization requests (PAR, RFC 9126).")
	}
	if form.Get("request") != "" {
		return fosite.ErrRequestNotSupported
	}
	if v := form.Get("max_age"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
			return fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer.")
		}
	}
	if _, err := parseClaimsParam(form.Get("claims")); err != nil {
		return fosite.ErrInvalidRequest.WithHint(err.Error())
	}
	prompt := fosite.RemoveEmpty(strings.Split(form.Get("prompt"), " "))
	for _, v := range prompt {
		switch v {
		case "none", "login", "consent", "select_account":
		default:
			return fosite.ErrInvalidRequest.WithHintf("Unknown prompt value %q.", v)
		}
	}
	if len(prompt) > 1 && fosite.Arguments(prompt).Has("none") {
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
	}
	return nil
}

// refuseRequestObject takes request objects (OIDC Core §6) out of the
// request before fosite sees it and returns the error to answer with:
// request_not_supported for `request`, request_uri_not_supported for a
// `request_uri` that is not one of ours from PAR (discovery says
// request_parameter_supported and request_uri_parameter_supported false).
// Left in, fosite would verify the object for clients with a key set, or
// fetch the URI. At the PAR endpoint a request_uri is fosite's to refuse
// (RFC 9126 §2.1).
func refuseRequestObject(r *http.Request, pushed bool) error {
	if err := r.ParseForm(); err != nil {
		return nil // fosite answers the malformed body
	}
	var refused error
	if _, ok := r.Form["request"]; ok {
		r.Form.Del("request")
		r.PostForm.Del("request")
		refused = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; send the parameters as such, or push them (PAR).")
	}
	if uri, ok := r.Form["request_uri"]; ok && !pushed && (len(uri) != 1 || !strings.HasPrefix(uri[0], parPrefix)) {
		r.Form.Del("request_uri")
		r.PostForm.Del("request_uri")
		if refused == nil {
			refused = fosite.ErrRequestURINotSupported.WithHint("Only request_uri values from this server's PAR endpoint are accepted.")
		}
	}
	return refused
}

// storedForm is the request as it will be replayed when the flow resumes:
// everything fosite validated, without a PAR request_uri (used once).
func storedForm(ar fosite.AuthorizeRequester) json.RawMessage {
	f := url.Values{}
	for k, v := range ar.GetRequestForm() {
		f[k] = v
	}
	f.Del("request_uri")
	f.Set("client_id", ar.GetClient().GetID())
	f.Set("response_type", strings.Join(ar.GetResponseTypes(), " "))
	if u := ar.GetRedirectURI(); u != nil && f.Get("redirect_uri") == "" {
		f.Set("redirect_uri", u.String())
	}
	if f.Get("state") == "" && ar.GetState() != "" {
		f.Set("state", ar.GetState())
	}
	if m := ar.GetResponseMode(); m != fosite.ResponseModeDefault && f.Get("response_mode") == "" {
		f.Set("response_mode", string(m))
	}
	b, _ := json.Marshal(f)
	return b
}

// authorizeError answers an invalid request: to the client when its
// redirect URI is registered, else on a broker page (never redirecting to
// an unverified URI, RFC 9700 §4.11).
func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		rfc = fosite.ErrServerError.WithWrap(err)
	}
	if rfc.CodeField >= 500 {
		p.o.Logger.ErrorContext(r.Context(), "authorization endpoint", "err", err, "request_id", web.RequestID(r.Context()))
	}
	if ar != nil && ar.IsRedirectURIValid() {
		p.f.WriteAuthorizeError(r.Context(), w, ar, err)
		return
	}
	lang := ui.Lang(r)
	msg := p.o.UI.Text(lang, "error.oidc_request") + " (" + rfc.ErrorField + ": " + rfc.GetDescription() + ")"
	status := rfc.CodeField
	if status < 400 {
		status = http.StatusBadRequest
	}
	p.o.UI.Render(w, r, status, "error", lang, struct{ Message, RequestID string }{msg, web.RequestID(r.Context())})
}

// handlePAR accepts pushed authorization requests (RFC 9126).
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	proof, err := p.dpopProof(r, PathPAR, "", "")
	if err != nil {
		p.dpopTokenError(w, r, err)
		return
	}
	if err := p.precheckAssertion(r); err != nil {
		p.f.WritePushedAuthorizeError(ctx, w, fosite.NewAuthorizeRequest(), err)
		return
	}
	refused := refuseRequestObject(r, true)
	ar, err := p.f.NewPushedAuthorizeRequest(ctx, r)
	if err == nil {
		err = refused
	}
	if err != nil {
		p.f.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	// A proof at the PAR endpoint binds the code like dpop_jkt (RFC 9449
	// §10.1); both must name the same key.
	if proof != nil {
		form := ar.GetRequestForm()
		if j := form.Get("dpop_jkt"); j != "" && j != proof.JKT {
			p.f.WritePushedAuthorizeError(ctx, w, ar, errDPoP("dpop_jkt does not match the proof key."))
			return
		}
		form.Set("dpop_jkt", proof.JKT)
	}
	if err := p.checkAuthorize(r, ar, true); err != nil {
		p.f.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := p.f.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		p.f.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	p.f.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

// flowErrors maps the broker's outcomes to OAuth errors (OIDC Core §3.1.2.6).
var flowErrors = map[string]*fosite.RFC6749Error{
	"access_denied":        fosite.ErrAccessDenied,
	"login_required":       fosite.ErrLoginRequired,
	"consent_required":     fosite.ErrConsentRequired,
	"interaction_required": fosite.ErrInteractionRequired,
}

// Resume answers the relying party when the login flow has ended.
func (p *Provider) Resume(w http.ResponseWriter, r *http.Request, tx *store.Transaction, res *broker.Result, ferr *broker.FlowError) {
	ctx := r.Context()
	ar, err := p.replay(ctx, tx)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if ferr != nil {
		e, ok := flowErrors[ferr.Code]
		if !ok {
			e = fosite.ErrServerError
		}
		p.f.WriteAuthorizeError(ctx, w, ar, e.WithHint(ferr.Description))
		return
	}
	c := p.client(ar)
	for _, s := range ar.GetRequestedScopes() {
		if s == "offline_access" && !c.GetGrantTypes().Has("refresh_token") {
			continue
		}
		ar.GrantScope(s)
	}
	sess, err := p.userSession(ar, c, res)
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	// dpop_jkt binds the code to the client's DPoP key (RFC 9449 §10).
	sess.JKT = ar.GetRequestForm().Get("dpop_jkt")
	// The code's rows are written as one when the response is complete
	// (codebundle.go).
	bctx, rs := withCodeBundle(ctx)
	resp, err := p.f.NewAuthorizeResponse(bctx, ar, sess)
	if err == nil {
		if ferr := p.store.flushBundle(ctx, rs); ferr != nil {
			err = fosite.ErrServerError.WithWrap(ferr)
		}
	}
	if err != nil {
		p.f.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	// RFC 9207: the issuer in the authorization response defends against
	// mix-up attacks.
	resp.AddParameter("iss", p.o.Issuer)
	p.f.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// replay rebuilds the validated authorization request of a transaction,
// dated to when the client sent it (prompt and max_age checks compare
// auth_time with it).
func (p *Provider) replay(ctx context.Context, tx *store.Transaction) (fosite.AuthorizeRequester, error) {
	var form url.Values
	if err := json.Unmarshal(tx.Request, &form); err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.o.Issuer+PathAuthorize+"?"+form.Encode(), nil)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	ar, err := p.f.NewAuthorizeRequest(ctx, req)
	if err != nil {
		return ar, err
	}
	if a, ok := ar.(*fosite.AuthorizeRequest); ok {
		a.RequestedAt = tx.CreatedAt.UTC()
	}
	return ar, nil
}

// sid is the session id this client sees (OIDC Front-/Back-Channel
// Logout): derived per client, so relying parties cannot correlate users
// through it.
func sid(clientID, sessionID string) string {
	sum := sha256.Sum256([]byte("sid\x00" + clientID + "\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}
