package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/trustbroker/trustbroker/providers/smartcard/brainpool"
)

// Revocation helpers: responder certificates, AIA and CRL distribution
// point extensions, OCSP responses (well-formed and deliberately broken),
// CRLs and the index file `openssl ocsp` serves.

var (
	OIDOCSPSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
	oidAIA         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidCRLDP       = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAccessOCSP  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidOCSPBasic   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNonce   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1        = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
)

// KeyPEM is the PKCS#8 PEM of a standard key (for openssl).
func (k *Key) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.std)
	must(err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// AIA is an authorityInfoAccess extension naming an OCSP responder.
func AIA(ocspURL string) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidAccessOCSP)
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ocspURL)) })
		})
	})
	out, err := b.Bytes()
	must(err)
	return pkix.Extension{Id: oidAIA, Value: out}
}

// CRLDP is a cRLDistributionPoints extension with one URL.
func CRLDP(u string) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // distributionPoint
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // fullName
					b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
				})
			})
		})
	})
	out, err := b.Bytes()
	must(err)
	return pkix.Extension{Id: oidCRLDP, Value: out}
}

// Responder issues a delegated OCSP responder certificate under ca
// (id-kp-OCSPSigning unless eku says otherwise).
func (ca *CA) Responder(name string, t KeyType, now time.Time, eku ...asn1.ObjectIdentifier) (*Key, []byte) {
	if eku == nil {
		eku = []asn1.ObjectIdentifier{OIDOCSPSigning}
	}
	k := NewKey(t)
	der := ca.Issue(Template{Subject: pkix.Name{Country: []string{"DE"}, Organization: []string{"Trustbroker TEST-ONLY"}, CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUse: eku}, k)
	return k, der
}

// OCSPStatus values for OCSPResponse.
const (
	OCSPGood = iota
	OCSPRevoked
	OCSPUnknown
)

// OCSPResponse describes a BasicOCSPResponse for BuildOCSPResponse.
type OCSPResponse struct {
	Issuer     *CA      // whose certificate the answer is about
	Serial     *big.Int // the certificate's serial number
	Status     int
	RevokedAt  time.Time
	ThisUpdate time.Time
	NextUpdate time.Time // zero: absent
	// Nonce is the nonce extension's extnValue to echo; nil: none.
	Nonce []byte
	// SignerName is the DER subject the ResponderID names; SignerKey
	// signs; Certs are embedded.
	SignerName []byte
	SignerKey  *Key
	Certs      [][]byte
}

// BuildOCSPResponse encodes and signs r (ECDSA or RSA with SHA-256,
// brainpool included). Nothing is checked: tests build broken answers.
func BuildOCSPResponse(r OCSPResponse) []byte {
	spki := cryptobyte.String(r.Issuer.Key.spki())
	var seq, alg cryptobyte.String
	var bits asn1.BitString
	if !spki.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) {
		panic("testpki: issuer key")
	}
	nameHash, keyHash := sha1.Sum(rawSubject(r.Issuer)), sha1.Sum(bits.Bytes)
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(r.SignerName) })
		b.AddASN1GeneralizedTime(r.ThisUpdate.UTC().Truncate(time.Second))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSHA1); b.AddASN1NULL() })
					b.AddASN1OctetString(nameHash[:])
					b.AddASN1OctetString(keyHash[:])
					b.AddASN1BigInt(r.Serial)
				})
				switch r.Status {
				case OCSPGood:
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
				case OCSPRevoked:
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(r.RevokedAt.UTC().Truncate(time.Second))
					})
				default:
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
				}
				b.AddASN1GeneralizedTime(r.ThisUpdate.UTC().Truncate(time.Second))
				if !r.NextUpdate.IsZero() {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(r.NextUpdate.UTC().Truncate(time.Second))
					})
				}
			})
		})
		if r.Nonce != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidOCSPNonce)
						b.AddASN1OctetString(r.Nonce)
					})
				})
			})
		}
	})
	tbs, err := tb.Bytes()
	must(err)
	digest := sha256.Sum256(tbs)
	var sig []byte
	sigAlg := oidECDSAWithSHA256
	switch {
	case r.SignerKey.bp != nil:
		sig, err = brainpool.SignASN1(rand.Reader, r.SignerKey.bp, digest[:])
	default:
		if r.SignerKey.Type == RSA {
			sigAlg = oidSHA256WithRSA
		}
		sig, err = r.SignerKey.std.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	must(err)
	var bb cryptobyte.Builder
	bb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(sigAlg)
			if r.SignerKey.Type == RSA {
				b.AddASN1NULL()
			}
		})
		b.AddASN1BitString(sig)
		if len(r.Certs) > 0 {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range r.Certs {
						b.AddBytes(c)
					}
				})
			})
		}
	})
	basic, err := bb.Bytes()
	must(err)
	var ob cryptobyte.Builder
	ob.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1OctetString(basic)
			})
		})
	})
	out, err := ob.Bytes()
	must(err)
	return out
}

// SubjectDER is the DER subject of a certificate (brainpool ones included).
func SubjectDER(der []byte) []byte { return rawSubject(&CA{DER: der}) }

// CRL issues a CRL of ca (standard keys only) revoking serials.
func (ca *CA) CRL(thisUpdate, nextUpdate time.Time, serials ...*big.Int) []byte {
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(thisUpdate.Unix()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key.std)
	must(err)
	return der
}

// IndexEntry is one line of an OpenSSL CA database (index.txt).
type IndexEntry struct {
	Cert      []byte // DER; standard keys, crypto/x509 must parse it
	RevokedAt time.Time
}

// OpenSSLIndex renders the index file `openssl ocsp -index` serves:
// status, expiry, revocation time, serial in hex, file name, subject.
func OpenSSLIndex(entries ...IndexEntry) []byte {
	var sb strings.Builder
	t := func(x time.Time) string { return x.UTC().Format("060102150405Z") }
	for _, e := range entries {
		c, err := x509.ParseCertificate(e.Cert)
		must(err)
		status, rev := "V", ""
		if !e.RevokedAt.IsZero() {
			status, rev = "R", t(e.RevokedAt)+",keyCompromise"
		}
		serial := strings.ToUpper(c.SerialNumber.Text(16))
		if len(serial)%2 == 1 {
			serial = "0" + serial
		}
		subject := ""
		for _, rdn := range c.Subject.ToRDNSequence() {
			for _, a := range rdn {
				subject += fmt.Sprintf("/%s=%v", shortName(a.Type), a.Value)
			}
		}
		fmt.Fprintf(&sb, "%s\t%s\t%s\t%s\tunknown\t%s\n", status, t(c.NotAfter), rev, serial, subject)
	}
	return []byte(sb.String())
}

func shortName(oid asn1.ObjectIdentifier) string {
	switch oid.String() {
	case "2.5.4.3":
		return "CN"
	case "2.5.4.6":
		return "C"
	case "2.5.4.10":
		return "O"
	}
	return oid.String()
}
