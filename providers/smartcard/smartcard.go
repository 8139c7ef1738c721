// Package smartcard is the provider for X.509 card logins: employee ID
// cards, the health-professional card (HBA, C.HP.AUT), the institution card
// (SMC-B, C.HCI.AUT), the health insurance card (eGK, C.CH.AUT), signature
// and bank cards. One provider instance serves one card family with its own
// trust anchors, required key usages and certificate policies, and reads
// the attributes that family carries (DOMAIN.md §3).
//
// The broker hands over the raw peer certificates (from its card-login TLS
// listener or from a trusted reverse proxy's header); the provider does the
// whole path validation itself, with crypto/x509 for RSA and NIST curves
// and package brainpool for brainpoolP256r1, which crypto/x509 cannot parse.
//
// After path validation the leaf's revocation status is established (see
// revocation.go): OCSP first, CRLs as the fallback, answers shared between
// replicas through the store until their nextUpdate; hard-fail by default.
package smartcard

import (
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

// Type is the provider type name in the configuration.
const Type = "smartcard"

// maxPeerCertificates bounds the certificates a client may send.
const maxPeerCertificates = 8

// Provider authenticates one card family.
type Provider struct {
	id  string
	s   *Settings
	now func() time.Time
	rev *revocationChecker // nil: revocation is not checked
}

var _ providers.CertificateProvider = (*Provider)(nil)

// Factory builds the provider from its `config` block.
func Factory(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	s, err := c.Settings(path)
	if err != nil {
		return nil, err
	}
	return NewWithDeps(id, s, deps), nil
}

// New builds a provider from validated settings.
func New(id string, s *Settings, now func() time.Time) *Provider {
	return NewWithDeps(id, s, providers.Deps{Now: now})
}

// NewWithDeps builds a provider that caches revocation answers in
// deps.Store (when set) and logs soft-fail logins to deps.Logger.
func NewWithDeps(id string, s *Settings, deps providers.Deps) *Provider {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	p := &Provider{id: id, s: s, now: now}
	if s.Revocation != nil {
		p.rev = newRevocationChecker(s.Revocation, deps.Store, deps.Logger)
	}
	return p
}

// ID implements providers.Provider.
func (p *Provider) ID() string { return p.id }

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return providers.KindSmartcard }

// MaxLoA implements providers.Provider.
func (p *Provider) MaxLoA() loa.Level { return p.s.LoA }

// Authenticate implements providers.CertificateProvider: peer holds the
// DER certificates the client presented, leaf first, not yet verified.
func (p *Provider) Authenticate(ctx context.Context, req providers.Request, peer [][]byte) (*providers.Identity, error) {
	if len(peer) == 0 {
		return nil, refuse(CodeNoCertificate, "no client certificate")
	}
	if len(peer) > maxPeerCertificates {
		return nil, refuse(CodeMalformed, "%d certificates presented", len(peer))
	}
	certs := make([]*Cert, len(peer))
	for i, der := range peer {
		c, err := ParseCertificate(der)
		if err != nil {
			return nil, refuse(CodeMalformed, "certificate %d: %v", i, err)
		}
		certs[i] = c
	}
	now := p.now()
	path, err := p.s.Validate(certs[0], certs[1:], now)
	if err != nil {
		return nil, err
	}
	card, err := p.s.Read(path[0], req.Lang)
	if err != nil {
		return nil, err
	}
	rs := &RevocationStatus{Status: "not_checked", Source: "none"}
	if p.rev != nil {
		// Only now, with the path validated, may URLs the certificate
		// names be fetched.
		if rs, err = p.rev.Check(ctx, path, now); err != nil {
			return nil, err
		}
	}
	return &providers.Identity{
		Subject: card.Subject, Attributes: card.Attributes, LoA: p.s.LoA,
		AMR: append([]string(nil), p.s.AMR...), AuthTime: now,
		Evidence: p.s.evidence(path[0], now, rs),
	}, nil
}

// Card is what a certificate says about its holder.
type Card struct {
	// Subject is stable across card renewals (see Settings.Read).
	Subject    string
	Attributes map[string]any
}

// Subject DN attribute types (RFC 4519, X.520).
var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit      = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
)

// kvnrRE is the unchangeable part of the KVNR (DOMAIN.md §3.3).
var kvnrRE = regexp.MustCompile(`^[A-Z][0-9]{9}$`)

// Read extracts the attributes and the stable subject of a validated leaf
// certificate, by family:
//
//   - hba, smcb: Admission → profession OID and name, Telematik-ID; the
//     subject is the Telematik-ID. Without a Telematik-ID an instance with
//     `profession: required` (the default) refuses the card; with
//     `optional` it logs in without profession attributes and the subject
//     falls back to the issuer/subject hash.
//   - egk: the KVNR from the subject OU; the subject is the KVNR.
//   - employee: the configured subject attribute; the subject is its value.
//   - signature and others: serial number, qualified, issuer country; the
//     subject is a hash of issuer and subject serialNumber (never the
//     certificate serial).
func (s *Settings) Read(c *Cert, lang string) (*Card, error) {
	attrs := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			attrs[k] = v
		}
	}
	set("given_name", dnValue(c, oidGivenName))
	set("family_name", dnValue(c, oidSurname))
	set("name", dnValue(c, oidCommonName))
	set("issuer_country", firstIssuer(c, oidCountry))
	if len(c.EmailAddresses) > 0 {
		set("email", c.EmailAddresses[0])
	}
	var subject string
	adm, err := admissionOf(c)
	if err != nil {
		return nil, refuse(CodeAdmission, "%v", err)
	}
	switch s.Family {
	case FamilyHBA, FamilySMCB:
		pi, ok := adm.First()
		if ok && len(pi.OIDs) > 0 {
			oid := pi.OIDs[0].String()
			set("profession_oid", oid)
			name := ProfessionName(oid, lang)
			if name == "" && len(pi.Items) > 0 {
				name = pi.Items[0]
			}
			set("profession", name)
		}
		if ok {
			set("telematik_id", pi.RegistrationNumber)
		}
		if s.RequireProfession && (attrs["profession_oid"] == nil || attrs["telematik_id"] == nil) {
			return nil, refuse(CodeAdmission, "no profession OID or Telematik-ID in the Admission extension")
		}
		if s.Family == FamilySMCB {
			set("organization", dnValue(c, oidCommonName))
		}
		if t, ok := attrs["telematik_id"].(string); ok {
			subject = "telematik-id:" + t
		}
	case FamilyEGK:
		set("organization", dnValue(c, oidOrganization))
		for _, ou := range dnValues(c, oidOrgUnit) {
			if kvnrRE.MatchString(ou) {
				set("kvnr", ou)
				subject = "kvnr:" + ou
				break
			}
		}
		if subject == "" {
			return nil, refuse(CodeAttributes, "no KVNR in the subject's OU")
		}
	case FamilyEmployee:
		set("organization", dnValue(c, oidOrganization))
		num := dnValue(c, s.SubjectAttribute)
		if num == "" {
			return nil, refuse(CodeAttributes, "no subject attribute %v", s.SubjectAttribute)
		}
		set("employee_number", num)
		subject = "employee:" + num
	case FamilySignature:
		set("serial_number", dnValue(c, oidSerialNumber))
		qc, err := qcOf(c)
		if err != nil {
			return nil, refuse(CodeMalformed, "%v", err)
		}
		attrs["qualified"] = qc != nil && qc.Compliance
	}
	if subject == "" {
		subject = fallbackSubject(c)
	}
	return &Card{Subject: subject, Attributes: attrs}, nil
}

// fallbackSubject hashes the issuer DN with the subject's serialNumber
// attribute (or, without one, the whole subject DN): stable across
// renewals by the same CA, never the certificate serial alone.
func fallbackSubject(c *Cert) string {
	h := sha256.New()
	h.Write(c.RawIssuer)
	h.Write([]byte{0})
	if sn := dnValue(c, oidSerialNumber); sn != "" {
		h.Write([]byte("serialNumber:" + sn))
	} else {
		h.Write(c.RawSubject)
	}
	return "x509:" + hex.EncodeToString(h.Sum(nil))
}

func dnValues(c *Cert, oid asn1.ObjectIdentifier) []string {
	var out []string
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oid) {
			if s, ok := a.Value.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func dnValue(c *Cert, oid asn1.ObjectIdentifier) string {
	if v := dnValues(c, oid); len(v) > 0 {
		return v[0]
	}
	return ""
}

func firstIssuer(c *Cert, oid asn1.ObjectIdentifier) string {
	for _, a := range c.Issuer.Names {
		if a.Type.Equal(oid) {
			if s, ok := a.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

func admissionOf(c *Cert) (*Admission, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDAdmission) {
			return ParseAdmission(e.Value)
		}
	}
	return nil, nil
}

func qcOf(c *Cert) (*QCStatements, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDQCStatements) {
			return ParseQCStatements(e.Value)
		}
	}
	return nil, nil
}

// trustFramework names the framework for OIDC4IDA verified_claims.
func (s *Settings) trustFramework() string {
	switch s.Family {
	case FamilyHBA, FamilySMCB, FamilyEGK:
		return "de_telematik"
	}
	return "x509_pki"
}

// evidence is the OIDC4IDA verification block (§5.1): one
// electronic_signature item naming the certificate, when it was checked
// and how revocation was established: revocation is good, unavailable
// (soft-fail) or not_checked; revocation_source is ocsp, crl or none.
func (s *Settings) evidence(c *Cert, now time.Time, rs *RevocationStatus) *providers.Evidence {
	m := map[string]any{
		"type":              "electronic_signature",
		"signature_type":    "x509_client_authentication",
		"issuer":            c.Issuer.String(),
		"serial_number":     c.SerialNumber.Text(16),
		"created_at":        c.NotBefore.UTC().Format(time.RFC3339),
		"valid_until":       c.NotAfter.UTC().Format(time.RFC3339),
		"checked_at":        now.UTC().Format(time.RFC3339),
		"revocation":        rs.Status,
		"revocation_source": rs.Source,
	}
	if !rs.CheckedAt.IsZero() {
		m["revocation_checked_at"] = rs.CheckedAt.UTC().Format(time.RFC3339)
	}
	if !rs.ThisUpdate.IsZero() {
		m["revocation_this_update"] = rs.ThisUpdate.UTC().Format(time.RFC3339)
	}
	item, err := json.Marshal(m)
	if err != nil {
		panic(errors.New("smartcard: evidence does not marshal")) // strings only
	}
	return &providers.Evidence{
		TrustFramework: s.trustFramework(), AssuranceLevel: s.LoA.String(), Time: now,
		Items: []json.RawMessage{item},
	}
}
