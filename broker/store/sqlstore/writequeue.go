package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// groupCommit runs this process's SQLite writes one after the other in Go
// and commits them in groups.
//
// SQLite has one write lock per database. A writer that finds it taken
// sleeps in the busy handler (1, 2, 5, 10… ms) and tries again, so under
// load most of a write's latency was sleeping while the lock had long been
// free again; queued here, the next writer starts the moment the previous
// one is done. And every commit writes each page it changed to the WAL
// (two write system calls per page): a token row touches six B-trees, and
// pages such as the table's last leaf are the same for every new token.
// Writers that queue up while one writes therefore share its transaction:
// each runs inside a SAVEPOINT of its own (its rollback undoes only its
// own work), and the last writer of the group, finding nobody waiting,
// commits for all. A writer whose work is part of the group returns only
// after that commit, with its result: nothing is reported written before it
// is committed, and durability is what synchronous gives a single commit.
// Writers of one group see each other's writes as if they had run one after
// the other, which they did.
//
// Writes are Exec outside a transaction and whole transactions (InTx,
// Begin). The write lock itself stays SQLite's: other processes (the CLI,
// a second broker on the same file) still meet busy_timeout. A writer
// waits at most queueTimeout for its turn and then fails: a caller that
// breaks the InTx rule and writes through the outer Store inside a
// transaction gets an error, not a hang.
type groupCommit struct {
	db *sql.DB
	// dedicated: the groups run on one connection of their own (conn,
	// taken from the pool when first needed), see writeConn.
	dedicated bool
	conn      *sql.Conn
	// committed, when set, is called after each successful group commit.
	committed func()
	timeout   time.Duration
	maxGroup  int

	mu      sync.Mutex
	busy    bool      // a writer holds the turn
	waiters []*waiter // in arrival order
	cur     *group    // the open group, nil when none
}

type waiter struct {
	ch      chan struct{}
	granted bool
}

// group is one SQLite transaction shared by consecutive writers.
type group struct {
	tx      *sql.Tx
	members int
	broken  bool // a savepoint could not be released or rolled back
	done    chan struct{}
	err     error // the commit's, valid after done
}

const (
	// queueTimeout matches the busy_timeout the DSN sets.
	queueTimeout = 10 * time.Second
	// maxGroup bounds the writers of one commit (and so the latency the
	// first of them waits for the others).
	maxGroup = 32
)

// ErrWriteQueueTimeout: a writer did not get its turn in time.
var ErrWriteQueueTimeout = errors.New("sqlstore: timed out waiting for the SQLite write queue")

func newGroupCommit(db *sql.DB, dedicated bool) *groupCommit {
	return &groupCommit{db: db, dedicated: dedicated, timeout: queueTimeout, maxGroup: maxGroup}
}

// begin begins a group's transaction; the caller holds the turn.
//
// With a dedicated connection every group runs on the same one. SQLite
// drops a connection's whole page cache when it finds that another
// connection changed the database since its last transaction; the pages a
// connection wrote itself stay cached. Groups that ran on whichever pooled
// connection was free therefore began by reading from the WAL, one read
// system call per page, the B-tree pages the previous group had just
// written (the tables' last leaves, the index pages of active tokens);
// on the connection that wrote them they are in memory.
func (g *groupCommit) begin(ctx context.Context) (*sql.Tx, error) {
	if !g.dedicated {
		return g.db.BeginTx(ctx, nil)
	}
	if g.conn == nil {
		c, err := g.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		g.conn = c
	}
	tx, err := g.conn.BeginTx(ctx, nil)
	if err != nil {
		// A broken connection is not reused: the next group takes a
		// fresh one from the pool.
		_ = g.conn.Close()
		g.conn = nil
	}
	return tx, err
}

// close returns the dedicated connection; the caller makes sure no writer
// runs.
func (g *groupCommit) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		_ = g.conn.Close()
		g.conn = nil
	}
}

// acquire waits for the writer's turn.
func (g *groupCommit) acquire(ctx context.Context) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	w := &waiter{ch: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ch:
		return nil
	case <-t.C:
		err = ErrWriteQueueTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		return nil // handed the turn while giving up: it is ours now
	}
	if i := slices.Index(g.waiters, w); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
	}
	return err
}

// passLocked hands the turn to the next waiter, or frees it; g.mu is held.
func (g *groupCommit) passLocked() {
	if len(g.waiters) == 0 {
		g.busy = false
		return
	}
	w := g.waiters[0]
	g.waiters = g.waiters[1:]
	w.granted = true
	close(w.ch)
}

// join waits for the turn and enters the open group (or opens one). It
// returns the group's transaction and the member's end, which releases
// (commit) or rolls back its savepoint and returns once the group's fate
// is known.
func (g *groupCommit) join(ctx context.Context) (*sql.Tx, func(commit bool) error, error) {
	if err := g.acquire(ctx); err != nil {
		return nil, nil, err
	}
	gr := g.cur
	if gr == nil {
		// Not the request's context: cancelling one writer must not roll
		// back the others.
		tx, err := g.begin(context.WithoutCancel(ctx))
		if err != nil {
			g.mu.Lock()
			g.passLocked()
			g.mu.Unlock()
			return nil, nil, fmt.Errorf("sqlstore: begin transaction: %w", err)
		}
		gr = &group{tx: tx, done: make(chan struct{})}
		g.cur = gr
	}
	gr.members++
	sp := "tb_w" + strconv.Itoa(gr.members)
	if _, err := gr.tx.ExecContext(context.WithoutCancel(ctx), "SAVEPOINT "+sp); err != nil {
		gr.broken = true
		_ = g.leave(gr, false)
		return nil, nil, fmt.Errorf("sqlstore: savepoint: %w", err)
	}
	ended := false
	return gr.tx, func(commit bool) error {
		if ended {
			return errors.New("sqlstore: transaction ended twice")
		}
		ended = true
		bg := context.Background()
		var err error
		if commit {
			if _, err = gr.tx.ExecContext(bg, "RELEASE "+sp); err != nil {
				err = fmt.Errorf("sqlstore: commit: %w", err)
			}
		}
		if !commit || err != nil {
			_, rerr := gr.tx.ExecContext(bg, "ROLLBACK TO "+sp)
			if rerr == nil {
				_, rerr = gr.tx.ExecContext(bg, "RELEASE "+sp)
			}
			if rerr != nil {
				gr.broken = true
			}
		}
		if gerr := g.leave(gr, commit && err == nil); err == nil && commit {
			err = gerr
		}
		return err
	}, nil
}

// leave ends a member's turn: the group stays open for the next waiter,
// or is committed (rolled back when broken) when nobody waits or it is
// full. A member whose work is in the group waits for the group's end and
// gets its error.
func (g *groupCommit) leave(gr *group, kept bool) error {
	g.mu.Lock()
	if len(g.waiters) > 0 && gr.members < g.maxGroup && !gr.broken {
		g.passLocked()
		g.mu.Unlock()
		if !kept {
			return nil
		}
		<-gr.done
		return gr.err
	}
	g.cur = nil
	g.mu.Unlock()
	g.end(gr)
	g.mu.Lock()
	g.passLocked()
	g.mu.Unlock()
	return gr.err
}

// end commits a group (rolls it back when broken) and tells its members;
// the caller holds the turn and has taken the group out of g.cur.
func (g *groupCommit) end(gr *group) {
	if gr.broken {
		_ = gr.tx.Rollback()
		gr.err = errors.New("sqlstore: a write of the group failed inside SQLite; the group was rolled back")
	} else if err := gr.tx.Commit(); err != nil {
		gr.err = fmt.Errorf("sqlstore: commit: %w", err)
	} else if g.committed != nil {
		g.committed()
	}
	close(gr.done)
}

// exclusive runs fn holding the turn with no group open: a group the last
// writer left open for us (leave hands the turn on to a waiter) is
// committed first, so everything written is committed while fn runs and
// nothing is written until it returns.
func (g *groupCommit) exclusive(ctx context.Context, fn func()) error {
	if err := g.acquire(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	gr := g.cur
	g.cur = nil
	g.mu.Unlock()
	if gr != nil {
		g.end(gr)
	}
	fn()
	g.mu.Lock()
	g.passLocked()
	g.mu.Unlock()
	return nil
}
