package smartcard

import (
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
)

// Card families. The family decides which attributes are read and how the
// stable subject is formed.
const (
	FamilyHBA       = "hba"       // health-professional card, C.HP.AUT
	FamilySMCB      = "smcb"      // institution card, C.HCI.AUT
	FamilyEGK       = "egk"       // health insurance card, C.CH.AUT
	FamilyEmployee  = "employee"  // employee ID card of an organisation's PKI
	FamilySignature = "signature" // signature and bank cards
)

// Certificate-type policy OIDs (gemSpec_OID Tab_PKI_405), required by
// default for the TI families.
var defaultPolicies = map[string][]string{
	FamilyHBA:  {"1.2.276.0.76.4.75"}, // oid_hba_aut
	FamilySMCB: {"1.2.276.0.76.4.77"}, // oid_smc_b_aut
	FamilyEGK:  {"1.2.276.0.76.4.70"}, // oid_egk_aut
}

// Config is the `config` block of a provider of type "smartcard". One
// instance serves one card family with its own trust anchors.
//
//	config:
//	  family: hba                    # hba | smcb | egk | employee | signature
//	  trust_anchors: [ca/hba-ca.pem] # PEM files or directories of *.pem/*.crt/*.cer
//	  intermediates: []              # more CA certificates a chain may pass through
//	  required_eku: [clientAuth]     # default clientAuth (egk: none); names or dotted OIDs
//	  required_key_usage: [digitalSignature]  # default digitalSignature
//	  required_policies: [1.2.276.0.76.4.75]  # default: the family's certificate type
//	  profession: required           # hba/smcb: required (default) | optional
//	  subject_attribute: 2.5.4.5     # employee: the subject attribute holding the employee number
//	  loa: high                      # the level a login reaches (default high)
//	  amr: [sc, hwk, pin]            # RFC 8176 values (default sc hwk pin)
//	  max_chain_length: 5            # certificates from leaf to anchor, anchor included
//	  revocation: {mode: hard}       # OCSP first, CRL fallback; see RevocationConfig
type Config struct {
	Family           string   `yaml:"family"`
	TrustAnchors     []string `yaml:"trust_anchors"`
	Intermediates    []string `yaml:"intermediates"`
	RequiredEKU      []string `yaml:"required_eku"`
	RequiredKeyUsage []string `yaml:"required_key_usage"`
	RequiredPolicies []string `yaml:"required_policies"`
	Profession       string   `yaml:"profession"`
	SubjectAttribute string   `yaml:"subject_attribute"`
	LoA              string   `yaml:"loa"`
	AMR              []string `yaml:"amr"`
	MaxChainLength   int      `yaml:"max_chain_length"`

	Revocation RevocationConfig `yaml:"revocation"`
}

// Settings is Config validated and defaulted; tests and the demo build
// them directly.
type Settings struct {
	Family           string
	Anchors          []*Cert
	Intermediates    []*Cert
	RequiredEKU      []asn1.ObjectIdentifier
	RequiredKeyUsage []string
	keyUsageBits     int
	RequiredPolicies []asn1.ObjectIdentifier
	// RequireProfession refuses HBA/SMC-B certificates without a
	// profession OID in the Admission extension.
	RequireProfession bool
	// SubjectAttribute is the subject attribute (OID) that holds an
	// employee number (employee cards).
	SubjectAttribute asn1.ObjectIdentifier
	LoA              loa.Level
	AMR              []string
	MaxChainLength   int
	// Revocation is how revocation is checked; nil (settings built
	// directly, as in tests) checks nothing and the evidence says so.
	Revocation *RevocationSettings
}

var ekuNames = map[string]asn1.ObjectIdentifier{
	"clientAuth":      {1, 3, 6, 1, 5, 5, 7, 3, 2},
	"serverAuth":      {1, 3, 6, 1, 5, 5, 7, 3, 1},
	"emailProtection": {1, 3, 6, 1, 5, 5, 7, 3, 4},
	"codeSigning":     {1, 3, 6, 1, 5, 5, 7, 3, 3},
}

// keyUsageNames are the KeyUsage bits of RFC 5280 §4.2.1.3 as crypto/x509
// numbers them.
var keyUsageNames = map[string]int{
	"digitalSignature": 1 << 0, "contentCommitment": 1 << 1, "nonRepudiation": 1 << 1,
	"keyEncipherment": 1 << 2, "dataEncipherment": 1 << 3, "keyAgreement": 1 << 4,
}

// ParseOID reads a dotted object identifier.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is not a dotted OID", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (p != "0" && strings.HasPrefix(p, "0")) {
			return nil, fmt.Errorf("%q is not a dotted OID", s)
		}
		oid[i] = n
	}
	return oid, nil
}

// Settings validates the block and loads the certificate files, reporting
// every problem under path.
func (c Config) Settings(path string) (*Settings, error) {
	var es config.Errors
	bad := func(field, format string, args ...any) {
		es = append(es, config.Error{Path: path + "." + field, Msg: fmt.Sprintf(format, args...)})
	}
	s := &Settings{Family: c.Family, MaxChainLength: c.MaxChainLength}
	switch c.Family {
	case FamilyHBA, FamilySMCB, FamilyEGK, FamilyEmployee, FamilySignature:
	case "":
		bad("family", "required: hba, smcb, egk, employee or signature")
	default:
		bad("family", "%q: use hba, smcb, egk, employee or signature", c.Family)
	}
	if len(c.TrustAnchors) == 0 {
		bad("trust_anchors", "at least one CA certificate file or directory is required")
	}
	for i, f := range c.TrustAnchors {
		certs, err := LoadCertificates(f)
		if err != nil {
			bad(fmt.Sprintf("trust_anchors[%d]", i), "%v", err)
		}
		s.Anchors = append(s.Anchors, certs...)
	}
	for i, f := range c.Intermediates {
		certs, err := LoadCertificates(f)
		if err != nil {
			bad(fmt.Sprintf("intermediates[%d]", i), "%v", err)
		}
		s.Intermediates = append(s.Intermediates, certs...)
	}
	ekus := c.RequiredEKU
	if ekus == nil && c.Family != FamilyEGK {
		// gematik's ECC C.CH.AUT profile (and its test eGK) carries no
		// extended key usage; every other family must name clientAuth.
		ekus = []string{"clientAuth"}
	}
	for i, e := range ekus {
		oid, ok := ekuNames[e]
		if !ok {
			var err error
			if oid, err = ParseOID(e); err != nil {
				bad(fmt.Sprintf("required_eku[%d]", i), "%q: use clientAuth, emailProtection, ... or a dotted OID", e)
				continue
			}
		}
		s.RequiredEKU = append(s.RequiredEKU, oid)
	}
	s.RequiredKeyUsage = c.RequiredKeyUsage
	if s.RequiredKeyUsage == nil {
		s.RequiredKeyUsage = []string{"digitalSignature"}
	}
	for i, k := range s.RequiredKeyUsage {
		bit, ok := keyUsageNames[k]
		if !ok {
			bad(fmt.Sprintf("required_key_usage[%d]", i), "%q is not a key usage", k)
		}
		s.keyUsageBits |= bit
	}
	pols := c.RequiredPolicies
	if pols == nil {
		pols = defaultPolicies[c.Family]
	}
	for i, p := range pols {
		oid, err := ParseOID(p)
		if err != nil {
			bad(fmt.Sprintf("required_policies[%d]", i), "%v", err)
			continue
		}
		s.RequiredPolicies = append(s.RequiredPolicies, oid)
	}
	switch c.Profession {
	case "", "required":
		s.RequireProfession = c.Family == FamilyHBA || c.Family == FamilySMCB
	case "optional":
	default:
		bad("profession", "%q: use required or optional", c.Profession)
	}
	if c.SubjectAttribute != "" {
		oid, err := ParseOID(c.SubjectAttribute)
		if err != nil {
			bad("subject_attribute", "%v", err)
		}
		s.SubjectAttribute = oid
	} else if c.Family == FamilyEmployee {
		bad("subject_attribute", "required for employee cards: the subject attribute (OID) holding the employee number")
	}
	s.LoA = loa.High
	if c.LoA != "" {
		l, err := loa.Parse(c.LoA)
		if err != nil {
			bad("loa", "%v", err)
		}
		s.LoA = l
	}
	s.AMR = c.AMR
	if s.AMR == nil {
		// The broker never sees the PIN: sc and pin are inferred from a
		// card whose key the PIN protects (DOMAIN.md §3.7).
		s.AMR = []string{"sc", "hwk", "pin"}
	}
	if s.MaxChainLength == 0 {
		s.MaxChainLength = 5
	}
	s.Revocation = c.Revocation.settings(bad)
	if s.MaxChainLength < 2 || s.MaxChainLength > 10 {
		bad("max_chain_length", "must be between 2 and 10")
	}
	if len(es) > 0 {
		return nil, es
	}
	return s, nil
}

// LoadCertificates reads every CERTIFICATE block of a PEM file, or of
// every *.pem, *.crt, *.cer file of a directory (not recursive). DER files
// (a single certificate) are accepted too.
func LoadCertificates(name string) ([]*Cert, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	files := []string{name}
	if fi.IsDir() {
		files = nil
		entries, err := os.ReadDir(name)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && slices.Contains([]string{".pem", ".crt", ".cer"}, ext) {
				files = append(files, filepath.Join(name, e.Name()))
			}
		}
	}
	var out []*Cert
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		certs, err := parseCertFile(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, certs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate found", name)
	}
	return out, nil
}

func parseCertFile(data []byte) ([]*Cert, error) {
	if !strings.Contains(string(data), "-----BEGIN") {
		c, err := ParseCertificate(data)
		if err != nil {
			return nil, err
		}
		return []*Cert{c}, nil
	}
	var out []*Cert
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
