package eidas_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A provider from YAML: key files, the node's signed metadata from a
// file, defaults; and the errors of a bad block, all at once.
func TestFactory(t *testing.T) {
	f := newFixture(t, "ec", "ec", nil)
	dir := t.TempDir()
	key, cert, _ := eidassim.NewKey("ec", "SP", time.Now())
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := writePEM(t, dir, "sp.key", "PRIVATE KEY", kder)
	certFile := writePEM(t, dir, "sp.pem", "CERTIFICATE", cert.Raw)
	nodeCert := writePEM(t, dir, "node.pem", "CERTIFICATE", f.node.Cert.Raw)
	md, err := f.node.Metadata(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mdFile := filepath.Join(dir, "node.xml")
	_ = os.WriteFile(mdFile, md, 0o600)
	yml := `
signing_key_file: ` + keyFile + `
signing_cert_file: ` + certFile + `
node_metadata_file: ` + mdFile + `
node_metadata_signers: [` + nodeCert + `]
request_loa: high
`
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(yml), &node); err != nil {
		t.Fatal(err)
	}
	p, err := eidas.Factory("eu", node.Content[0], "providers[0].config", providers.Deps{Issuer: issuer, Store: f.st, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	rp := p.(providers.RedirectProvider)
	if rp.MaxLoA() != loa.High || rp.Kind() != providers.KindEIDAS {
		t.Fatal("defaults")
	}
	target, _, err := rp.Begin(context.Background(), f.request("tx", nil, loa.Low))
	if err != nil || !strings.Contains(target, "/providers/eu/authn/tx") {
		t.Fatalf("Begin with metadata from a file: %q %v", target, err)
	}

	bad := `
signing_key_file: ` + keyFile + `
signing_cert_file: ` + nodeCert + `
sp_type: government
clock_skew: 1h
node_metadata_url: http://node.example/metadata
`
	_ = yaml.Unmarshal([]byte(bad), &node)
	_, err = eidas.Factory("eu", node.Content[0], "providers[0].config", providers.Deps{Issuer: issuer, Store: f.st})
	if err == nil {
		t.Fatal("bad block accepted")
	}
	for _, want := range []string{"sp_type", "clock_skew", "does not certify", "node_metadata_url", "node_metadata_signers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

// Metadata from a URL: read, cached until the refresh, the last good copy
// kept while a refresh fails, never beyond its validUntil.
func TestMetadataSourceRefresh(t *testing.T) {
	f := newFixture(t, "ec", "ec", nil)
	md, _ := f.node.Metadata(2 * time.Hour)
	calls, fail := 0, false
	src := &eidas.MetadataSource{URL: "https://node.test/metadata", Signers: []*x509.Certificate{f.node.Cert}, Refresh: time.Hour,
		Fetch: func(ctx context.Context, url string) ([]byte, error) {
			calls++
			if fail {
				return nil, errors.New("down")
			}
			return md, nil
		}}
	now := f.now
	n, err := src.Node(context.Background(), now)
	if err != nil || n.SSOURL != f.node.SSOURL || n.Country != "DE" {
		t.Fatalf("%+v %v", n, err)
	}
	if _, err := src.Node(context.Background(), now.Add(30*time.Minute)); err != nil || calls != 1 {
		t.Fatalf("not cached: %d calls, %v", calls, err)
	}
	fail = true
	if _, err := src.Node(context.Background(), now.Add(90*time.Minute)); err != nil || calls != 2 {
		t.Fatalf("last good copy not kept: %d calls, %v", calls, err)
	}
	if _, err := src.Node(context.Background(), now.Add(3*time.Hour)); err == nil {
		t.Fatal("expired metadata used")
	}
}
