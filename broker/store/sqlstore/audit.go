package sqlstore

import (
	"context"
	"strings"

	"github.com/trustbroker/trustbroker/broker/store"
)

type auditRepo struct{ s *Store }

var _ store.Audit = (*auditRepo)(nil)

// Audit list limits (store.AuditFilter.Limit).
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

const auditCols = "occurred_at, actor, action, target, outcome, reason, request_id, details"

func scanAuditEvent(r rowScanner, _ ...any) (*store.AuditEvent, error) {
	var ev store.AuditEvent
	err := r.Scan(&ev.Seq, timeCol{&ev.Time}, &ev.Actor, &ev.Action, &ev.Target, &ev.Outcome, &ev.Reason,
		&ev.RequestID, jsonCol{&ev.Details})
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// Append implements store.Audit. A zero Time is set to now; Seq is
// assigned by the database and written back to ev.
func (r *auditRepo) Append(ctx context.Context, ev *store.AuditEvent) error {
	details, err := jsonArg("details", ev.Details)
	if err != nil {
		return wrap(err, "append audit event %q", ev.Action)
	}
	ev.Time = r.s.defaultTime(ev.Time)
	err = r.s.writeRow(ctx, []any{&ev.Seq},
		"INSERT INTO audit_events ("+auditCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
		micros(ev.Time), ev.Actor, ev.Action, ev.Target, ev.Outcome, ev.Reason, ev.RequestID, details)
	return wrap(err, "append audit event %q", ev.Action)
}

// List implements store.Audit: the events matching f, by ascending Seq, at
// most f.Limit of them (100 when zero or negative, never more than 1000).
func (r *auditRepo) List(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var q strings.Builder
	q.WriteString("SELECT seq, " + auditCols + " FROM audit_events WHERE seq > ?")
	args := []any{f.AfterSeq}
	for _, c := range []struct{ col, val string }{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}} {
		if c.val != "" {
			q.WriteString(" AND " + c.col + " = ?")
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		q.WriteString(" AND occurred_at >= ?")
		args = append(args, micros(f.Since))
	}
	q.WriteString(" ORDER BY seq LIMIT ?")
	args = append(args, auditLimit(f.Limit))
	evs, err := getAll(ctx, r.s, scanAuditEvent, q.String(), args...)
	return evs, wrap(err, "list audit events")
}

func auditLimit(n int) int {
	switch {
	case n <= 0:
		return defaultAuditLimit
	case n > maxAuditLimit:
		return maxAuditLimit
	default:
		return n
	}
}
