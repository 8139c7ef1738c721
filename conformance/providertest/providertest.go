// Package providertest holds fake providers for tests of the login flow.
// They live here, in test support code, and never in the demo or the
// binary's registry.
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

// Config is the `config` block of the fake providers.
type Config struct {
	// Kind is the credential kind the fake pretends to be.
	Kind string `yaml:"kind"`
	// Subject is the subject it proves.
	Subject string `yaml:"subject"`
	// LoA reached (low, substantial, high).
	LoA string `yaml:"loa"`
	// MaxLoA it advertises; LoA when empty.
	MaxLoA     string            `yaml:"max_loa"`
	AMR        []string          `yaml:"amr"`
	Attributes map[string]string `yaml:"attributes"`
	// Fail makes Complete/Finish fail with this public message.
	Fail string `yaml:"fail"`
	// TrustFramework, when set, makes the identity a verified one
	// (OIDC4IDA evidence: an electronic record checked cryptographically).
	TrustFramework string `yaml:"trust_framework"`
}

// Fake proves the configured identity. As a RedirectProvider it redirects
// straight back to the callback with a one-time value it checks; as a
// CeremonyProvider it hands out a challenge it expects back.
type Fake struct {
	id     string
	cfg    Config
	loa    loa.Level
	maxLoA loa.Level
	now    func() time.Time
}

// Redirect is the redirect-shaped fake.
type Redirect struct{ *Fake }

// Ceremony is the ceremony-shaped fake.
type Ceremony struct{ *Fake }

var (
	_ providers.RedirectProvider = Redirect{}
	_ providers.CeremonyProvider = Ceremony{}
)

// Registry returns a registry with the fake types "fake-redirect" and
// "fake-ceremony".
func Registry() providers.Registry {
	return providers.Registry{
		"fake-redirect": func(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
			f, err := build(id, node, path, deps)
			if err != nil {
				return nil, err
			}
			return Redirect{f}, nil
		},
		"fake-ceremony": func(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
			f, err := build(id, node, path, deps)
			if err != nil {
				return nil, err
			}
			return Ceremony{f}, nil
		},
	}
}

func build(id string, node *yaml.Node, path string, deps providers.Deps) (*Fake, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	if !providers.KnownKind(c.Kind) {
		return nil, config.Errors{{Path: path + ".kind", Msg: "unknown kind " + c.Kind}}
	}
	level, err := loa.Parse(c.LoA)
	if err != nil {
		return nil, config.Errors{{Path: path + ".loa", Msg: err.Error()}}
	}
	maxLevel := level
	if c.MaxLoA != "" {
		if maxLevel, err = loa.Parse(c.MaxLoA); err != nil {
			return nil, config.Errors{{Path: path + ".max_loa", Msg: err.Error()}}
		}
	}
	return &Fake{id: id, cfg: c, loa: level, maxLoA: maxLevel, now: deps.Now}, nil
}

// ID implements providers.Provider.
func (f *Fake) ID() string { return f.id }

// Kind implements providers.Provider.
func (f *Fake) Kind() string { return f.cfg.Kind }

// MaxLoA implements providers.Provider.
func (f *Fake) MaxLoA() loa.Level { return f.maxLoA }

func (f *Fake) identity() (*providers.Identity, error) {
	if f.cfg.Fail != "" {
		return nil, &providers.Error{Code: "fake_failure", Public: f.cfg.Fail, Err: errors.New("configured to fail")}
	}
	attrs := map[string]any{}
	for k, v := range f.cfg.Attributes {
		attrs[k] = v
	}
	id := &providers.Identity{Subject: f.cfg.Subject, Attributes: attrs, LoA: f.loa, AMR: f.cfg.AMR, AuthTime: f.now()}
	if f.cfg.TrustFramework != "" {
		item, _ := json.Marshal(map[string]any{"type": "electronic_record",
			"check_details": []map[string]string{{"check_method": "vcrypt", "organization": "test eID-Server"}}})
		id.Evidence = &providers.Evidence{TrustFramework: f.cfg.TrustFramework, AssuranceLevel: f.loa.String(),
			Time: f.now(), Items: []json.RawMessage{item}}
	}
	return id, nil
}

func nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Begin redirects straight to the callback with a fresh one-time value.
func (p Redirect) Begin(_ context.Context, req providers.Request) (string, []byte, error) {
	n := nonce()
	return req.CallbackURL + "?fake_state=" + url.QueryEscape(n), []byte(n), nil
}

// Complete checks the one-time value.
func (p Redirect) Complete(_ context.Context, _ providers.Request, state []byte, r *http.Request) (*providers.Identity, error) {
	if got := r.URL.Query().Get("fake_state"); got == "" || got != string(state) {
		return nil, &providers.Error{Code: "bad_state", Public: "state mismatch"}
	}
	return p.identity()
}

// Options returns a challenge.
func (p Ceremony) Options(context.Context, providers.Request) (json.RawMessage, []byte, error) {
	n := nonce()
	b, _ := json.Marshal(map[string]string{"challenge": n})
	return b, []byte(n), nil
}

// Finish expects the challenge back.
func (p Ceremony) Finish(_ context.Context, _ providers.Request, state []byte, resp json.RawMessage) (*providers.Identity, error) {
	var body struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(resp, &body); err != nil || body.Challenge == "" || body.Challenge != string(state) {
		return nil, &providers.Error{Code: "bad_challenge", Public: "challenge mismatch"}
	}
	return p.identity()
}
