package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	// PKCS#12 is an old, intricate format (BER, PBES2 with PBKDF2, MACs)
	// that the standard library only reads in part (x/crypto/pkcs12 is
	// frozen and decode-only). go-pkcs12 is the maintained fork of it
	// that also encodes, with the AES-256/PBKDF2/SHA-256 profile that
	// current browsers and OpenSSL 3 import; writing it by hand would be
	// more code to get wrong than the rest of this command.
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

const testpkiUsage = `Usage: trustbroker testpki [-out DIR] [-name "Given Family"] [-host localhost]

Issues a TEST-ONLY card PKI for the demo and prints the configuration to use
it: a root and an issuing CA (root.pem, inter.pem), an employee card as a
PKCS#12 file (card.p12, with a random password printed once) to import into
a browser, and a TLS server certificate for the card-login listener
(server.pem, server.key). Never use these for anything but tests.
`

func (e env) testpkiCmd(args []string) error {
	fs := flag.NewFlagSet("testpki", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), testpkiUsage); fs.PrintDefaults() }
	out := fs.String("out", "testpki", "`directory` to write the files into (created)")
	given := fs.String("given", "Max", "the card holder's given name")
	family := fs.String("family", "Mustermann", "the card holder's family name")
	number := fs.String("number", "E-0001", "the employee number on the card")
	host := fs.String("host", "localhost", "host name of the card-login listener's server certificate")
	listen := fs.String("listen", "localhost:8443", "card-login listener address for the printed configuration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errConfig{errors.New("testpki: no arguments, only flags")}
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	password, err := writeTestPKI(dir, *given, *family, *number, *host)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `Test card PKI written to %[1]s (TEST-ONLY).

Card:     %[1]s/card.p12 (%[2]s %[3]s, employee number %[4]s)
Password: %[5]s

Import card.p12 into the browser's certificate store (Firefox: Settings,
Certificates, Your Certificates, Import; Chromium: Settings, Privacy and
security, Security, Manage certificates). The card-login listener uses a
self-signed server certificate: accept it once at https://%[6]s/.

Configuration:

server:
  card_login:
    listen: "%[6]s"
    url: "https://%[6]s"
    cert_file: "%[1]s/server.pem"
    key_file: "%[1]s/server.key"
providers:
  - id: employee-card
    type: smartcard
    name: {de: Dienstausweis (Test), en: Employee card (test)}
    config:
      family: employee
      trust_anchors: ["%[1]s/root.pem"]
      intermediates: ["%[1]s/inter.pem"]
      subject_attribute: 2.16.840.1.113730.3.1.3 # employeeNumber
      loa: high
      revocation: {mode: soft} # the test PKI runs no OCSP responder
`, dir, *given, *family, *number, password, *listen)
	return nil
}

// writeTestPKI issues a TEST-ONLY root and issuing CA, an employee card as
// PKCS#12 and a card-login server certificate into dir, and returns the
// card's password.
func writeTestPKI(dir, given, family, number, host string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	now := time.Now()
	root := testpki.NewRoot("Trustbroker Demo Card Root TEST-ONLY", testpki.P256, now)
	inter := root.NewIntermediate("Trustbroker Demo Card CA TEST-ONLY", testpki.P256, now)
	key := testpki.NewKey(testpki.P256)
	leafDER := inter.Issue(testpki.Employee(given, family, "Trustbroker Demo TEST-ONLY", "max@example.org", number, now), key)
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return "", err
	}
	password, err := randomPassword()
	if err != nil {
		return "", err
	}
	p12, err := pkcs12.Modern2023.Encode(key.Signer(), leaf, []*x509.Certificate{inter.Cert}, password)
	if err != nil {
		return "", fmt.Errorf("testpki: PKCS#12: %w", err)
	}
	serverCert, serverKey, err := serverCertificate(host, now)
	if err != nil {
		return "", err
	}
	for name, data := range map[string][]byte{
		"root.pem": testpki.PEM(root.DER), "inter.pem": testpki.PEM(inter.DER), "card.p12": p12,
		"server.pem": serverCert, "server.key": serverKey,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	return password, nil
}

// demoPKIDir holds the demo's TEST-ONLY card PKI; broker/config/demo.yaml
// names the files in it.
const demoPKIDir = "./trustbroker-demo-pki"

// ensureDemoPKI issues the demo's card PKI on first start and says where
// the card is and its password: a newcomer imports card.p12 into the
// browser and logs in with it (TEST-ONLY material, shown on purpose).
func ensureDemoPKI(logger *slog.Logger) error {
	pwFile := filepath.Join(demoPKIDir, "card-password.txt")
	card := filepath.Join(demoPKIDir, "card.p12")
	if pw, err := os.ReadFile(pwFile); err == nil {
		logger.Info("demo card: import the PKCS#12 file into the browser to log in with it", "file", card, "password", strings.TrimSpace(string(pw)))
		return nil
	}
	pw, err := writeTestPKI(demoPKIDir, "Max", "Mustermann", "E-0001", "localhost")
	if err != nil {
		return fmt.Errorf("demo card PKI: %w", err)
	}
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	logger.Warn("demo mode: issued a TEST-ONLY card PKI; import the card into the browser to log in with it (accept the card listener's self-signed certificate at https://localhost:8443 once)",
		"file", card, "password", pw)
	return nil
}

// randomPassword is 96 random bits, readable enough to type.
func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// serverCertificate is a self-signed P-256 certificate for host (a name
// or an IP address) and localhost.
func serverCertificate(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, nil, err
	}
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host + " (Trustbroker card login TEST-ONLY)"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if ip := net.ParseIP(host); ip != nil {
		tpl.IPAddresses = append(tpl.IPAddresses, ip)
	} else if host != "localhost" {
		tpl.DNSNames = append(tpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}
