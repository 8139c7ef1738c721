package dpop

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
)

// TestReplayThroughSQLStore proves replay refusal through the real store,
// across two verifiers standing for two replicas, and that a store
// failure is never taken for success.
func TestReplayThroughSQLStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "x.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The store checks expiry on its own (real) clock, so the verifiers
	// run at the real time too.
	now := time.Now().Truncate(time.Second)
	newReplica := func() *Verifier {
		v, err := NewVerifier(Options{Now: func() time.Time { return now }, Replay: st.Replay()})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	replicaA, replicaB := newReplica(), newReplica()

	es := key("ES256")
	claims := claimsAt(now, map[string]any{"jti": randomJTI(t)})
	p := es.proof(t, claims)
	if _, err := replicaA.Verify(ctx, tokenRequest(p)); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*Verifier{"same replica": replicaA, "other replica": replicaB} {
		_, err := v.Verify(ctx, tokenRequest(p))
		de := wantRefusal(t, err, CodeInvalidProof, "used before")
		if !errors.Is(de, store.ErrConflict) {
			t.Errorf("%s: refusal does not wrap store.ErrConflict: %v", name, de)
		}
	}
	if _, err := replicaB.Verify(ctx, tokenRequest(key("EdDSA").proof(t, claims))); err != nil {
		t.Errorf("same jti under another key: %v", err)
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fresh := es.proof(t, claimsAt(now, nil))
	pr, err := replicaA.Verify(ctx, tokenRequest(fresh))
	var de *Error
	if pr != nil || err == nil || errors.As(err, &de) {
		t.Fatalf("with the store closed: Verify = %v, %v; want a non-refusal error", pr, err)
	}
}
