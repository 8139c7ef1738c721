package smartcard

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trustbroker/trustbroker/providers"
)

// Refusal codes, stable for logs, audit and tests.
const (
	CodeNoCertificate     = "no_certificate"
	CodeMalformed         = "certificate_malformed"
	CodeUntrusted         = "certificate_untrusted"
	CodeExpired           = "certificate_expired"
	CodeNotYetValid       = "certificate_not_yet_valid"
	CodeKeyUsage          = "certificate_key_usage"
	CodeExtKeyUsage       = "certificate_ext_key_usage"
	CodePolicy            = "certificate_policy"
	CodeCriticalExtension = "certificate_critical_extension"
	CodeCA                = "certificate_ca_constraints"
	CodeAdmission         = "certificate_admission"
	CodeAttributes        = "certificate_attributes"
)

var publicText = map[string]string{
	CodeNoCertificate:     "No card certificate was presented.",
	CodeMalformed:         "The card certificate could not be read.",
	CodeUntrusted:         "The card was not issued by a trusted authority.",
	CodeExpired:           "The card certificate has expired.",
	CodeNotYetValid:       "The card certificate is not valid yet.",
	CodeKeyUsage:          "The card certificate may not be used for login (key usage).",
	CodeExtKeyUsage:       "The card certificate may not be used for login (extended key usage).",
	CodePolicy:            "The card is not of the accepted type (certificate policy).",
	CodeCriticalExtension: "The card certificate has a critical extension that is not supported.",
	CodeCA:                "The card's certificate chain is not valid.",
	CodeAdmission:         "The card certificate carries no valid profession data.",
	CodeAttributes:        "The card certificate lacks the data that identifies its holder.",

	CodeRevoked:               "The card has been revoked by its issuer and can no longer be used.",
	CodeRevocationUnavailable: "Whether the card has been revoked could not be checked just now. Please try again later.",
}

// refuse builds the provider error for code with the private cause.
func refuse(code string, format string, args ...any) *providers.Error {
	return &providers.Error{Code: code, Public: publicText[code], Err: fmt.Errorf(format, args...)}
}

var (
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// Validate builds and checks the certification path from leaf to one of
// the configured trust anchors (RFC 5280 §6.1, without policy mapping and
// name constraints, which the card PKIs in scope do not use), then the
// leaf's key usage, extended key usage and certificate policies. extra are
// intermediates the client sent. Trust anchors are names and keys: their
// own signature is not checked, their validity and CA flag are.
//
// A chain in which no certificate has a brainpool key is checked a second
// time with crypto/x509's Verify; both must accept it.
func (s *Settings) Validate(leaf *Cert, extra []*Cert, now time.Time) ([]*Cert, error) {
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return nil, refuse(CodeCA, "the presented certificate is a CA certificate")
	}
	pool := append(slices.Clone(s.Intermediates), extra...)
	path, err := s.buildPath([]*Cert{leaf}, pool)
	if err != nil {
		return nil, err
	}
	for i, c := range path {
		isAnchor := i == len(path)-1
		if now.Before(c.NotBefore) {
			return nil, refuse(CodeNotYetValid, "%q is valid from %s", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if now.After(c.NotAfter) {
			return nil, refuse(CodeExpired, "%q expired %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
		}
		if len(c.UnhandledCriticalExtensions) > 0 {
			return nil, refuse(CodeCriticalExtension, "%q: unhandled critical extensions %v", c.Subject, c.UnhandledCriticalExtensions)
		}
		if !isAnchor && len(c.AuthorityKeyId) == 0 {
			// RFC 5280 §4.2.1.1: MUST be present except in self-signed CA certificates.
			return nil, refuse(CodeMalformed, "%q has no authority key identifier", c.Subject)
		}
		if i == 0 {
			continue
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, refuse(CodeCA, "issuer %q is not a CA", c.Subject)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, refuse(CodeCA, "issuer %q may not sign certificates", c.Subject)
		}
		// i-1 intermediate CAs lie below c (RFC 5280 §4.2.1.9).
		if (c.MaxPathLen > 0 || c.MaxPathLenZero) && i-1 > c.MaxPathLen {
			return nil, refuse(CodeCA, "path length constraint of %q exceeded", c.Subject)
		}
	}
	if s.keyUsageBits != 0 && int(leaf.KeyUsage)&s.keyUsageBits != s.keyUsageBits {
		return nil, refuse(CodeKeyUsage, "key usage %b lacks %v", leaf.KeyUsage, s.RequiredKeyUsage)
	}
	ekus, err := extKeyUsages(leaf)
	if err != nil {
		return nil, refuse(CodeMalformed, "extended key usage: %v", err)
	}
	for _, want := range s.RequiredEKU {
		if !slices.ContainsFunc(ekus, want.Equal) {
			return nil, refuse(CodeExtKeyUsage, "extended key usage %v lacks %v", ekus, want)
		}
	}
	for _, want := range s.RequiredPolicies {
		if !slices.ContainsFunc(leaf.PolicyIdentifiers, want.Equal) {
			return nil, refuse(CodePolicy, "certificate policies %v lack %v", leaf.PolicyIdentifiers, want)
		}
	}
	if err := s.crossCheck(path, now); err != nil {
		return nil, refuse(CodeUntrusted, "crypto/x509: %v", err)
	}
	return path, nil
}

// buildPath extends chain (leaf first) towards an anchor, depth first,
// anchors before intermediates. Every link's signature is checked as it is
// added, so a forged intermediate (right name, wrong key) never links.
func (s *Settings) buildPath(chain []*Cert, pool []*Cert) ([]*Cert, error) {
	c := chain[len(chain)-1]
	var last error = refuse(CodeUntrusted, "no trusted issuer %q", c.Issuer)
	issues := func(cand *Cert) bool {
		if !bytes.Equal(cand.RawSubject, c.RawIssuer) {
			return false
		}
		if len(c.AuthorityKeyId) > 0 && len(cand.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyId, cand.SubjectKeyId) {
			last = refuse(CodeUntrusted, "authority key identifier of %q matches no CA named %q", c.Subject, c.Issuer)
			return false
		}
		if err := checkSignature(c, cand); err != nil {
			last = refuse(CodeUntrusted, "signature of %q does not verify under %q: %v", c.Subject, cand.Subject, err)
			return false
		}
		return true
	}
	for _, a := range s.Anchors {
		if issues(a) {
			return append(chain, a), nil
		}
	}
	if len(chain)+1 >= s.MaxChainLength {
		return nil, last
	}
	for _, cand := range pool {
		if slices.ContainsFunc(chain, func(x *Cert) bool { return bytes.Equal(x.Raw, cand.Raw) }) {
			continue
		}
		if !issues(cand) {
			continue
		}
		if path, err := s.buildPath(append(slices.Clone(chain), cand), pool); err == nil {
			return path, nil
		} else {
			last = err
		}
	}
	return nil, last
}

// crossCheck runs crypto/x509's path validation over the same path when it
// holds no brainpool key.
func (s *Settings) crossCheck(path []*Cert, now time.Time) error {
	for _, c := range path {
		if c.Brainpool != nil {
			return nil
		}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(path[len(path)-1].Certificate)
	for _, c := range path[1 : len(path)-1] {
		inter.AddCert(c.Certificate)
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	if slices.ContainsFunc(s.RequiredEKU, ekuNames["clientAuth"].Equal) {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	_, err := path[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: usages})
	return err
}

// extKeyUsages reads the ExtendedKeyUsage extension as OIDs (RFC 5280
// §4.2.1.12); nil when absent.
func extKeyUsages(c *Cert) ([]asn1.ObjectIdentifier, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			var oids []asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(e.Value, &oids)
			if err != nil {
				return nil, err
			}
			if len(rest) > 0 {
				return nil, errors.New("trailing data")
			}
			return oids, nil
		}
	}
	return nil, nil
}
