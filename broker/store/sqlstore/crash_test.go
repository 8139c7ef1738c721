package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// crashChildEnv marks the child process of TestCrash and holds its DSN.
const crashChildEnv = "TRUSTBROKER_TEST_CRASH_CHILD_DSN"

const (
	crashMinCommits = 200              // commits seen before the kill
	crashTimeout    = 60 * time.Second // for the whole exercise
	committedPrefix = "committed "
)

// TestCrash kills a process that is writing to the store with SIGKILL and
// checks that every transaction it reported committed survived, and that
// the database opens cleanly afterwards.
func TestCrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Parallel()
		dsn := b.newDSN(t)
		st := openStore(t, dsn, nil) // migrated before the child starts
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		ids := runCrashChild(t, dsn)

		st, err := Open(t.Context(), dsn, Options{})
		if err != nil {
			t.Fatalf("reopen after the crash: %v", err)
		}
		defer st.Close()
		if _, err := st.Migrate(t.Context()); err != nil {
			t.Fatalf("migrate after the crash: %v", err)
		}
		checkCommitted(t, st, ids)
		if b.name == DialectSQLite {
			var res string
			if err := st.db.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
				t.Fatalf("integrity_check = %q, %v", res, err)
			}
		}
	})
}

// runCrashChild starts TestCrashChild on dsn, kills it with SIGKILL once
// it has reported at least crashMinCommits commits, and returns the IDs
// it reported.
func runCrashChild(t *testing.T, dsn string) []string {
	ctx, cancel := context.WithTimeout(t.Context(), crashTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dsn)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	killAt := crashMinCommits + rand.IntN(100)
	var ids []string
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), committedPrefix)
		if !ok {
			continue
		}
		ids = append(ids, id)
		if !killed && len(ids) >= killAt {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("crash child timed out after %v with %d commits\n%s", crashTimeout, len(ids), stderr.Bytes())
	case !killed:
		t.Fatalf("crash child ended after %d commits before being killed: %v\n%s", len(ids), err, stderr.Bytes())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash child: %v, want death by SIGKILL", err)
	}
	t.Logf("killed the writer after %d reported commits", len(ids))
	return ids
}

// checkCommitted checks that every account in ids exists with its audit
// event.
func checkCommitted(t *testing.T, st *Store, ids []string) {
	ctx := t.Context()
	for _, id := range ids {
		if _, err := st.Accounts().Get(ctx, id); err != nil {
			t.Fatalf("committed account %s lost: %v", id, err)
		}
		evs, err := st.Audit().List(ctx, store.AuditFilter{Target: id})
		if err != nil || len(evs) != 1 {
			t.Fatalf("audit event of committed account %s: %v, %v", id, evs, err)
		}
	}
}

// TestCrashChild is the writer TestCrash kills; it does nothing unless
// started by TestCrash. Each iteration creates an account and appends its
// audit event in one transaction, and reports the account ID on stdout
// (unbuffered) only after the commit.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashChildEnv)
	if dsn == "" {
		t.Skip("helper process of TestCrash")
	}
	ctx := context.Background()
	st, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(crashTimeout) // never outlive a vanished parent for long
	for i := 0; time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("crash-%06d", i)
		err := st.InTx(ctx, func(tx store.Store) error {
			if err := tx.Accounts().Create(ctx, &store.Account{ID: id}); err != nil {
				return err
			}
			return tx.Audit().Append(ctx, &store.AuditEvent{Actor: "system", Action: "crash.write", Target: id})
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintln(os.Stdout, committedPrefix+id); err != nil {
			t.Fatal(err)
		}
	}
}
