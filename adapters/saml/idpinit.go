package saml

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// IdP-initiated login (saml-profiles-2.0-os §4.1.5): GET
// /saml/idp-initiated?sp=<entityID>[&RelayState=…] runs the broker's login
// flow (login, policy, consent) for an SP registered with
// idp_initiated: true and answers with an unsolicited signed Response (no
// InResponseTo) at the SP's default HTTP-POST ACS from its metadata.
// Nothing of the request decides where the Response goes. An unknown SP,
// an SP that does not allow it, and a RelayState that is neither a relative
// reference nor on the origin of one of the SP's ACS URLs are refused on
// the broker's error page and audited.

// PathIDPInitiated starts an IdP-initiated login.
const PathIDPInitiated = "/saml/idp-initiated"

// methodIDPInitiated marks a storedRequest of an IdP-initiated login.
const methodIDPInitiated = "idp-initiated"

// maxRelayState bounds the RelayState of an IdP-initiated login
// (saml-bindings-2.0-os §3.4.3 and §3.5.3: at most 80 bytes).
const maxRelayState = 80

func (p *IdP) handleIDPInitiated(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	q := r.URL.Query()
	entityID, relay := q.Get("sp"), q.Get("RelayState")
	target := entityID
	if len(target) > 200 {
		target = target[:200]
	}
	refuse := func(status int, reason string, err error) {
		p.o.Broker.Audit(r, "browser", "saml.idp_initiated", target, store.OutcomeDenied, reason, nil)
		p.refusePage(w, r, status, "saml.idp_initiated_refused", err)
	}
	sp := p.sps[entityID]
	if sp == nil {
		refuse(http.StatusBadRequest, "unknown service provider", crewsaml.ErrUnknownServiceProvider)
		return
	}
	if !sp.cfg.IDPInitiated {
		refuse(http.StatusForbidden, "idp-initiated login not allowed", errors.New("idp-initiated login not allowed"))
		return
	}
	if len(q["sp"]) != 1 || len(q["RelayState"]) > 1 {
		refuse(http.StatusBadRequest, "repeated parameter", errors.New("repeated sp or RelayState"))
		return
	}
	if err := checkRelayState(sp, relay); err != nil {
		refuse(http.StatusBadRequest, "RelayState refused", err)
		return
	}
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	if _, err := p.idpInitiatedRequest(r, idp, entityID, relay); err != nil {
		refuse(http.StatusBadRequest, "no assertion consumer service", err)
		return
	}
	raw, _ := json.Marshal(storedRequest{Method: methodIDPInitiated, SP: entityID, RelayState: relay})
	if err := p.o.Broker.StartLogin(w, r, broker.StartRequest{Protocol: Protocol, RPID: sp.rpID, Request: raw}); err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
	}
}

// idpInitiatedRequest is crewjam's request of an IdP-initiated login to
// the SP entityID: its metadata and its default ACS (HTTP-POST), dated
// now. The SP must still allow it (checked again when the flow resumes).
func (p *IdP) idpInitiatedRequest(r *http.Request, idp *crewsaml.IdentityProvider, entityID, relay string) (*crewsaml.IdpAuthnRequest, error) {
	sp := p.sps[entityID]
	if sp == nil || !sp.cfg.IDPInitiated {
		return nil, fmt.Errorf("idp-initiated login to %q not allowed", entityID)
	}
	req, err := idp.NewIdpInitiatedRequest(r, entityID, relay)
	if err != nil {
		return nil, err
	}
	if req.ACSEndpoint == nil || req.ACSEndpoint.Binding != crewsaml.HTTPPostBinding {
		return nil, fmt.Errorf("%s: no HTTP-POST assertion consumer service", entityID)
	}
	req.Now = p.o.Now()
	return req, nil
}

// checkRelayState accepts an empty RelayState, a relative reference (no
// scheme, no authority: it resolves against the SP's ACS), or an absolute
// http(s) URL on the origin of one of the SP's ACS URLs; at most 80 bytes,
// without control characters or backslashes (which browsers read as
// slashes, "/\evil.example").
func checkRelayState(sp *serviceProvider, relay string) error {
	if relay == "" {
		return nil
	}
	if len(relay) > maxRelayState {
		return errors.New("RelayState longer than 80 bytes")
	}
	if strings.ContainsAny(relay, "\\") || strings.ContainsFunc(relay, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return errors.New("RelayState with a control character or backslash")
	}
	u, err := url.Parse(relay)
	if err != nil {
		return fmt.Errorf("RelayState: %w", err)
	}
	if u.Scheme == "" && u.Opaque == "" && !strings.HasPrefix(relay, "//") && u.Host == "" && u.User == nil {
		return nil
	}
	if (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil {
		for _, o := range sp.origins() {
			if strings.EqualFold(o, u.Scheme+"://"+u.Host) {
				return nil
			}
		}
	}
	return errors.New("RelayState is neither relative nor on the service provider's origin")
}

// origins are the scheme://host[:port] of the SP's ACS URLs.
func (sp *serviceProvider) origins() []string {
	md := sp.metadata()
	if md == nil {
		return nil
	}
	var out []string
	for _, sso := range md.SPSSODescriptors {
		for _, acs := range sso.AssertionConsumerServices {
			if u, err := url.Parse(acs.Location); err == nil && u.Host != "" {
				out = append(out, u.Scheme+"://"+u.Host)
			}
		}
	}
	return out
}

// refusePage answers on the broker's error page with the message key.
func (p *IdP) refusePage(w http.ResponseWriter, r *http.Request, status int, key string, err error) {
	p.o.Logger.InfoContext(r.Context(), "saml request refused", "err", err, "request_id", web.RequestID(r.Context()))
	lang := ui.Lang(r)
	p.o.UI.Render(w, r, status, "error", lang, struct{ Message, RequestID string }{
		p.o.UI.Text(lang, key), web.RequestID(r.Context())})
}
