package sqlstore

import (
	"context"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

// TestTokenQueryPlans pins the index SQLite's planner takes for the token
// statements of a rotation, an exchange and a consent withdrawal: a plan
// over the primary key's first column (kind) alone would visit every
// token of a kind.
func TestTokenQueryPlans(t *testing.T) {
	st := openStore(t, dbtest.SQLite(t), nil)
	ctx := context.Background()
	conn, err := st.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// EXPLAIN reads no table, so it would not notice that the migrations
	// changed the schema this connection loaded; a query does.
	if _, err := conn.ExecContext(ctx, "SELECT count(*) FROM oauth_tokens"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		query, want string
	}{
		{"UPDATE oauth_tokens SET active = FALSE WHERE kind = ? AND request_id = ? AND active = TRUE", "USING INDEX oauth_tokens_active_grant (request_id=? AND kind=?)"},
		{"UPDATE oauth_tokens SET active = ? WHERE kind = ? AND signature = ? AND active = ? AND expires_at > ?", "USING INDEX sqlite_autoindex_oauth_tokens_1 (kind=? AND signature=?)"},
		{"SELECT " + tokenCols + " FROM oauth_tokens WHERE kind = ? AND signature = ? AND expires_at > ?", "USING INDEX sqlite_autoindex_oauth_tokens_1 (kind=? AND signature=?)"},
		{"UPDATE oauth_tokens SET active = ? WHERE kind = ? AND client_id = ? AND subject = ? AND active = ?", "USING INDEX oauth_tokens_client_subject (client_id=? AND subject=?)"},
	} {
		args := make([]any, strings.Count(c.query, "?"))
		for i := range args {
			args[i] = "x"
		}
		rows, err := conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "; "); !strings.Contains(got, c.want) {
			t.Errorf("plan of %q:\n got  %s\n want %s", c.query, got, c.want)
		}
	}
}
