package eidsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// pki is the simulator's TEST-ONLY certificate set, made at start: a CA,
// the eID-Server's TLS and signing certificates, and the eService's client
// certificate (TLS and WS-Security), all valid for a year.
type pki struct {
	ca         *x509.Certificate
	caKey      crypto.Signer
	serverTLS  tls.Certificate
	serverSig  *x509.Certificate
	serverKey  *rsa.PrivateKey
	clientTLS  tls.Certificate
	clientCert *x509.Certificate
	clientKey  *rsa.PrivateKey
}

func newPKI(rsaBits int) (*pki, error) {
	p := &pki{}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: name("TEST-ONLY eID simulator CA"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if p.ca, err = create(caTmpl, caTmpl, caKey.Public(), caKey); err != nil {
		return nil, err
	}
	p.caKey = caKey
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := create(&x509.Certificate{
		SerialNumber: serial(), Subject: name("TEST-ONLY eID-Server simulator"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, p.ca, tlsKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	p.serverTLS = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: tlsKey, Leaf: leaf}
	if p.serverKey, err = rsa.GenerateKey(rand.Reader, rsaBits); err != nil {
		return nil, err
	}
	if p.serverSig, err = create(&x509.Certificate{
		SerialNumber: serial(), Subject: name("TEST-ONLY eID-Server simulator signature"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
	}, p.ca, &p.serverKey.PublicKey, caKey); err != nil {
		return nil, err
	}
	if p.clientKey, err = rsa.GenerateKey(rand.Reader, rsaBits); err != nil {
		return nil, err
	}
	if p.clientCert, err = create(&x509.Certificate{
		SerialNumber: serial(), Subject: name("TEST-ONLY eService (Trustbroker)"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.ca, &p.clientKey.PublicKey, caKey); err != nil {
		return nil, err
	}
	p.clientTLS = tls.Certificate{Certificate: [][]byte{p.clientCert.Raw}, PrivateKey: p.clientKey, Leaf: p.clientCert}
	return p, nil
}

func name(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"Trustbroker demo"}, Country: []string{"DE"}}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
