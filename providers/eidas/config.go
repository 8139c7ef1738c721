package eidas

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/loa"
)

// Config is the `config` block of a provider of type "eidas".
//
//	config:
//	  entity_id: https://login.example.org/providers/eu-eid/metadata  # default: the metadata URL
//	  node_metadata_url: https://connector.example.eu/metadata        # or node_metadata_file
//	  node_metadata_signers: [/etc/trustbroker/eidas/node-metadata-signer.pem]
//	  metadata_refresh: 1h
//	  signing_key_file: /etc/trustbroker/eidas/sp-sign.key      # EC P-256/384/521 or RSA >= 3072 (PKCS#8/SEC1/PKCS#1 PEM)
//	  signing_cert_file: /etc/trustbroker/eidas/sp-sign.pem
//	  encryption_key_file: /etc/trustbroker/eidas/sp-enc.key    # default: the signing key
//	  encryption_cert_file: /etc/trustbroker/eidas/sp-enc.pem
//	  sp_type: public               # public | private
//	  sp_type_in_request: true      # also send eidas:SPType in each AuthnRequest
//	  provider_name: Trustbroker
//	  requester_id: ""              # Scoping/RequesterID (private SPs)
//	  request_loa: substantial      # the least level asked for; the relying party may ask for more
//	  max_loa: high                 # the highest level the node can reach
//	  name_id_format: persistent    # persistent | transient | unspecified
//	  require_encryption: true      # refuse unencrypted assertions
//	  accept_not_notified: false    # accept http://eidas.europa.eu/NotNotified/LoA/... answers
//	  clock_skew: 60s               # at most 5m
//	  metadata_validity: 168h       # validUntil of the SP metadata
type Config struct {
	EntityID            string   `yaml:"entity_id"`
	NodeMetadataURL     string   `yaml:"node_metadata_url"`
	NodeMetadataFile    string   `yaml:"node_metadata_file"`
	NodeMetadataSigners []string `yaml:"node_metadata_signers"`
	MetadataRefresh     string   `yaml:"metadata_refresh"`
	SigningKeyFile      string   `yaml:"signing_key_file"`
	SigningCertFile     string   `yaml:"signing_cert_file"`
	EncryptionKeyFile   string   `yaml:"encryption_key_file"`
	EncryptionCertFile  string   `yaml:"encryption_cert_file"`
	SPType              string   `yaml:"sp_type"`
	SPTypeInRequest     *bool    `yaml:"sp_type_in_request"`
	ProviderName        string   `yaml:"provider_name"`
	RequesterID         string   `yaml:"requester_id"`
	RequestLoA          string   `yaml:"request_loa"`
	MaxLoA              string   `yaml:"max_loa"`
	NameIDFormat        string   `yaml:"name_id_format"`
	RequireEncryption   *bool    `yaml:"require_encryption"`
	AcceptNotNotified   bool     `yaml:"accept_not_notified"`
	ClockSkew           string   `yaml:"clock_skew"`
	MetadataValidity    string   `yaml:"metadata_validity"`
}

// Settings are the validated configuration. The simulator builds them
// directly (with an in-process node).
type Settings struct {
	// EntityID of the SP; empty: the metadata URL under the issuer.
	EntityID string
	// Node is where the node's entity ID, SSO URL and certificates come
	// from.
	Node NodeSource

	SigningKey      crypto.Signer
	SigningCert     *x509.Certificate
	EncryptionKey   crypto.PrivateKey
	EncryptionCert  *x509.Certificate
	SPType          string
	SPTypeInRequest bool
	ProviderName    string
	RequesterID     string
	RequestLoA      loa.Level
	MaxLoA          loa.Level
	NameIDFormat    string
	// RequireEncryption refuses assertions that did not arrive encrypted.
	RequireEncryption bool
	AcceptNotNotified bool
	ClockSkew         time.Duration
	MetadataValidity  time.Duration
	// Simulator marks a provider connected to the built-in simulator (its
	// pages say so).
	Simulator bool
}

const maxClockSkew = 5 * time.Minute

// Settings validates c, reading the key and certificate files.
func (c Config) Settings(path string, fetch Fetcher) (*Settings, error) {
	var es config.Errors
	bad := func(field, msg string) { es = append(es, config.Error{Path: path + "." + field, Msg: msg}) }
	s := &Settings{EntityID: c.EntityID, SPType: c.SPType, ProviderName: c.ProviderName, RequesterID: c.RequesterID,
		SPTypeInRequest:   c.SPTypeInRequest == nil || *c.SPTypeInRequest,
		RequireEncryption: c.RequireEncryption == nil || *c.RequireEncryption, AcceptNotNotified: c.AcceptNotNotified}
	if s.EntityID != "" {
		if u, err := url.Parse(s.EntityID); err != nil || !u.IsAbs() {
			bad("entity_id", "must be an absolute URL (the metadata URL, by eIDAS convention)")
		}
	}
	switch s.SPType {
	case "":
		s.SPType = "public"
	case "public", "private":
	default:
		bad("sp_type", "must be public or private")
	}
	if s.SPType == "private" && s.RequesterID == "" {
		bad("requester_id", "a private SP names the requester (Scoping/RequesterID)")
	}
	if s.ProviderName == "" {
		s.ProviderName = "Trustbroker"
	}
	var err error
	if s.RequestLoA, err = levelOr(c.RequestLoA, loa.Substantial); err != nil {
		bad("request_loa", err.Error())
	}
	if s.MaxLoA, err = levelOr(c.MaxLoA, loa.High); err != nil {
		bad("max_loa", err.Error())
	}
	if s.RequestLoA > s.MaxLoA {
		bad("request_loa", "is above max_loa")
	}
	switch c.NameIDFormat {
	case "", "persistent":
		s.NameIDFormat = NameIDPersistent
	case "transient":
		s.NameIDFormat = NameIDTransient
	case "unspecified":
		s.NameIDFormat = NameIDUnspecified
	default:
		bad("name_id_format", "must be persistent, transient or unspecified")
	}
	if s.ClockSkew, err = durationOr(c.ClockSkew, time.Minute); err != nil || s.ClockSkew < 0 || s.ClockSkew > maxClockSkew {
		bad("clock_skew", "must be a duration between 0 and 5m")
	}
	if s.MetadataValidity, err = durationOr(c.MetadataValidity, 7*24*time.Hour); err != nil || s.MetadataValidity < time.Hour {
		bad("metadata_validity", "must be a duration of at least 1h")
	}
	refresh, err := durationOr(c.MetadataRefresh, time.Hour)
	if err != nil || refresh < time.Minute {
		bad("metadata_refresh", "must be a duration of at least 1m")
	}

	if c.SigningKeyFile == "" || c.SigningCertFile == "" {
		bad("signing_key_file", "signing_key_file and signing_cert_file are required")
	} else if s.SigningKey, s.SigningCert, err = LoadKeyPair(c.SigningKeyFile, c.SigningCertFile); err != nil {
		bad("signing_key_file", err.Error())
	}
	switch {
	case c.EncryptionKeyFile == "" && c.EncryptionCertFile == "":
		if s.SigningKey != nil {
			s.EncryptionKey, s.EncryptionCert = s.SigningKey, s.SigningCert
		}
	case c.EncryptionKeyFile == "" || c.EncryptionCertFile == "":
		bad("encryption_key_file", "encryption_key_file and encryption_cert_file go together")
	default:
		k, cert, err := LoadKeyPair(c.EncryptionKeyFile, c.EncryptionCertFile)
		if err != nil {
			bad("encryption_key_file", err.Error())
		}
		s.EncryptionKey, s.EncryptionCert = k, cert
	}

	var signers []*x509.Certificate
	for i, f := range c.NodeMetadataSigners {
		certs, err := LoadCertificates(f)
		if err != nil {
			bad(fmt.Sprintf("node_metadata_signers[%d]", i), err.Error())
		}
		signers = append(signers, certs...)
	}
	if c.NodeMetadataURL != "" {
		if err := checkURL(c.NodeMetadataURL); err != nil {
			bad("node_metadata_url", err.Error())
		}
	}
	switch {
	case (c.NodeMetadataURL == "") == (c.NodeMetadataFile == ""):
		bad("node_metadata_url", "set exactly one of node_metadata_url and node_metadata_file")
	case len(c.NodeMetadataSigners) == 0:
		bad("node_metadata_signers", "the certificates that sign the node's metadata are required")
	case c.NodeMetadataURL != "":
		s.Node = &MetadataSource{URL: c.NodeMetadataURL, Signers: signers, Refresh: refresh, Fetch: fetch}
	default:
		s.Node = &MetadataSource{File: c.NodeMetadataFile, Signers: signers, Refresh: refresh}
	}
	if len(es) > 0 {
		return nil, es
	}
	if err := s.check(); err != nil {
		return nil, config.Errors{{Path: path, Msg: err.Error()}}
	}
	return s, nil
}

// check enforces the eIDAS crypto requirements on the SP's own keys.
func (s *Settings) check() error {
	if s.SigningKey == nil || s.SigningCert == nil || s.EncryptionKey == nil || s.EncryptionCert == nil {
		return errors.New("eidas: signing and encryption keys are required")
	}
	if err := checkKey(s.SigningKey.Public()); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if err := checkKey(s.EncryptionCert.PublicKey); err != nil {
		return fmt.Errorf("encryption key: %w", err)
	}
	return nil
}

// checkKey: EC keys on P-256/384/521, RSA keys of at least 3072 bits
// (eIDAS Cryptographic Requirements §2, as the EUMW enforces them).
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256, 384, 521:
			return nil
		}
		return fmt.Errorf("curve %s is not supported", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 3072 {
			return fmt.Errorf("RSA key of %d bits: eIDAS needs at least 3072", k.N.BitLen())
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

func levelOr(s string, def loa.Level) (loa.Level, error) {
	if s == "" {
		return def, nil
	}
	return loa.Parse(s)
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

// checkURL accepts https URLs, and http only on loopback (tests, demo).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" {
		if config.IsLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return errors.New("must be an https URL (http only on loopback)")
}

// LoadKeyPair reads a PEM private key (PKCS#8, SEC 1 or PKCS#1) and the
// PEM certificate that goes with it.
func LoadKeyPair(keyFile, certFile string) (crypto.Signer, *x509.Certificate, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := ParsePrivateKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	certs, err := LoadCertificates(certFile)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeysEqual(key.Public(), certs[0].PublicKey) {
		return nil, nil, fmt.Errorf("%s does not certify the key in %s", certFile, keyFile)
	}
	return key, certs[0], nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	k, ok := a.(eq)
	return ok && k.Equal(b)
}

// ParsePrivateKey reads the first PEM private key of data.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var p *pem.Block
		p, data = pem.Decode(data)
		if p == nil {
			return nil, errors.New("no PEM private key")
		}
		switch p.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(p.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported key type %T", k)
			}
			return s, nil
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(p.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(p.Bytes)
		}
	}
}

// LoadCertificates reads the PEM (or a single DER) certificates of a file.
func LoadCertificates(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return certs, nil
}

// ParseCertificates reads PEM certificates, or one DER certificate.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	if !strings.Contains(string(b), "-----BEGIN") {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{c}, nil
	}
	return keys.ParsePEMCertificates(b)
}
