// Package eidas is the broker as a SAML service provider of the eIDAS
// SAML profile (eIDAS SAML Message Format 1.2, Attribute Profile 1.2,
// Cryptographic Requirements 1.2): it logs users in with the notified
// eIDs of other EU member states through an eIDAS connector (the
// receiving country's node), or through the German eIDAS Middleware.
//
// Begin signs an AuthnRequest (ECDSA or RSASSA-PSS, never RSA PKCS#1
// v1.5) and hands it to the browser as an auto-posting form (HTTP-POST
// binding). The node answers to the assertion consumer service under
// /providers/{id}/acs, which relays the response by a same-origin POST to
// the login's callback, so that Complete validates it bound to the
// browser: signature, decryption (AES-GCM with RSA-OAEP or ECDH-ES key
// agreement), InResponseTo, Destination, Recipient, Audience, validity
// window, one-time use, level of assurance. XML signatures and encryption
// come from broker/xmlsig.
package eidas

import (
	"github.com/trustbroker/trustbroker/broker/loa"
)

// Type is the configuration `type` of an eIDAS provider.
const Type = "eidas"

// SAML and eIDAS identifiers (DOMAIN.md §2).
const (
	NSSAMLP           = "urn:oasis:names:tc:SAML:2.0:protocol"
	NSSAML            = "urn:oasis:names:tc:SAML:2.0:assertion"
	NSMD              = "urn:oasis:names:tc:SAML:2.0:metadata"
	NSEIDAS           = "http://eidas.europa.eu/saml-extensions"
	NSAlg             = "urn:oasis:names:tc:SAML:metadata:algsupport"
	NSMDAttr          = "urn:oasis:names:tc:SAML:metadata:attribute"
	NSEIDASNP         = "http://eidas.europa.eu/attributes/naturalperson"
	BindingPOST       = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	AttrNameFormatURI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	NameIDEntity      = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
	NameIDPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	NameIDUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	CMBearer          = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	StatusSuccess     = "urn:oasis:names:tc:SAML:2.0:status:Success"

	// Not-notified schemes (eIDAS SAML Message Format 1.2 §2.3.2).
	notNotifiedPrefix       = "http://eidas.europa.eu/NotNotified/LoA/"
	notNotifiedLegacyPrefix = "http://eidas.europa.eu/LoA/NotNotified/"
)

// Natural-person attribute names (eIDAS SAML Attribute Profile 1.2 §2.2).
const (
	AttrPersonIdentifier = NSEIDASNP + "/PersonIdentifier"
	AttrFamilyName       = NSEIDASNP + "/CurrentFamilyName"
	AttrFirstName        = NSEIDASNP + "/CurrentGivenName"
	AttrDateOfBirth      = NSEIDASNP + "/DateOfBirth"
	AttrBirthName        = NSEIDASNP + "/BirthName"
	AttrPlaceOfBirth     = NSEIDASNP + "/PlaceOfBirth"
	AttrCurrentAddress   = NSEIDASNP + "/CurrentAddress"
	AttrGender           = NSEIDASNP + "/Gender"
)

// Attribute is one natural-person attribute of the profile and the OIDC
// claims it serves.
type Attribute struct {
	Name, FriendlyName string
	// MDS: part of the minimum data set, always requested as required.
	MDS    bool
	Claims []string
}

// Attributes are the natural-person attributes the provider requests:
// the minimum data set always (isRequired="true"), the others
// (isRequired="false") when the relying party asks for a claim they serve.
var Attributes = []Attribute{
	{AttrPersonIdentifier, "PersonIdentifier", true, nil},
	{AttrFamilyName, "FamilyName", true, []string{"family_name", "name"}},
	{AttrFirstName, "FirstName", true, []string{"given_name", "name"}},
	{AttrDateOfBirth, "DateOfBirth", true, []string{"birthdate"}},
	{AttrBirthName, "BirthName", false, []string{"birth_family_name"}},
	{AttrPlaceOfBirth, "PlaceOfBirth", false, []string{"place_of_birth"}},
	{AttrCurrentAddress, "CurrentAddress", false, []string{"address"}},
	{AttrGender, "Gender", false, []string{"gender"}},
}

// ParseLoA reads an eIDAS AuthnContextClassRef. notified is false for the
// NotNotified variants (and the legacy spelling).
func ParseLoA(uri string) (level loa.Level, notified bool, ok bool) {
	switch uri {
	case loa.URILow:
		return loa.Low, true, true
	case loa.URISubstantial:
		return loa.Substantial, true, true
	case loa.URIHigh:
		return loa.High, true, true
	}
	for _, p := range []string{notNotifiedPrefix, notNotifiedLegacyPrefix} {
		if len(uri) > len(p) && uri[:len(p)] == p {
			switch uri[len(p):] {
			case "low":
				return loa.Low, false, true
			case "substantial":
				return loa.Substantial, false, true
			case "high":
				return loa.High, false, true
			}
		}
	}
	return loa.None, false, false
}
