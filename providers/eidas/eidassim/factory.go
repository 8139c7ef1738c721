package eidassim

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

// Type is the configuration `type` of an eIDAS login against the built-in
// simulated node.
const Type = "eidas-simulator"

// Config is the `config` block of a provider of type "eidas-simulator":
// the real eidas provider, connected to a simulated node served in
// process under /providers/{id}/node/. Keys of both sides are made at
// start. Only a broker on a loopback address (the demo, the tests) may
// use it: the node proves whatever specimen person the tester picks.
//
//	config:
//	  node_key: ec            # the node signs with ECDSA P-256 (ec) or RSASSA-PSS, RSA-3072 (rsa)
//	  sp_key: ec              # the SP's key: ECDH-ES (ec) or RSA-OAEP (rsa) key transport
//	  node_loa: high          # the highest level the node reaches
//	  request_loa: substantial
//	  country: DE             # the node's (receiving) country
//	  behaviour: ""           # fix one behaviour (normal, lower_loa, tampered, unencrypted, cancel); empty: the tester picks
type Config struct {
	NodeKey    string `yaml:"node_key"`
	SPKey      string `yaml:"sp_key"`
	NodeLoA    string `yaml:"node_loa"`
	RequestLoA string `yaml:"request_loa"`
	Country    string `yaml:"country"`
	Behaviour  string `yaml:"behaviour"`
}

// Provider is an eidas.Provider whose endpoints also serve the simulated
// node.
type Provider struct {
	*eidas.Provider
	Sim *Handler
}

var (
	_ providers.RedirectProvider = (*Provider)(nil)
	_ providers.EndpointProvider = (*Provider)(nil)
)

// Endpoints serves the SP's endpoints and, under /providers/{id}/node/,
// the simulated node.
func (p *Provider) Endpoints(host providers.EndpointHost) http.Handler {
	sp := p.Provider.Endpoints(host)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, p.Sim.Base+"/") {
			p.Sim.ServeHTTP(w, r)
			return
		}
		sp.ServeHTTP(w, r)
	})
}

// Factory builds an "eidas-simulator" provider.
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
		return nil, config.Errors{{Path: path, Msg: "the eIDAS simulator proves specimen persons only: it runs for a broker on a loopback address (demo, tests), not for " + deps.Issuer}}
	}
	var es config.Errors
	bad := func(f, m string) { es = append(es, config.Error{Path: path + "." + f, Msg: m}) }
	for f, v := range map[string]string{"node_key": c.NodeKey, "sp_key": c.SPKey} {
		if v != "" && v != "ec" && v != "rsa" {
			bad(f, "must be ec or rsa")
		}
	}
	nodeLoA, requestLoA := loa.High, loa.Substantial
	if c.NodeLoA != "" {
		if nodeLoA, err = loa.Parse(c.NodeLoA); err != nil {
			bad("node_loa", err.Error())
		}
	}
	if c.RequestLoA != "" {
		if requestLoA, err = loa.Parse(c.RequestLoA); err != nil {
			bad("request_loa", err.Error())
		}
	}
	if c.Country == "" {
		c.Country = "DE"
	} else if len(c.Country) != 2 || strings.ToUpper(c.Country) != c.Country {
		bad("country", "must be an ISO 3166-1 alpha-2 code in capitals")
	}
	if c.Behaviour != "" && !slices.Contains(Behaviours, Behaviour(c.Behaviour)) {
		bad("behaviour", "must be one of normal, lower_loa, tampered, unencrypted, cancel")
	}
	if len(es) > 0 {
		return nil, es
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return New(id, deps, Options{NodeKey: c.NodeKey, SPKey: c.SPKey, NodeLoA: nodeLoA, RequestLoA: requestLoA,
		Country: c.Country, Behaviour: Behaviour(c.Behaviour)})
}

// Options of New.
type Options struct {
	NodeKey, SPKey      string
	NodeLoA, RequestLoA loa.Level
	Country             string
	Behaviour           Behaviour
	// Settings, when set, adjusts the provider's settings before it is
	// built (tests).
	Settings func(*eidas.Settings)
}

// New makes the keys, the simulated node and the provider connected to it.
func New(id string, deps providers.Deps, o Options) (*Provider, error) {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	if o.NodeLoA == loa.None {
		o.NodeLoA = loa.High
	}
	if o.RequestLoA == loa.None {
		o.RequestLoA = loa.Substantial
	}
	if o.Country == "" {
		o.Country = "DE"
	}
	spKey, spCert, err := NewKey(o.SPKey, "Trustbroker eIDAS SP (simulator)", now())
	if err != nil {
		return nil, err
	}
	nodeKey, nodeCert, err := NewKey(o.NodeKey, "eIDAS node (simulator)", now())
	if err != nil {
		return nil, err
	}
	base := "/providers/" + id + "/node"
	issuer := strings.TrimSuffix(deps.Issuer, "/")
	n := &Node{EntityID: issuer + base + "/metadata", SSOURL: issuer + base + "/sso", Country: o.Country,
		Key: nodeKey, Cert: nodeCert, LoA: o.NodeLoA, Now: now}
	s := &eidas.Settings{
		Node:       eidas.StaticNode{N: &eidas.Node{EntityID: n.EntityID, SSOURL: n.SSOURL, Certificates: []*x509.Certificate{nodeCert}, Country: o.Country}},
		SigningKey: spKey, SigningCert: spCert, EncryptionKey: spKey, EncryptionCert: spCert,
		SPType: "public", SPTypeInRequest: true, ProviderName: "Trustbroker", RequestLoA: min(o.RequestLoA, o.NodeLoA), MaxLoA: o.NodeLoA,
		NameIDFormat: eidas.NameIDPersistent, RequireEncryption: true, ClockSkew: time.Minute, MetadataValidity: 7 * 24 * time.Hour,
		Simulator: true,
	}
	if o.Settings != nil {
		o.Settings(s)
	}
	p, err := eidas.New(id, s, deps)
	if err != nil {
		return nil, err
	}
	n.SP = SP{EntityID: p.EntityID(), ACSURL: p.ACSURL(), SigningCert: spCert, EncryptionCert: spCert}
	return &Provider{Provider: p, Sim: &Handler{Node: n, Base: base, Fixed: o.Behaviour}}, nil
}
