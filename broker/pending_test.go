package broker

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
)

// TestPending: a provider's endpoint finds a login only while it waits at
// that provider, and never an expired one.
func TestPending(t *testing.T) {
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
	b.o.Store, b.o.Issuer = st, "https://broker.example"
	params, _ := json.Marshal(LoginParams{MinLoA: loa.High, Attributes: []string{"given_name"}, Lang: "fr en-GB"})
	now := time.Now()
	mk := func(id, state, provider string, expires time.Time) {
		t.Helper()
		tx := &store.Transaction{ID: id, Protocol: "oidc", RPID: "rp", State: state, CreatedAt: now,
			ExpiresAt: expires, Params: params, ProviderID: provider, ProviderState: encodeState([]byte("secret"))}
		if err := st.Transactions().Create(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	mk("waiting", store.TxStateProvider, "eid", now.Add(time.Minute))
	mk("choosing", store.TxStateMethod, "", now.Add(time.Minute))
	mk("expired", store.TxStateProvider, "eid", now.Add(-time.Second))

	req, state, err := b.Pending(ctx, "eid", "waiting")
	if err != nil {
		t.Fatal(err)
	}
	if string(state) != "secret" || req.TransactionID != "waiting" || req.MinLoA != loa.High || req.Lang != "en" ||
		req.CallbackURL != "https://broker.example/login/waiting/callback" || len(req.Attributes) != 1 || req.ClientIP != "" {
		t.Fatalf("Pending = %+v, %q", req, state)
	}
	for _, c := range []struct{ provider, tx string }{
		{"eidas", "waiting"}, {"eid", "choosing"}, {"eid", "expired"}, {"eid", "unknown"},
	} {
		if _, _, err := b.Pending(ctx, c.provider, c.tx); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Pending(%s, %s) = %v, want ErrNotFound", c.provider, c.tx, err)
		}
	}
}
