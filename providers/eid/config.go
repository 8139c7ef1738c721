package eid

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

// Type is the configuration `type` of a real eID-Server connection.
const Type = "eid"

// DefaultClientURL is where a local eID client (AusweisApp) listens
// (TR-03124-1 §2.2).
const DefaultClientURL = "http://127.0.0.1:24727/eID-Client"

// Config is the `config` block of a provider of type "eid": the broker as
// eService of a certified eID-Server over the SOAP eID-Interface.
//
//	config:
//	  server_url: https://eid.example.org/eID-Server/eID   # SOAP endpoint
//	  client_cert_file: /etc/trustbroker/eid/client.pem    # TLS client certificate (mTLS)
//	  client_key_file: /etc/trustbroker/eid/client.key
//	  signing_cert_file: ...        # WS-Security InitiatorToken; default the client certificate
//	  signing_key_file: ...
//	  server_ca_file: /etc/trustbroker/eid/server-ca.pem   # trust anchors of the server's TLS certificate
//	  server_signing_cert_files: [/etc/trustbroker/eid/server-sig.pem]  # RecipientToken(s)
//	  client_url: http://127.0.0.1:24727/eID-Client        # the eID client's activation address
//	  mobile_link: true             # also offer eid:// for the mobile AusweisApp
//	  psk: server                   # server: the eID-Server makes the TLS-2 PSK; eservice: the broker does
//	  loa: high                     # the most this connection proves
//	  level_of_assurance_request: http://bsi.bund.de/eID/LoA/hoch   # optional LevelOfAssuranceRequest
//	  eid_types: {card_certified: ALLOWED, se_certified: ALLOWED, se_endorsed: DENIED, hw_keystore: DENIED}
//	  transaction_info: "Anmeldung bei Trustbroker"
//	  place_verification_community_id: "027605"            # for the place_verified claim
//	  operator: "Example eID-Service GmbH"                 # the evidence's check organisation
//	  max_polls: 8                  # getResult calls before giving up
//	  poll_interval: 500ms          # grows by itself with every call
//	  timeout: 15s                  # per SOAP call
//	  ecard_server_address: https://eid.example.org/paos   # when useID names none
//	  require_timestamp: true       # answers must carry a signed wsu:Timestamp
type Config struct {
	ServerURL              string            `yaml:"server_url"`
	ClientCertFile         string            `yaml:"client_cert_file"`
	ClientKeyFile          string            `yaml:"client_key_file"`
	SigningCertFile        string            `yaml:"signing_cert_file"`
	SigningKeyFile         string            `yaml:"signing_key_file"`
	ServerCAFile           string            `yaml:"server_ca_file"`
	ServerSigningCertFiles []string          `yaml:"server_signing_cert_files"`
	EIDTypes               map[string]string `yaml:"eid_types"`
	ClientURL              string            `yaml:"client_url"`
	MobileLink             *bool             `yaml:"mobile_link"`
	PSK                    string            `yaml:"psk"`
	LoA                    string            `yaml:"loa"`
	LoARequest             string            `yaml:"level_of_assurance_request"`
	TransactionInfo        string            `yaml:"transaction_info"`
	CommunityID            string            `yaml:"place_verification_community_id"`
	Operator               string            `yaml:"operator"`
	MaxPolls               int               `yaml:"max_polls"`
	PollInterval           string            `yaml:"poll_interval"`
	Timeout                string            `yaml:"timeout"`
	ECardServerAddress     string            `yaml:"ecard_server_address"`
	RequireTimestamp       *bool             `yaml:"require_timestamp"`
}

// Options returns the options an "eid" and an "eid-simulator" share.
func (c Config) Options() Options {
	return Options{ClientURL: c.ClientURL, MobileLink: c.MobileLink, PSK: c.PSK, LoA: c.LoA, LoARequest: c.LoARequest,
		TransactionInfo: c.TransactionInfo, CommunityID: c.CommunityID, Operator: c.Operator, MaxPolls: c.MaxPolls,
		PollInterval: c.PollInterval, Timeout: c.Timeout}
}

// Options are the settings an "eid" and an "eid-simulator" provider share
// (see Config for their keys).
type Options struct {
	ClientURL       string
	MobileLink      *bool
	PSK             string
	LoA             string
	LoARequest      string
	TransactionInfo string
	CommunityID     string
	Operator        string
	MaxPolls        int
	PollInterval    string
	Timeout         string
}

// Settings is a validated configuration.
type Settings struct {
	ServerURL string
	// TLS is the client side of the mutually authenticated channel.
	TLS *tls.Config
	// Signer and SignerCert sign requests (InitiatorToken).
	Signer     crypto.Signer
	SignerCert *x509.Certificate
	// ServerCerts verify answers (RecipientToken).
	ServerCerts []*x509.Certificate
	ClientURL   string
	MobileLink  bool
	// EServicePSK: the broker supplies the PSK in useID.
	EServicePSK     bool
	LoA             loa.Level
	LoARequest      string
	EIDTypes        *EIDTypes
	TransactionInfo string
	CommunityID     string
	Operator        string
	MaxPolls        int
	PollInterval    time.Duration
	Timeout         time.Duration
	// ECardServerAddress is used when useID answers without one.
	ECardServerAddress string
	// TimestampOptional accepts answers without a signed wsu:Timestamp
	// (a present one must still be signed and current).
	TimestampOptional bool
	// Simulator marks a connection to the built-in simulator (the pages
	// say so).
	Simulator bool
	// Closer stops what the provider owns (the simulator); may be nil.
	Closer io.Closer
}

// Settings validates c, reporting every error under path.
func (c Config) Settings(path string) (*Settings, error) {
	var es config.Errors
	bad := func(field, msg string) { es = append(es, config.Error{Path: path + "." + field, Msg: msg}) }
	s, oerrs := c.Options().settings(path)
	es = append(es, oerrs...)
	u, err := url.Parse(c.ServerURL)
	if c.ServerURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		bad("server_url", "must be the https URL of the eID-Server's SOAP endpoint")
	}
	s.ServerURL = c.ServerURL
	s.TimestampOptional = c.RequireTimestamp != nil && !*c.RequireTimestamp
	if s.ECardServerAddress = c.ECardServerAddress; s.ECardServerAddress != "" && checkTokenURL(s.ECardServerAddress) != nil {
		bad("ecard_server_address", "must be an https URL")
	}
	var clientCert tls.Certificate
	if c.ClientCertFile == "" || c.ClientKeyFile == "" {
		bad("client_cert_file", "the eID-Interface needs mutually authenticated TLS: set client_cert_file and client_key_file")
	} else if clientCert, err = tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile); err != nil {
		bad("client_cert_file", err.Error())
	}
	roots := x509.NewCertPool()
	if c.ServerCAFile == "" {
		bad("server_ca_file", "required: the trust anchors of the eID-Server's TLS certificate")
	} else if pemBytes, err := os.ReadFile(c.ServerCAFile); err != nil || !roots.AppendCertsFromPEM(pemBytes) {
		bad("server_ca_file", "no PEM certificates readable")
	}
	if len(c.ServerSigningCertFiles) == 0 {
		bad("server_signing_cert_files", "required: the eID-Server's WS-Security signing certificate(s)")
	}
	for i, f := range c.ServerSigningCertFiles {
		certs, err := readCerts(f)
		if err != nil {
			bad(fmt.Sprintf("server_signing_cert_files[%d]", i), err.Error())
		}
		s.ServerCerts = append(s.ServerCerts, certs...)
	}
	sigCert, sigKey := c.SigningCertFile, c.SigningKeyFile
	if sigCert == "" && sigKey == "" {
		sigCert, sigKey = c.ClientCertFile, c.ClientKeyFile
	}
	if sigCert != "" && sigKey != "" {
		kp, err := tls.LoadX509KeyPair(sigCert, sigKey)
		if err != nil {
			bad("signing_cert_file", err.Error())
		} else if signer, ok := kp.PrivateKey.(crypto.Signer); ok {
			s.Signer, s.SignerCert = signer, kp.Leaf
		}
	} else {
		bad("signing_cert_file", "set both signing_cert_file and signing_key_file, or neither")
	}
	types := &EIDTypes{}
	for k, v := range c.EIDTypes {
		if v != "ALLOWED" && v != "DENIED" {
			bad("eid_types."+k, "must be ALLOWED or DENIED")
			continue
		}
		switch k {
		case "card_certified":
			types.CardCertified = v
		case "se_certified":
			types.SECertified = v
		case "se_endorsed":
			types.SEEndorsed = v
		case "hw_keystore":
			types.HWKeyStore = v
		default:
			bad("eid_types."+k, "unknown eID type (card_certified, se_certified, se_endorsed, hw_keystore)")
		}
	}
	if len(c.EIDTypes) > 0 {
		s.EIDTypes = types
	}
	if len(es) > 0 {
		return nil, es
	}
	s.TLS = &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{clientCert},
	}
	return s, nil
}

// settings validates the shared options.
func (o Options) settings(path string) (*Settings, config.Errors) {
	var es config.Errors
	bad := func(field, msg string) { es = append(es, config.Error{Path: path + "." + field, Msg: msg}) }
	s := &Settings{ClientURL: o.ClientURL, MobileLink: o.MobileLink == nil || *o.MobileLink, LoA: loa.High,
		LoARequest: o.LoARequest, TransactionInfo: o.TransactionInfo, CommunityID: o.CommunityID, Operator: o.Operator,
		MaxPolls: 8, PollInterval: 500 * time.Millisecond, Timeout: 15 * time.Second}
	if s.ClientURL == "" {
		s.ClientURL = DefaultClientURL
	}
	if u, err := url.Parse(s.ClientURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		bad("client_url", "must be an http(s) URL without a query")
	}
	switch o.PSK {
	case "", "server":
	case "eservice":
		s.EServicePSK = true
	default:
		bad("psk", "must be server or eservice")
	}
	if o.LoA != "" {
		l, err := loa.Parse(o.LoA)
		if err != nil {
			bad("loa", err.Error())
		}
		s.LoA = l
	}
	if o.LoARequest != "" {
		if _, ok := loaFromURI(o.LoARequest); !ok {
			bad("level_of_assurance_request", "must be a LevelOfAssuranceType URI (http://bsi.bund.de/eID/LoA/... or http://eidas.europa.eu/LoA/...)")
		}
	}
	if o.CommunityID != "" && (!allDigits(o.CommunityID) || len(o.CommunityID) > 16) {
		bad("place_verification_community_id", "must be digits (a Wohnort-ID per TR-03127)")
	}
	if o.MaxPolls != 0 {
		if o.MaxPolls < 1 || o.MaxPolls > 30 {
			bad("max_polls", "must be between 1 and 30")
		}
		s.MaxPolls = o.MaxPolls
	}
	for _, d := range []struct {
		field, val string
		dst        *time.Duration
		lo, hi     time.Duration
	}{
		{"poll_interval", o.PollInterval, &s.PollInterval, 10 * time.Millisecond, 10 * time.Second},
		{"timeout", o.Timeout, &s.Timeout, time.Second, 2 * time.Minute},
	} {
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil || v < d.lo || v > d.hi {
			bad(d.field, fmt.Sprintf("must be a duration between %s and %s", d.lo, d.hi))
			continue
		}
		*d.dst = v
	}
	return s, es
}

// SimulatorOptions validates the options of a simulator connection.
func SimulatorOptions(o Options, path string) (*Settings, error) {
	s, es := o.settings(path)
	if len(es) > 0 {
		return nil, es
	}
	return s, nil
}

func readCerts(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return keys.ParsePEMCertificates(b)
}

// Factory builds a provider of type "eid".
func Factory(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	s, err := c.Settings(path)
	if err != nil {
		return nil, err
	}
	return New(id, s, deps)
}
