package eidas_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

const issuer = "https://broker.test"

type fixture struct {
	spKey crypto.Signer
	p     *eidas.Provider
	node  *eidassim.Node
	st    store.Store
	now   time.Time
}

// newFixture wires a provider to a simulated node, keys of the given
// kinds ("ec" or "rsa"), in process.
func newFixture(t testing.TB, spKind, nodeKind string, mutate func(*eidas.Settings)) *fixture {
	t.Helper()
	f := &fixture{now: time.Now().UTC().Truncate(time.Millisecond)}
	clock := func() time.Time { return f.now }
	st, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "tb.db"), sqlstore.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.st = st
	spKey, spCert, err := newKey(spKind, "SP")
	if err != nil {
		t.Fatal(err)
	}
	f.spKey = spKey
	nodeKey, nodeCert, err := newKey(nodeKind, "Node")
	if err != nil {
		t.Fatal(err)
	}
	f.node = &eidassim.Node{EntityID: "https://node.test/metadata", SSOURL: "https://node.test/sso", Country: "DE",
		Key: nodeKey, Cert: nodeCert, LoA: loa.High, Now: clock}
	s := &eidas.Settings{
		Node:       eidas.StaticNode{N: &eidas.Node{EntityID: f.node.EntityID, SSOURL: f.node.SSOURL, Certificates: []*x509.Certificate{nodeCert}}},
		SigningKey: spKey, SigningCert: spCert, EncryptionKey: spKey, EncryptionCert: spCert,
		SPType: "public", SPTypeInRequest: true, ProviderName: "Trustbroker Test", RequestLoA: loa.Substantial, MaxLoA: loa.High,
		NameIDFormat: eidas.NameIDPersistent, RequireEncryption: true, ClockSkew: time.Minute, MetadataValidity: 24 * time.Hour,
	}
	if mutate != nil {
		mutate(s)
	}
	f.p, err = eidas.New("eu", s, providers.Deps{Now: clock, Issuer: issuer, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	f.node.SP = eidassim.SP{EntityID: f.p.EntityID(), ACSURL: f.p.ACSURL(), SigningCert: spCert, EncryptionCert: spCert}
	return f
}

func (f *fixture) request(tx string, claims []string, min loa.Level) providers.Request {
	return providers.Request{TransactionID: tx, RPID: "rp", Attributes: claims, MinLoA: min, Lang: "en",
		CallbackURL: issuer + "/login/" + tx + "/callback"}
}

// begin runs Begin and lets the node read the AuthnRequest.
func (f *fixture) begin(t testing.TB, req providers.Request) ([]byte, *eidassim.Request, []byte) {
	t.Helper()
	target, state, err := f.p.Begin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(target, issuer+"/providers/eu/authn/"+req.TransactionID+"?k=") {
		t.Fatalf("Begin target %s", target)
	}
	var st struct {
		Req []byte `json:"req"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	nr, err := f.node.ReadRequest(base64.StdEncoding.EncodeToString(st.Req))
	if err != nil {
		t.Fatalf("node refuses the AuthnRequest: %v\n%s", err, st.Req)
	}
	return state, nr, st.Req
}

// complete posts a response to the callback as the ACS relay does.
func (f *fixture) complete(req providers.Request, state, response []byte) (*providers.Identity, error) {
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(response)}, "RelayState": {req.TransactionID}}
	r := httptest.NewRequest(http.MethodPost, req.CallbackURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.p.Complete(context.Background(), req, state, r)
}

type etreeElement = etree.Element

// rsaKeys caches RSA-3072 keys by role: making one takes seconds under
// -race, and no test needs a fresh one (EC keys are made each time).
var rsaKeys sync.Map

type keyPair struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func newKey(kind, role string) (crypto.Signer, *x509.Certificate, error) {
	if kind != "rsa" {
		return eidassim.NewKey(kind, role, time.Now())
	}
	if kp, ok := rsaKeys.Load(role); ok {
		return kp.(keyPair).key, kp.(keyPair).cert, nil
	}
	k, c, err := eidassim.NewKey(kind, role, time.Now())
	if err == nil {
		rsaKeys.Store(role, keyPair{k, c})
	}
	return k, c, err
}
