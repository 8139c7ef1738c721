// Package testpki issues a throwaway card PKI for tests and the demo: a
// root, an intermediate, and HBA-, SMC-B-, eGK-, employee- and
// signature-card-like leaves with the extensions the card provider reads
// (Admission, certificate-type policies, KVNR in the subject OU,
// qcStatements), on RSA, P-256 or brainpoolP256r1 keys, plus expired and
// not-yet-valid variants. Everything here is for tests: keys are weak
// where that is faster and the brainpool signer is not constant time.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/trustbroker/trustbroker/providers/smartcard/brainpool"
)

// KeyType selects a key algorithm.
type KeyType int

const (
	P256 KeyType = iota
	RSA
	Brainpool
)

// Key is a private key of one of the KeyTypes.
type Key struct {
	Type KeyType
	std  crypto.Signer
	bp   *brainpool.PrivateKey
}

// NewKey generates a key.
func NewKey(t KeyType) *Key {
	switch t {
	case RSA:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		return &Key{Type: t, std: k}
	case Brainpool:
		k, err := brainpool.GenerateKey(rand.Reader)
		must(err)
		return &Key{Type: t, bp: k}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	return &Key{Type: t, std: k}
}

// Signer is the crypto.Signer of a standard key (nil for brainpool), e.g.
// for a TLS client certificate.
func (k *Key) Signer() crypto.Signer { return k.std }

func (k *Key) spki() []byte {
	if k.bp != nil {
		b, err := k.bp.PublicKey.MarshalPKIX()
		must(err)
		return b
	}
	b, err := x509.MarshalPKIXPublicKey(k.std.Public())
	must(err)
	return b
}

func must(err error) {
	if err != nil {
		panic("testpki: " + err.Error())
	}
}

// CA is an issuing authority.
type CA struct {
	Cert *x509.Certificate
	DER  []byte
	Key  *Key
	skid []byte
}

// Template fields for Issue.
type Template struct {
	Subject   pkix.Name
	NotBefore time.Time
	NotAfter  time.Time
	IsCA      bool
	KeyUsage  x509.KeyUsage
	ExtKeyUse []asn1.ObjectIdentifier
	Policies  []asn1.ObjectIdentifier
	Emails    []string
	Admission *Admission
	// Qualified adds qcStatements with QcCompliance and QcSSCD.
	Qualified bool
	// NoAuthorityKeyID leaves the authority key identifier out.
	NoAuthorityKeyID bool
	// Extra extensions, e.g. an unknown critical one.
	Extra []pkix.Extension
}

// Admission is the content of the Admission extension for Issue.
type Admission struct {
	ProfessionItem     string
	ProfessionOID      asn1.ObjectIdentifier
	RegistrationNumber string
}

// OIDs used by the templates.
var (
	OIDClientAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	OIDServerAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	OIDEmailProtection = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
	OIDPolicyHBAAut    = asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 75}
	OIDPolicySMCBAut   = asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 77}
	OIDPolicyEGKAut    = asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 70}
	OIDPolicyHBACP     = asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 145}
	OIDPolicyGemOrCP   = asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 163}
	OIDEmployeeNumber  = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 3, 1, 3} // employeeNumber (RFC 2798)
	oidSKI             = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidAKI             = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConst      = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidEKU             = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidPolicies        = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidSAN             = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAdmission       = asn1.ObjectIdentifier{1, 3, 36, 8, 3, 3}
	oidQC              = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

// NewRoot makes a self-signed root CA.
func NewRoot(name string, t KeyType, now time.Time) *CA {
	k := NewKey(t)
	tpl := Template{Subject: pkix.Name{Country: []string{"DE"}, Organization: []string{"Trustbroker TEST-ONLY"}, CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der := issue(tpl, k, nil, k)
	c := parse(der)
	return &CA{Cert: c, DER: der, Key: k, skid: skid(k)}
}

// NewIntermediate makes a CA under ca.
func (ca *CA) NewIntermediate(name string, t KeyType, now time.Time) *CA {
	k := NewKey(t)
	tpl := Template{Subject: pkix.Name{Country: []string{"DE"}, Organization: []string{"Trustbroker TEST-ONLY"}, CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der := ca.Issue(tpl, k)
	return &CA{Cert: parse(der), DER: der, Key: k, skid: skid(k)}
}

// Issue signs a certificate for key under ca.
func (ca *CA) Issue(tpl Template, key *Key) []byte {
	return issue(tpl, key, ca, ca.Key)
}

// parse returns crypto/x509's view (nil fields for brainpool keys, whose
// certificates crypto/x509 refuses; only Subject is needed then).
func parse(der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return &x509.Certificate{Raw: der}
	}
	return c
}

func skid(k *Key) []byte {
	h := sha256.Sum256(k.spki())
	return h[:20]
}

// issue builds the TBSCertificate by hand (crypto/x509.CreateCertificate
// cannot take brainpool keys) and signs it.
func issue(tpl Template, key *Key, ca *CA, signer *Key) []byte {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	must(err)
	subject, err := asn1.Marshal(tpl.Subject.ToRDNSequence())
	must(err)
	issuer := subject
	if ca != nil {
		issuer = rawSubject(ca)
	}
	sigAlg := oidECDSAWithSHA256
	if signer.Type == RSA {
		sigAlg = oidSHA256WithRSA
	}
	exts := []pkix.Extension{{Id: oidSKI, Value: mustMarshal(skid(key))}}
	if ca != nil && !tpl.NoAuthorityKeyID {
		exts = append(exts, pkix.Extension{Id: oidAKI, Value: mustMarshal(struct {
			ID []byte `asn1:"tag:0,optional"`
		}{ca.skid})})
	}
	if tpl.KeyUsage != 0 {
		exts = append(exts, pkix.Extension{Id: oidKeyUsage, Critical: true, Value: keyUsage(tpl.KeyUsage)})
	}
	if tpl.IsCA {
		exts = append(exts, pkix.Extension{Id: oidBasicConst, Critical: true, Value: mustMarshal(struct {
			CA bool `asn1:"optional"`
		}{true})})
	} else {
		exts = append(exts, pkix.Extension{Id: oidBasicConst, Critical: true, Value: mustMarshal(struct{}{})})
	}
	if len(tpl.ExtKeyUse) > 0 {
		exts = append(exts, pkix.Extension{Id: oidEKU, Value: mustMarshal(tpl.ExtKeyUse)})
	}
	if len(tpl.Policies) > 0 {
		type pi struct{ ID asn1.ObjectIdentifier }
		var ps []pi
		for _, p := range tpl.Policies {
			ps = append(ps, pi{p})
		}
		exts = append(exts, pkix.Extension{Id: oidPolicies, Value: mustMarshal(ps)})
	}
	if len(tpl.Emails) > 0 {
		var rv []asn1.RawValue
		for _, e := range tpl.Emails {
			rv = append(rv, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(e)})
		}
		exts = append(exts, pkix.Extension{Id: oidSAN, Value: mustMarshal(rv)})
	}
	if tpl.Admission != nil {
		exts = append(exts, pkix.Extension{Id: oidAdmission, Value: AdmissionDER(*tpl.Admission)})
	}
	if tpl.Qualified {
		exts = append(exts, pkix.Extension{Id: oidQC, Value: QualifiedDER()})
	}
	exts = append(exts, tpl.Extra...)

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) })
		b.AddASN1BigInt(serial)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(sigAlg)
			if signer.Type == RSA {
				b.AddASN1NULL()
			}
		})
		b.AddBytes(issuer)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1UTCTime(tpl.NotBefore.UTC())
			b.AddASN1UTCTime(tpl.NotAfter.UTC())
		})
		b.AddBytes(subject)
		b.AddBytes(key.spki())
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(mustMarshal(exts))
		})
	})
	tbs, err := b.Bytes()
	must(err)
	digest := sha256.Sum256(tbs)
	var sig []byte
	if signer.bp != nil {
		sig, err = brainpool.SignASN1(rand.Reader, signer.bp, digest[:])
	} else {
		sig, err = signer.std.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	must(err)
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(sigAlg)
			if signer.Type == RSA {
				b.AddASN1NULL()
			}
		})
		b.AddASN1BitString(sig)
	})
	der, err := cb.Bytes()
	must(err)
	return der
}

func rawSubject(ca *CA) []byte {
	in := cryptobyte.String(ca.DER)
	var cert, tbs cryptobyte.String
	var skip cryptobyte.String
	var subj cryptobyte.String
	ok := in.ReadASN1(&cert, cbasn1.SEQUENCE) && cert.ReadASN1(&tbs, cbasn1.SEQUENCE) &&
		tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) &&
		tbs.ReadASN1Element(&skip, cbasn1.INTEGER) && tbs.ReadASN1Element(&skip, cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element(&skip, cbasn1.SEQUENCE) && tbs.ReadASN1Element(&skip, cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element(&subj, cbasn1.SEQUENCE)
	if !ok {
		panic("testpki: cannot read CA subject")
	}
	return subj
}

func keyUsage(ku x509.KeyUsage) []byte {
	var bits asn1.BitString
	bits.Bytes = []byte{0, 0}
	for i := 0; i < 9; i++ {
		if ku&(1<<i) != 0 {
			bits.Bytes[i/8] |= 0x80 >> (i % 8)
			bits.BitLength = i + 1
		}
	}
	bits.Bytes = bits.Bytes[:(bits.BitLength+7)/8]
	return mustMarshal(bits)
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	must(err)
	return b
}

// AdmissionDER encodes an Admission extension value with one admission and
// one ProfessionInfo, as gematik issues them.
func AdmissionDER(a Admission) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // contentsOfAdmissions
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Admissions
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // professionInfos
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ProfessionInfo
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.ProfessionItem)) })
						})
						if a.ProfessionOID != nil {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(a.ProfessionOID) })
						}
						if a.RegistrationNumber != "" {
							b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.RegistrationNumber)) })
						}
					})
				})
			})
		})
	})
	out, err := b.Bytes()
	must(err)
	return out
}

// QualifiedDER is a qcStatements value with QcCompliance, QcSSCD and
// QcCClegislation DE.
func QualifiedDER() []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 7})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte("DE")) })
			})
		})
	})
	out, err := b.Bytes()
	must(err)
	return out
}

// Card templates: what each family's authentication certificate carries.

// HBA is a C.HP.AUT-like template (DOMAIN.md §3.1, §3.2).
func HBA(given, family, telematikID string, now time.Time) Template {
	return Template{
		Subject:   pkix.Name{Country: []string{"DE"}, CommonName: given + " " + family + " TEST-ONLY", ExtraNames: names(given, family)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: []asn1.ObjectIdentifier{OIDClientAuth, OIDEmailProtection},
		Policies:  []asn1.ObjectIdentifier{OIDPolicyHBAAut, OIDPolicyHBACP},
		Admission: &Admission{ProfessionItem: "Ärztin/Arzt", ProfessionOID: asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 30}, RegistrationNumber: telematikID},
	}
}

// SMCB is a C.HCI.AUT-like template.
func SMCB(institution, telematikID string, now time.Time) Template {
	return Template{
		Subject:   pkix.Name{Country: []string{"DE"}, CommonName: institution},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: []asn1.ObjectIdentifier{OIDClientAuth},
		Policies:  []asn1.ObjectIdentifier{OIDPolicySMCBAut, OIDPolicyGemOrCP},
		Admission: &Admission{ProfessionItem: "Zahnarztpraxis", ProfessionOID: asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 51}, RegistrationNumber: telematikID},
	}
}

// EGK is a C.CH.AUT-like template: KVNR and IK number in the OU.
func EGK(given, family, kvnr, insurer string, now time.Time) Template {
	return Template{
		Subject: pkix.Name{Country: []string{"DE"}, Organization: []string{insurer}, OrganizationalUnit: []string{"109500969", kvnr},
			CommonName: given + " " + family, ExtraNames: names(given, family)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: []asn1.ObjectIdentifier{OIDClientAuth},
		Policies:  []asn1.ObjectIdentifier{OIDPolicyEGKAut, OIDPolicyGemOrCP},
		Admission: &Admission{ProfessionItem: "Versicherte/-r", ProfessionOID: asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 49}},
	}
}

// Employee is an employee-ID-card template: organisation, e-mail and an
// employeeNumber subject attribute.
func Employee(given, family, org, email, number string, now time.Time) Template {
	n := pkix.Name{Country: []string{"DE"}, Organization: []string{org}, CommonName: given + " " + family,
		ExtraNames: append(names(given, family), pkix.AttributeTypeAndValue{Type: OIDEmployeeNumber, Value: number})}
	return Template{Subject: n, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(3 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: []asn1.ObjectIdentifier{OIDClientAuth}, Emails: []string{email}}
}

// Signature is a qualified signature/bank-card-like template with a
// subject serialNumber.
func Signature(given, family, serialNumber string, now time.Time) Template {
	n := pkix.Name{Country: []string{"DE"}, CommonName: given + " " + family, SerialNumber: serialNumber, ExtraNames: names(given, family)}
	return Template{Subject: n, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: []asn1.ObjectIdentifier{OIDClientAuth}, Qualified: true}
}

func names(given, family string) []pkix.AttributeTypeAndValue {
	return []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 42}, Value: given},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 4}, Value: family},
	}
}

// PEM encodes DER certificates.
func PEM(ders ...[]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

// TLSCertificate is a client certificate for crypto/tls (standard keys only).
func TLSCertificate(key *Key, chain ...[]byte) tls.Certificate {
	return tls.Certificate{Certificate: chain, PrivateKey: key.std}
}
