package eidas

import (
	"encoding/base64"
	"slices"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// requestedAttribute is one eidas:RequestedAttribute of an AuthnRequest.
type requestedAttribute struct {
	Attribute
	Required bool
}

// requestedAttributes maps the relying party's claims to the eIDAS
// attributes: the minimum data set always, required; each further
// attribute that serves an asked-for claim, not required (the node may
// not have it, and the login should not fail for it).
func requestedAttributes(claims []string) []requestedAttribute {
	var out []requestedAttribute
	for _, a := range Attributes {
		if a.MDS {
			out = append(out, requestedAttribute{a, true})
			continue
		}
		if slices.ContainsFunc(a.Claims, func(c string) bool { return slices.Contains(claims, c) }) {
			out = append(out, requestedAttribute{a, false})
		}
	}
	return out
}

// authnRequest builds and signs the eIDAS AuthnRequest (eIDAS SAML
// Message Format 1.2 §2.4; the shape of the EUMW's own test requests):
// ForceAuthn="true", IsPassive="false", Issuer of format entity,
// Extensions with eidas:SPType and eidas:RequestedAttributes,
// NameIDPolicy, RequestedAuthnContext Comparison="minimum" with the eIDAS
// LoA URI, and Scoping/RequesterID for a private SP.
func (p *Provider) authnRequest(id string, node *Node, level loa.Level, claims []string, now time.Time) ([]byte, error) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	r := doc.CreateElement("saml2p:AuthnRequest")
	r.CreateAttr("xmlns:saml2p", NSSAMLP)
	r.CreateAttr("xmlns:saml2", NSSAML)
	r.CreateAttr("xmlns:eidas", NSEIDAS)
	r.CreateAttr("Consent", "urn:oasis:names:tc:SAML:2.0:consent:unspecified")
	r.CreateAttr("Destination", node.SSOURL)
	r.CreateAttr("ForceAuthn", "true")
	r.CreateAttr("ID", id)
	r.CreateAttr("IsPassive", "false")
	r.CreateAttr("IssueInstant", samlTime(now))
	r.CreateAttr("ProviderName", p.s.ProviderName)
	r.CreateAttr("Version", "2.0")
	iss := r.CreateElement("saml2:Issuer")
	iss.CreateAttr("Format", NameIDEntity)
	iss.SetText(p.entityID)

	ext := r.CreateElement("saml2p:Extensions")
	if p.s.SPTypeInRequest {
		ext.CreateElement("eidas:SPType").SetText(p.s.SPType)
	}
	ras := ext.CreateElement("eidas:RequestedAttributes")
	for _, a := range requestedAttributes(claims) {
		ra := ras.CreateElement("eidas:RequestedAttribute")
		ra.CreateAttr("FriendlyName", a.FriendlyName)
		ra.CreateAttr("Name", a.Name)
		ra.CreateAttr("NameFormat", AttrNameFormatURI)
		if a.Required {
			ra.CreateAttr("isRequired", "true")
		} else {
			ra.CreateAttr("isRequired", "false")
		}
	}
	nip := r.CreateElement("saml2p:NameIDPolicy")
	nip.CreateAttr("AllowCreate", "true")
	nip.CreateAttr("Format", p.s.NameIDFormat)
	rac := r.CreateElement("saml2p:RequestedAuthnContext")
	rac.CreateAttr("Comparison", "minimum")
	rac.CreateElement("saml2:AuthnContextClassRef").SetText(level.URI())
	if p.s.RequesterID != "" {
		r.CreateElement("saml2p:Scoping").CreateElement("saml2p:RequesterID").SetText(p.s.RequesterID)
	}
	signer := &xmlsig.Signer{Key: p.s.SigningKey, Certificate: p.s.SigningCert}
	if err := signer.Sign(r); err != nil {
		return nil, err
	}
	return doc.WriteToBytes()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
