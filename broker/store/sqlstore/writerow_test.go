package sqlstore

import (
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// TestWriteRowQueued: writes that return a row (audit events, disclosures,
// relying parties: INSERT … RETURNING) wait for their turn in the write
// queue like every other write, instead of meeting SQLite's lock; with
// busy_timeout(0) a write that went to SQLite while a transaction held the
// lock would fail at once with SQLITE_BUSY.
func TestWriteRowQueued(t *testing.T) {
	dsn := testBackends[0].newDSN(t)
	st, err := Open(t.Context(), dsn+"?_pragma=busy_timeout(0)", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tx, end, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "held", "r")); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		errs <- st.Audit().Append(ctx, &store.AuditEvent{Actor: "a", Action: "test.queued"})
	}()
	go func() {
		errs <- st.RelyingParties().Put(ctx, &store.RelyingParty{ID: "rp-queued", Protocol: "oidc", Name: "x", Source: "config"})
	}()
	time.Sleep(50 * time.Millisecond) // let both reach the queue (or SQLite)
	if err := end(true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("write while a transaction held the lock: %v", err)
		}
	}
}
