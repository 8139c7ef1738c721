package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointer copies the WAL back into the database file in the
// background.
//
// SQLite's automatic checkpoint runs inside the commit that takes the WAL
// past 1,000 pages: that commit then reads those pages back and writes
// them into the database file (with two fsyncs) while the whole write
// group waits for it, a stall of several milliseconds every few dozen
// commits on a busy broker. With wal_autocheckpoint(0) set on every
// connection, the checkpointer runs a PASSIVE checkpoint on a connection of
// its own after every checkpointEvery group commits (and at least every
// checkpointIdle while commits happen): PASSIVE never waits for the
// writers nor makes them wait.
//
// A writer restarts the WAL from its beginning only once everything in it
// is checkpointed and no reader still reads from it, which a checkpoint
// running beside the writers never achieves under load: it copies what
// was committed when it began while new commits append. So when the WAL
// has grown past walRestartPages, the checkpointer takes a turn in the
// write queue with no group open (groupCommit.exclusive) and checkpoints
// again: with no writer between it copies the rest (little, the
// background checkpoints copied the bulk), and the next group writes the
// WAL from its beginning. That checkpoint is PASSIVE too: a RESTART
// checkpoint would wait (busy_timeout) for readers of older snapshots
// while every writer waits for it, and a reader that holds its snapshot
// for long (an online backup) would stall the writers for seconds.
//
// A DSN that sets wal_autocheckpoint itself keeps SQLite's behaviour and
// gets no checkpointer.
type checkpointer struct {
	db      *sql.DB
	writers *groupCommit
	log     *slog.Logger
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// restartPages is walRestartPages (tests set less).
	restartPages atomic.Int64
	// commits counts group commits; checkpointed is its value at the last
	// checkpoint.
	commits      atomic.Int64
	checkpointed int64
}

const (
	checkpointEvery = 16
	checkpointIdle  = time.Second
	// walRestartPages is SQLite's default wal_autocheckpoint times four.
	walRestartPages = 4000
)

func startCheckpointer(db *sql.DB, writers *groupCommit, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, writers: writers, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c.restartPages.Store(walRestartPages)
	writers.committed = c.committed
	go c.run()
	return c
}

// committed counts a group commit and wakes the checkpointer every
// checkpointEvery of them; it never blocks.
func (c *checkpointer) committed() {
	if c.commits.Add(1)%checkpointEvery == 0 {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointIdle)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-t.C:
		}
		if n := c.commits.Load(); n != c.checkpointed {
			c.checkpointed = n
			c.checkpoint()
		}
	}
}

// checkpoint runs one PASSIVE checkpoint beside the writers and, when the
// WAL is long, finishes it in a turn of the write queue. Errors are
// logged: the WAL then grows until a later checkpoint succeeds, which
// loses nothing.
func (c *checkpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The connection is taken before the turn: holding the turn while
	// waiting for a pooled connection could wait for a connection that
	// waits for the turn.
	conn, err := c.db.Conn(ctx)
	if err != nil {
		c.log.Warn("sqlstore: WAL checkpoint: no connection", "err", err)
		return
	}
	defer conn.Close()
	walPages, err := c.passive(ctx, conn)
	if err != nil || int64(walPages) < c.restartPages.Load() {
		return
	}
	// With no writer between, the checkpoint copies everything committed
	// (unless a reader still reads an older snapshot: it then copies what
	// it can, and never waits), and the next writer restarts the WAL.
	err = c.writers.exclusive(ctx, func() { _, _ = c.passive(ctx, conn) })
	if err != nil {
		c.log.Warn("sqlstore: WAL checkpoint: no turn in the write queue", "err", err)
	}
}

// passive runs a PASSIVE checkpoint and returns the WAL's length in pages.
func (c *checkpointer) passive(ctx context.Context, conn *sql.Conn) (int, error) {
	var busy, walPages, copied int
	err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &walPages, &copied)
	if err != nil {
		c.log.Warn("sqlstore: WAL checkpoint failed", "err", err)
	}
	return walPages, err
}

// close stops the checkpointer; SQLite checkpoints once more when the last
// connection closes.
func (c *checkpointer) close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
	})
}
