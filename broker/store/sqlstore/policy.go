package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/trustbroker/trustbroker/broker/store"
)

// policyValues is the number of value columns of policy_rules (v0..v11):
// the longest Casbin line of the policy model.
const policyValues = 12

// PolicyNotifyChannel is the PostgreSQL channel a policy write notifies.
const PolicyNotifyChannel = "trustbroker_policy"

// ErrInvalidPolicy wraps the reason the adapter's check refused a line.
var ErrInvalidPolicy = errors.New("invalid policy line")

// PolicyAdapter is the Casbin persist adapter over the store: policy lines
// ("p" rules, "g" role assignments) in the table policy_rules. Every write
// runs in one transaction that also bumps policy_revision and, on
// PostgreSQL, notifies PolicyNotifyChannel, so that every replica reloads.
// It implements Casbin's persist.Adapter and persist.ContextAdapter; the
// context-free methods of persist.Adapter use context.Background, as that
// interface leaves no other choice: callers that have a context use the
// ...Ctx methods.
type PolicyAdapter struct {
	s *Store
	// check refuses invalid lines before they are written; nil accepts
	// every line of the right length.
	check func(ptype string, rule []string) error
}

var (
	_ persist.Adapter        = (*PolicyAdapter)(nil)
	_ persist.ContextAdapter = (*PolicyAdapter)(nil)
)

// PolicyAdapter returns the policy adapter. check, when not nil, is asked
// about every line before it is written (the policy engine's validation).
func (s *Store) PolicyAdapter(check func(ptype string, rule []string) error) *PolicyAdapter {
	return &PolicyAdapter{s: s, check: check}
}

func valueCols() string {
	var b strings.Builder
	for i := range policyValues {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("v" + strconv.Itoa(i))
	}
	return b.String()
}

var policyCols = valueCols()

// LoadRules returns the stored lines, rules ("p") and role assignments
// ("g"), in the order they were added, with the revision they belong to:
// policy/casbin's Source.
func (a *PolicyAdapter) LoadRules(ctx context.Context) (p, g [][]string, rev int64, err error) {
	err = a.s.readTx(ctx, func(tx *Store) error {
		if err := tx.queryRow(ctx, "SELECT revision FROM policy_revision WHERE id = 1").Scan(&rev); err != nil {
			return err
		}
		rows, err := tx.query(ctx, "SELECT ptype, "+policyCols+" FROM policy_rules ORDER BY seq")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ptype string
			vals := make([]string, policyValues)
			dest := []any{&ptype}
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			switch ptype {
			case "p":
				p = append(p, vals)
			case "g":
				g = append(g, trimLine(vals))
			}
		}
		return rows.Err()
	})
	return p, g, rev, wrap(err, "load policy")
}

// trimLine drops the empty values at the end of a line (a "g" line has
// two values).
func trimLine(vals []string) []string {
	n := len(vals)
	for n > 0 && vals[n-1] == "" {
		n--
	}
	return vals[:n]
}

// Revision returns the revision of the stored policy; it increases with
// every write.
func (a *PolicyAdapter) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := a.s.queryRow(ctx, "SELECT revision FROM policy_revision WHERE id = 1").Scan(&rev)
	return rev, wrap(err, "policy revision")
}

// readTx runs fn in a transaction so that several reads see one state.
// SQLite's transactions take the write lock (the store begins them
// IMMEDIATE), which is short here.
func (s *Store) readTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.inTx(ctx, fn)
}

// LoadPolicyCtx implements persist.ContextAdapter: it adds every stored
// line to m.
func (a *PolicyAdapter) LoadPolicyCtx(ctx context.Context, m model.Model) error {
	p, g, _, err := a.LoadRules(ctx)
	if err != nil {
		return err
	}
	for _, line := range p {
		if err := persist.LoadPolicyArray(append([]string{"p"}, fitLine(m, "p", line)...), m); err != nil {
			return fmt.Errorf("sqlstore: load policy line: %w", err)
		}
	}
	for _, line := range g {
		if err := persist.LoadPolicyArray(append([]string{"g"}, line...), m); err != nil {
			return fmt.Errorf("sqlstore: load grouping line: %w", err)
		}
	}
	return nil
}

// fitLine cuts a stored line to the length of the model's policy type.
func fitLine(m model.Model, ptype string, line []string) []string {
	if ast, ok := m["p"][ptype]; ok && len(ast.Tokens) < len(line) {
		return line[:len(ast.Tokens)]
	}
	return line
}

// LoadPolicy implements persist.Adapter.
func (a *PolicyAdapter) LoadPolicy(m model.Model) error {
	return a.LoadPolicyCtx(context.Background(), m)
}

// SavePolicyCtx implements persist.ContextAdapter: it replaces every
// stored line with the lines of m.
func (a *PolicyAdapter) SavePolicyCtx(ctx context.Context, m model.Model) error {
	var lines [][2]any // ptype, values
	for _, sec := range []string{"p", "g"} {
		for ptype, ast := range m[sec] {
			for _, rule := range ast.Policy {
				lines = append(lines, [2]any{ptype, rule})
			}
		}
	}
	return a.write(ctx, "save policy", func(tx *Store) error {
		if _, err := tx.exec(ctx, "DELETE FROM policy_rules"); err != nil {
			return err
		}
		for _, l := range lines {
			if err := a.insert(ctx, tx, l[0].(string), l[1].([]string)); err != nil {
				return err
			}
		}
		return nil
	})
}

// SavePolicy implements persist.Adapter.
func (a *PolicyAdapter) SavePolicy(m model.Model) error {
	return a.SavePolicyCtx(context.Background(), m)
}

// AddPolicyCtx implements persist.ContextAdapter. A rule id or a role
// assignment stored already is store.ErrConflict.
func (a *PolicyAdapter) AddPolicyCtx(ctx context.Context, _ string, ptype string, rule []string) error {
	return a.write(ctx, "add policy line", func(tx *Store) error { return a.insert(ctx, tx, ptype, rule) })
}

// AddPolicy implements persist.Adapter.
func (a *PolicyAdapter) AddPolicy(sec, ptype string, rule []string) error {
	return a.AddPolicyCtx(context.Background(), sec, ptype, rule)
}

// RemovePolicyCtx implements persist.ContextAdapter: it removes the line
// with exactly these values; none is store.ErrNotFound.
func (a *PolicyAdapter) RemovePolicyCtx(ctx context.Context, _ string, ptype string, rule []string) error {
	if len(rule) > policyValues {
		return fmt.Errorf("sqlstore: policy line of %d values, at most %d", len(rule), policyValues)
	}
	q, args := "DELETE FROM policy_rules WHERE ptype = ?", []any{ptype}
	for i := range policyValues {
		v := ""
		if i < len(rule) {
			v = rule[i]
		}
		q += " AND v" + strconv.Itoa(i) + " = ?"
		args = append(args, v)
	}
	return a.write(ctx, "remove policy line", func(tx *Store) error {
		return execOne(ctx, tx, q, args...)
	})
}

// RemovePolicy implements persist.Adapter.
func (a *PolicyAdapter) RemovePolicy(sec, ptype string, rule []string) error {
	return a.RemovePolicyCtx(context.Background(), sec, ptype, rule)
}

// RemoveFilteredPolicyCtx implements persist.ContextAdapter: it removes the
// lines whose values from fieldIndex on equal fieldValues (an empty
// filter value matches anything).
func (a *PolicyAdapter) RemoveFilteredPolicyCtx(ctx context.Context, _ string, ptype string, fieldIndex int, fieldValues ...string) error {
	if fieldIndex < 0 || fieldIndex+len(fieldValues) > policyValues {
		return fmt.Errorf("sqlstore: policy filter out of range")
	}
	q, args := "DELETE FROM policy_rules WHERE ptype = ?", []any{ptype}
	for i, v := range fieldValues {
		if v == "" {
			continue
		}
		q += " AND v" + strconv.Itoa(fieldIndex+i) + " = ?"
		args = append(args, v)
	}
	return a.write(ctx, "remove policy lines", func(tx *Store) error {
		_, err := tx.exec(ctx, q, args...)
		return err
	})
}

// RemoveFilteredPolicy implements persist.Adapter.
func (a *PolicyAdapter) RemoveFilteredPolicy(sec, ptype string, fieldIndex int, fieldValues ...string) error {
	return a.RemoveFilteredPolicyCtx(context.Background(), sec, ptype, fieldIndex, fieldValues...)
}

func (a *PolicyAdapter) insert(ctx context.Context, tx *Store, ptype string, rule []string) error {
	if ptype != "p" && ptype != "g" {
		return fmt.Errorf("sqlstore: policy line type %q: use p or g", ptype)
	}
	if len(rule) == 0 || len(rule) > policyValues {
		return fmt.Errorf("sqlstore: policy line of %d values, want 1 to %d", len(rule), policyValues)
	}
	if a.check != nil {
		if err := a.check(ptype, rule); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
		}
	}
	args := []any{ptype}
	for i := range policyValues {
		v := ""
		if i < len(rule) {
			v = rule[i]
		}
		args = append(args, v)
	}
	_, err := tx.exec(ctx, "INSERT INTO policy_rules (ptype, "+policyCols+") VALUES (?"+strings.Repeat(", ?", policyValues)+")", args...)
	if tx.d.isUniqueViolation(err) {
		return fmt.Errorf("%w: policy line %s %q is stored already", store.ErrConflict, ptype, rule[0])
	}
	return err
}

// write runs fn, bumps the revision and (PostgreSQL) notifies, all in one
// transaction.
func (a *PolicyAdapter) write(ctx context.Context, what string, fn func(tx *Store) error) error {
	err := a.s.inTx(ctx, func(tx *Store) error {
		if err := fn(tx); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "UPDATE policy_revision SET revision = revision + 1 WHERE id = 1"); err != nil {
			return err
		}
		if tx.d.postgres() {
			if _, err := tx.exec(ctx, "SELECT pg_notify(?, '')", PolicyNotifyChannel); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrInvalidPolicy) {
		return err
	}
	return wrap(err, "%s", what)
}

// ListenPolicy delivers on the returned channel whenever another process
// (or this one) writes the policy: PostgreSQL LISTEN on a connection of its
// own, reconnecting after errors. On SQLite it returns nil: replicas there
// poll the revision. The channel closes when ctx ends.
func (s *Store) ListenPolicy(ctx context.Context) <-chan struct{} {
	if !s.d.postgres() {
		return nil
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			err := s.listenOnce(ctx, out)
			if ctx.Err() != nil {
				return
			}
			s.log.WarnContext(ctx, "sqlstore: policy listener", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}

func (s *Store) listenOnce(ctx context.Context, out chan<- struct{}) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		c := pc.Conn()
		if _, err := c.Exec(ctx, "LISTEN "+PolicyNotifyChannel); err != nil {
			return err
		}
		defer func() {
			// The connection goes back to the pool: stop listening first.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = c.Exec(uctx, "UNLISTEN *")
		}()
		// A notification may have been missed while (re)connecting.
		signal(out)
		for {
			if _, err := c.WaitForNotification(ctx); err != nil {
				return err
			}
			signal(out)
		}
	})
}

func signal(out chan<- struct{}) {
	select {
	case out <- struct{}{}:
	default:
	}
}
