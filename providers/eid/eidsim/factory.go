package eidsim

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eid"
)

// Type is the configuration `type` of an eID login against the built-in
// simulator.
const Type = "eid-simulator"

// Config is the `config` block of a provider of type "eid-simulator": the
// real eid provider, connected to a simulator it starts on loopback
// listeners. Only a broker whose issuer is a loopback address (the demo,
// the tests) may use it: the simulator proves whatever specimen card the
// tester picks.
//
//	config:
//	  listen: 127.0.0.1:0          # the simulated eID-Server (mTLS)
//	  client_listen: 127.0.0.1:0   # the page standing in for the eID client
//	  psk: server                  # or eservice
//	  transaction_info: "Demo"
//	  place_verification_community_id: "027605"
//	  max_polls: 8
//	  poll_interval: 500ms
//	  pending_polls: 0             # noResultYet answers before the result
//	  rsa_bits: 3072
type Config struct {
	Listen          string `yaml:"listen"`
	ClientListen    string `yaml:"client_listen"`
	PSK             string `yaml:"psk"`
	LoA             string `yaml:"loa"`
	LoARequest      string `yaml:"level_of_assurance_request"`
	TransactionInfo string `yaml:"transaction_info"`
	CommunityID     string `yaml:"place_verification_community_id"`
	MaxPolls        int    `yaml:"max_polls"`
	PollInterval    string `yaml:"poll_interval"`
	Timeout         string `yaml:"timeout"`
	PendingPolls    int    `yaml:"pending_polls"`
	RSABits         int    `yaml:"rsa_bits"`
}

// Factory builds an "eid-simulator" provider: it starts a simulator and
// connects an eid provider to it. The provider's Close stops it.
func Factory(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	u, err := url.Parse(deps.Issuer)
	if err != nil {
		return nil, err
	}
	if !config.IsLoopbackHost(u.Hostname()) {
		return nil, config.Errors{{Path: path, Msg: "the eID simulator proves specimen cards only: it runs for a broker on a loopback address (demo, tests), not for " + deps.Issuer}}
	}
	if c.RSABits != 0 && (c.RSABits < 2048 || c.RSABits > 4096) {
		return nil, config.Errors{{Path: path + ".rsa_bits", Msg: "must be between 2048 and 4096"}}
	}
	if c.PendingPolls < 0 || c.PendingPolls > 20 {
		return nil, config.Errors{{Path: path + ".pending_polls", Msg: "must be between 0 and 20"}}
	}
	s, err := eid.SimulatorOptions(eid.Options{
		PSK: c.PSK, LoA: c.LoA, LoARequest: c.LoARequest, TransactionInfo: c.TransactionInfo, CommunityID: c.CommunityID,
		MaxPolls: c.MaxPolls, PollInterval: c.PollInterval, Timeout: c.Timeout,
	}, path)
	if err != nil {
		return nil, err
	}
	o := Options{Listen: c.Listen, ClientListen: c.ClientListen, Now: deps.Now, RSABits: c.RSABits, PendingPolls: c.PendingPolls}
	if u.Hostname() == "localhost" {
		// The browser reaches the broker as localhost; name the client
		// page the same way.
		o.ClientHost = "localhost"
	}
	sim, err := Start(o)
	if err != nil {
		return nil, err
	}
	Connect(s, sim)
	p, err := eid.New(id, s, deps)
	if err != nil {
		sim.Close()
		return nil, err
	}
	if deps.Logger != nil {
		deps.Logger.Info("eID simulator started (TEST-ONLY certificates, specimen cards, PIN "+PIN+")",
			"provider", id, "eid_server", sim.SOAPURL, "eid_client", sim.ClientURL)
	}
	return p, nil
}

// Connect points settings at a running simulator.
func Connect(s *eid.Settings, sim *Simulator) {
	s.ServerURL = sim.SOAPURL
	s.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: sim.CAPool, Certificates: []tls.Certificate{sim.ClientTLS}}
	s.Signer, _ = sim.ClientTLS.PrivateKey.(crypto.Signer)
	s.SignerCert = sim.ClientTLS.Leaf
	s.ServerCerts = []*x509.Certificate{sim.ServerSigningCert}
	s.ClientURL, s.MobileLink, s.Simulator = sim.ClientURL, false, true
	s.Operator = "Trustbroker eID-Server simulator (TEST ONLY)"
	s.Closer = sim
}

// Simulator returns the simulator behind an "eid-simulator" provider (for
// tests), or an error for another provider.
func SimulatorOf(p providers.Provider) (*Simulator, error) {
	ep, ok := p.(*eid.Provider)
	if !ok {
		return nil, errors.New("eidsim: not an eid provider")
	}
	sim, ok := ep.Closer().(*Simulator)
	if !ok {
		return nil, errors.New("eidsim: the provider has no simulator")
	}
	return sim, nil
}
