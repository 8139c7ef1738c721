package broker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/providers"
)

type stubProvider struct{ id, kind string }

func (p stubProvider) ID() string        { return p.id }
func (p stubProvider) Kind() string      { return p.kind }
func (p stubProvider) MaxLoA() loa.Level { return loa.High }

// TestMatchHash: a keyed hash per kind, never the match key itself, and
// none without a match key.
func TestMatchHash(t *testing.T) {
	b := testBroker(t)
	id := &providers.Identity{Kind: "eid", MatchKey: "erika\x00mustermann\x001964-08-12"}
	h := b.matchHash(id)
	if h == "" || h != b.matchHash(id) || strings.Contains(h, "erika") || strings.Contains(h, "1964") {
		t.Fatalf("matchHash = %q", h)
	}
	if b.matchHash(&providers.Identity{Kind: "eidas", MatchKey: id.MatchKey}) == h {
		t.Error("another kind gives the same hash")
	}
	if b.matchHash(&providers.Identity{Kind: "eid", MatchKey: "erika\x00mustermann\x001964-08-13"}) == h {
		t.Error("another birth date gives the same hash")
	}
	other := testBroker(t)
	other.o.PairwiseKey = bytes.Repeat([]byte{2}, 32)
	if other.matchHash(id) == h {
		t.Error("another broker key gives the same hash")
	}
	if b.matchHash(&providers.Identity{Kind: "eid"}) != "" {
		t.Error("a hash without a match key")
	}
	// The match key never travels in a transaction or a session.
	raw, _ := json.Marshal(id)
	if strings.Contains(string(raw), "mustermann") {
		t.Errorf("match key serialised: %s", raw)
	}
}

// TestOfferLink: the offer appears only for an unknown identity whose hash
// matches another account that has a credential usable here, and never
// for prompt=none.
func TestOfferLink(t *testing.T) {
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "tb.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := testBroker(t)
	b.o.Store = st
	b.o.Providers = []Provider{{Provider: stubProvider{"eid", "eid"}}, {Provider: stubProvider{"key", "webauthn"}}, {Provider: stubProvider{"eid2", "eid"}}}
	b.providers = map[string]Provider{}
	for _, p := range b.o.Providers {
		b.providers[p.ID()] = p
	}
	renewed := &providers.Identity{ProviderID: "eid", Kind: "eid", Subject: "new-card", MatchKey: "erika"}
	hash := b.matchHash(renewed)
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.Accounts().Create(ctx, &store.Account{ID: "A"}))
	must(st.Accounts().Link(ctx, store.LinkedIdentity{AccountID: "A", ProviderID: "eid", Subject: "old-card", Kind: "eid", MatchKey: hash}))

	try := func(name string, prompt []string, want bool) {
		t.Helper()
		params, _ := json.Marshal(LoginParams{MinLoA: loa.High, Prompt: prompt})
		tx := &store.Transaction{ID: name, Protocol: "oidc", RPID: "rp", State: store.TxStateProvider, CreatedAt: now,
			ExpiresAt: now.Add(time.Minute), Params: params, ProviderID: "eid"}
		must(st.Transactions().Create(ctx, tx))
		fc := &flowCtx{tx: tx, params: LoginParams{MinLoA: loa.High, Prompt: prompt}, matchHash: hash}
		w := httptest.NewRecorder()
		got, err := b.offerLink(w, httptest.NewRequest(http.MethodGet, "/", nil), fc, renewed)
		must(err)
		if got != want {
			t.Fatalf("%s: offered = %v, want %v", name, got, want)
		}
		stored, err := st.Transactions().Get(ctx, name)
		must(err)
		if want && (w.Code != http.StatusSeeOther || stored.State != store.TxStateLink || stored.ProviderID != "") {
			t.Errorf("%s: %d, state %q", name, w.Code, stored.State)
		}
		if !want && (w.Code != http.StatusOK || w.Body.Len() != 0 || stored.State != store.TxStateProvider) {
			t.Errorf("%s: wrote %d %q, state %q", name, w.Code, w.Body.String(), stored.State)
		}
	}
	// Account A has only eID cards at this provider: nothing to link with.
	try("only-cards", nil, false)
	// A card at another eID provider counts (matching is per kind).
	must(st.Accounts().Link(ctx, store.LinkedIdentity{AccountID: "A", ProviderID: "eid2", Subject: "card-x", Kind: "eid"}))
	try("other-provider", nil, true)
	stored, _ := st.Transactions().Get(ctx, "other-provider")
	var p LoginParams
	must(json.Unmarshal(stored.Params, &p))
	if p.Link == nil {
		t.Fatal("no pending link stored")
	}
	pl := *p.Link
	if pl.Identity.Subject != "new-card" || pl.MatchHash != hash || len(pl.Accounts) != 1 || pl.Accounts[0] != "A" ||
		len(pl.Providers) != 1 || pl.Providers[0] != "eid2" || pl.Accepted {
		t.Errorf("pending link: %+v", pl)
	}
	if strings.Contains(string(stored.Params), `"erika"`) {
		t.Errorf("the raw match key is stored: %s", stored.Params)
	}
	try("prompt-none", []string{"none"}, false)
	// Another hash: no offer.
	saved := hash
	hash = b.matchHash(&providers.Identity{Kind: "eid", MatchKey: "someone else"})
	try("other-person", nil, false)
	hash = saved
	// A known identity: no offer.
	must(st.Accounts().Create(ctx, &store.Account{ID: "B"}))
	must(st.Accounts().Link(ctx, store.LinkedIdentity{AccountID: "B", ProviderID: "eid", Subject: "new-card", Kind: "eid"}))
	try("known", nil, false)
}
