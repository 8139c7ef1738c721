package oidc

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

func testStorage(t *testing.T, dsn string) (*storage, store.Store) {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &storage{st: st, clients: map[string]*Client{}, now: time.Now, fallbackTTL: time.Hour}, st
}

func putToken(t *testing.T, st store.Store, kind, sig, requestID string) {
	t.Helper()
	err := st.OAuth().CreateToken(t.Context(), &store.OAuthToken{Kind: kind, Signature: sig, RequestID: requestID,
		ClientID: "c", Active: true, ExpiresAt: time.Now().Add(time.Hour), Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
}

func active(t *testing.T, st store.Store, kind, sig string) bool {
	t.Helper()
	tok, err := st.OAuth().GetToken(context.Background(), kind, sig)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return tok.Active
}

// TestRotationReuseInTransaction: a refresh token rotated by a concurrent
// request is detected inside the rotation's transaction; fosite then rolls
// back, and the family revocation must survive that rollback. Recorded in
// a deferred transaction, the failed swap surfaces at Commit with the
// error the call would have returned; in a transaction that another
// access began (materialized), at the call.
func TestRotationReuseInTransaction(t *testing.T) {
	for _, materialized := range []bool{false, true} {
		t.Run(map[bool]string{false: "deferred", true: "materialized"}[materialized], func(t *testing.T) {
			dbtest.ForEach(t, func(t *testing.T, dsn string) {
				testRotationReuse(t, dsn, materialized)
			})
		})
	}
}

func testRotationReuse(t *testing.T, dsn string, materialized bool) {
	s, st := testStorage(t, dsn)
	putToken(t, st, store.TokenRefresh, "rt1", "fam")
	putToken(t, st, store.TokenAccess, "at1", "fam")
	putToken(t, st, store.TokenAccess, "other", "another-grant")
	// The concurrent winner rotated rt1 and issued rt2 and at2.
	if err := st.OAuth().DeactivateToken(t.Context(), store.TokenRefresh, "rt1"); err != nil {
		t.Fatal(err)
	}
	putToken(t, st, store.TokenRefresh, "rt2", "fam")
	putToken(t, st, store.TokenAccess, "at2", "fam")

	ctx, rs := withRequestState(t.Context())
	ctx, err := s.BeginTX(ctx)
	if err != nil || rs.tx != nil || !rs.deferred {
		t.Fatalf("BeginTX: %v (transaction %v, deferred %v), want a deferred transaction", err, rs.tx, rs.deferred)
	}
	if materialized {
		if _, err := s.oauth(ctx).GetToken(ctx, store.TokenAccess, "other"); err != nil || rs.tx == nil {
			t.Fatalf("a read in the deferred transaction: %v (transaction %v), want it begun", err, rs.tx)
		}
		if err := s.RotateRefreshToken(ctx, "fam", "rt1"); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("RotateRefreshToken of a rotated token = %v, want ErrInactiveToken", err)
		}
	} else {
		if err := s.RotateRefreshToken(ctx, "fam", "rt1"); err != nil {
			t.Fatalf("RotateRefreshToken recorded = %v", err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt3", "", newRequestFor(t, s, "fam")); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("Commit of a rotation of a rotated token = %v, want ErrInactiveToken", err)
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenRefresh, "rt3"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refresh token recorded after the failed swap was written: %v", err)
		}
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"rt2"} {
		if active(t, st, store.TokenRefresh, sig) {
			t.Errorf("refresh token %s of the family still active after reuse", sig)
		}
	}
	for _, sig := range []string{"at1", "at2"} {
		if active(t, st, store.TokenAccess, sig) {
			t.Errorf("access token %s of the family still active after reuse", sig)
		}
	}
	if !active(t, st, store.TokenAccess, "other") {
		t.Error("a token of another grant was revoked")
	}
	if err := s.finish(ctx, rs); err != nil {
		t.Fatal(err)
	}
}

// TestRotationInTransaction: a rotation's writes commit together, and a
// rolled-back rotation leaves the old refresh token usable.
func TestRotationInTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		putToken(t, st, store.TokenRefresh, "rt1", "fam")
		putToken(t, st, store.TokenAccess, "at1", "fam")

		ctx, rs := withRequestState(t.Context())
		ctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RotateRefreshToken(ctx, "fam", "rt1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if !active(t, st, store.TokenRefresh, "rt1") || !active(t, st, store.TokenAccess, "at1") {
			t.Fatal("a rolled-back rotation changed the tokens")
		}

		ctx, err = s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RotateRefreshToken(ctx, "fam", "rt1"); err != nil {
			t.Fatal(err)
		}
		if err := s.oauth(ctx).CreateToken(ctx, &store.OAuthToken{Kind: store.TokenRefresh, Signature: "rt2",
			RequestID: "fam", Active: true, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if active(t, st, store.TokenRefresh, "rt1") || active(t, st, store.TokenAccess, "at1") || !active(t, st, store.TokenRefresh, "rt2") {
			t.Fatal("committed rotation: want rt1 and at1 inactive, rt2 active")
		}
		if rs.tx != nil {
			t.Fatal("transaction still open after Commit")
		}
	})
}

// TestAbandonedTransaction: a transaction a handler left open is rolled
// back when the request ends, and the database takes writes again.
func TestAbandonedTransaction(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		ctx, rs := withRequestState(t.Context())
		ctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.oauth(ctx).CreateToken(ctx, &store.OAuthToken{Kind: store.TokenAccess, Signature: "left",
			Active: true, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.finish(ctx, rs); err != nil {
			t.Fatal(err)
		}
		if active(t, st, store.TokenAccess, "left") {
			t.Fatal("the write of an abandoned transaction was committed")
		}
		wctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := st.OAuth().CreateToken(wctx, &store.OAuthToken{Kind: store.TokenAccess, Signature: "next",
			Active: true, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("write after the abandoned transaction: %v", err)
		}
	})
}

// TestCodeReadOncePerRequest: the second read of an authorization code in
// one request is served from the request state; other requests read the
// store.
func TestCodeReadOncePerRequest(t *testing.T) {
	s, st := testStorage(t, dbtest.SQLite(t))
	putToken(t, st, store.TokenAuthorizeCode, "code", "r")
	ctx, _ := withRequestState(t.Context())
	if _, err := s.getRow(ctx, store.TokenAuthorizeCode, "code"); err != nil {
		t.Fatal(err)
	}
	if err := st.OAuth().DeleteToken(t.Context(), store.TokenAuthorizeCode, "code"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.getRow(ctx, store.TokenAuthorizeCode, "code"); err != nil {
		t.Fatalf("second read in the request: %v", err)
	}
	other, _ := withRequestState(t.Context())
	if _, err := s.getRow(other, store.TokenAuthorizeCode, "code"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read in another request: %v, want ErrNotFound", err)
	}
	if _, err := s.getRow(ctx, store.TokenRefresh, "code"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another kind: %v, want ErrNotFound", err)
	}
}

type recordingHandler struct {
	fosite.TokenEndpointHandler
	grant  string
	called int
}

func (h *recordingHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(h.grant)
}

func (h *recordingHandler) HandleTokenEndpointRequest(context.Context, fosite.AccessRequester) error {
	h.called++
	return nil
}

func (h *recordingHandler) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	h.called++
	return nil
}

// TestGatedHandler: a handler is called only for its own grant; for others
// the gate answers fosite's ErrUnknownRequest.
func TestGatedHandler(t *testing.T) {
	h := &recordingHandler{grant: "refresh_token"}
	g := gate(h)[0]
	ar := fosite.NewAccessRequest(newSession())
	ar.GrantTypes = fosite.Arguments{"client_credentials"}
	if err := g.PopulateTokenEndpointResponse(t.Context(), ar, fosite.NewAccessResponse()); !errors.Is(err, fosite.ErrUnknownRequest) {
		t.Fatalf("other grant: %v, want ErrUnknownRequest", err)
	}
	if err := g.HandleTokenEndpointRequest(t.Context(), ar); !errors.Is(err, fosite.ErrUnknownRequest) {
		t.Fatalf("other grant: %v, want ErrUnknownRequest", err)
	}
	if h.called != 0 {
		t.Fatal("handler called for another grant")
	}
	ar.GrantTypes = fosite.Arguments{"refresh_token"}
	if err := g.PopulateTokenEndpointResponse(t.Context(), ar, fosite.NewAccessResponse()); err != nil {
		t.Fatal(err)
	}
	if err := g.HandleTokenEndpointRequest(t.Context(), ar); err != nil {
		t.Fatal(err)
	}
	if h.called != 2 {
		t.Fatalf("handler called %d times for its grant, want 2", h.called)
	}
}

// TestRedemptionDeletesOIDCSession: redeeming a code in its transaction
// also removes the code's OpenID Connect session, whose row stays readable
// for the ID token of this request; a second redemption fails.
func TestRedemptionDeletesOIDCSession(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		putToken(t, st, store.TokenAuthorizeCode, "code-sig", "r")
		putToken(t, st, store.TokenOIDC, oidcKey("full-code"), "r")
		ctx, rs := withRequestState(t.Context())
		rs.code = "full-code"
		ctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenOIDC, oidcKey("full-code")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("OpenID Connect session after redemption: %v, want ErrNotFound", err)
		}
		if _, err := s.getRow(ctx, store.TokenOIDC, oidcKey("full-code")); err != nil {
			t.Fatalf("OpenID Connect session within the request: %v", err)
		}
		if err := s.DeleteOpenIDConnectSession(ctx, "full-code"); err != nil {
			t.Fatalf("DeleteOpenIDConnectSession after redemption: %v", err)
		}
		if err := s.finish(ctx, rs); err != nil {
			t.Fatal(err)
		}
		other, _ := withRequestState(t.Context())
		if err := s.InvalidateAuthorizeCodeSession(other, "code-sig"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("second redemption: %v, want ErrInvalidatedAuthorizeCode", err)
		}
		if err := s.DeleteOpenIDConnectSession(other, "full-code"); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("delete in another request: %v, want ErrNotFound", err)
		}
	})
}

// TestOIDCSessionKey: the OpenID Connect session of a code is stored under
// the code's hash, never the code; rows of earlier versions (keyed by the
// code) are still read and deleted.
func TestOIDCSessionKey(t *testing.T) {
	s, st := testStorage(t, dbtest.SQLite(t))
	s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}}}
	ctx := t.Context()
	req := fosite.NewAuthorizeRequest()
	req.ID, req.Client, req.Session = "r", s.clients["c"], newSession()
	req.GrantedScope = fosite.Arguments{"openid"}
	if err := s.CreateOpenIDConnectSession(ctx, "the-code", req); err != nil {
		t.Fatal(err)
	}
	if _, err := st.OAuth().GetToken(ctx, store.TokenOIDC, "the-code"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("row keyed by the code itself: %v", err)
	}
	if _, err := s.GetOpenIDConnectSession(ctx, "the-code", fosite.NewAccessRequest(newSession())); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOpenIDConnectSession(ctx, "the-code"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOpenIDConnectSession(ctx, "the-code", fosite.NewAccessRequest(newSession())); !errors.Is(err, openid.ErrNoSessionFound) {
		t.Fatalf("after delete: %v, want ErrNoSessionFound", err)
	}
	// An earlier version's row.
	if err := s.create(ctx, store.TokenOIDC, "legacy-code", req, fosite.AuthorizeCode); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOpenIDConnectSession(ctx, "legacy-code", fosite.NewAccessRequest(newSession())); err != nil {
		t.Fatalf("legacy row: %v", err)
	}
	if err := s.DeleteOpenIDConnectSession(ctx, "legacy-code"); err != nil {
		t.Fatalf("legacy row delete: %v", err)
	}
	if err := s.DeleteOpenIDConnectSession(ctx, "legacy-code"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

// TestPKCEDeletedWithRedemption: in a code exchange the PKCE row checked
// before the transaction is deleted in the redemption's transaction: gone
// after the commit, kept (with the code still valid) after a rollback,
// and deleted at the end of a request that never reached the redemption.
func TestPKCEDeletedWithRedemption(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		exists := func(sig string) bool {
			_, err := st.OAuth().GetToken(t.Context(), store.TokenPKCE, sig)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		redeem := func(sig string, commit bool) {
			t.Helper()
			putToken(t, st, store.TokenAuthorizeCode, sig, "r-"+sig)
			putToken(t, st, store.TokenPKCE, sig, "r-"+sig)
			ctx, rs := withRequestState(t.Context())
			rs.code = sig
			if err := s.DeletePKCERequestSession(ctx, sig); err != nil {
				t.Fatal(err)
			}
			if !exists(sig) {
				t.Fatal("PKCE row deleted before the redemption's transaction")
			}
			ctx, err := s.BeginTX(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.InvalidateAuthorizeCodeSession(ctx, sig); err != nil {
				t.Fatal(err)
			}
			if commit {
				err = s.Commit(ctx)
			} else {
				err = s.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.finish(ctx, rs); err != nil {
				t.Fatal(err)
			}
		}
		redeem("committed", true)
		if exists("committed") || active(t, st, store.TokenAuthorizeCode, "committed") {
			t.Fatal("after the commit: PKCE row kept or code still active")
		}
		redeem("rolled-back", false)
		if !exists("rolled-back") || !active(t, st, store.TokenAuthorizeCode, "rolled-back") {
			t.Fatal("after the rollback: PKCE row gone or code redeemed")
		}

		putToken(t, st, store.TokenPKCE, "abandoned", "r")
		ctx, rs := withRequestState(t.Context())
		rs.code = "abandoned"
		if err := s.DeletePKCERequestSession(ctx, "abandoned"); err != nil {
			t.Fatal(err)
		}
		if err := s.finish(ctx, rs); err != nil {
			t.Fatal(err)
		}
		if exists("abandoned") {
			t.Fatal("PKCE row of a request that ended before the redemption kept")
		}
		// Outside a code exchange the row goes at once.
		putToken(t, st, store.TokenPKCE, "direct", "r")
		if err := s.DeletePKCERequestSession(t.Context(), "direct"); err != nil || exists("direct") {
			t.Fatalf("direct delete: %v, row kept %v", err, exists("direct"))
		}
	})
}

// newRequestFor is a token request of grant requestID, for rows written
// through the storage.
func newRequestFor(t *testing.T, _ *storage, requestID string) fosite.Requester {
	t.Helper()
	r := fosite.NewAccessRequest(newSession())
	r.SetID(requestID)
	r.Client = &fosite.DefaultClient{ID: "c"}
	return r
}

// TestEncodedOncePerTransaction: in a deferred transaction the access and
// the refresh token of one request are encoded once (also from two
// sanitised copies, as a code exchange hands them over), and a request
// that changed in between (an expiry, a granted scope, the session) is
// encoded anew, its row carrying the change.
func TestEncodedOncePerTransaction(t *testing.T) {
	s, st := testStorage(t, dbtest.SQLite(t))
	s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}},
		RP: &config.RelyingParty{ID: "c", OIDC: &config.OIDC{}}}
	req := func() *fosite.AccessRequest {
		r := fosite.NewAccessRequest(newSession())
		r.SetID("grant")
		r.Client = s.clients["c"]
		r.GrantScope("openid")
		r.GetSession().SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour).Round(time.Second))
		r.GetSession().SetExpiresAt(fosite.RefreshToken, time.Now().Add(2*time.Hour).Round(time.Second))
		return r
	}
	for _, tc := range []struct {
		name   string
		change func(r *fosite.AccessRequest) fosite.Requester
		// once: encoded once; same: both rows carry the same bytes.
		once, same bool
	}{
		{name: "same request", change: func(r *fosite.AccessRequest) fosite.Requester { return r }, once: true, same: true},
		{name: "sanitised copies", change: func(r *fosite.AccessRequest) fosite.Requester { return r.Sanitize(nil) }, once: true, same: true},
		{name: "expiry changed", change: func(r *fosite.AccessRequest) fosite.Requester {
			r.GetSession().SetExpiresAt(fosite.RefreshToken, time.Now().Add(3*time.Hour).Round(time.Second))
			return r
		}},
		{name: "scope granted", change: func(r *fosite.AccessRequest) fosite.Requester { r.GrantScope("profile"); return r }},
		{name: "other session", change: func(r *fosite.AccessRequest) fosite.Requester {
			c := r.Sanitize(nil).(*fosite.Request)
			c.Session = r.GetSession().Clone()
			return c
		}, same: true},
		{name: "no audience list instead of an empty one", change: func(r *fosite.AccessRequest) fosite.Requester {
			r.RequestedAudience = nil
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req()
			ctx, rs := withRequestState(t.Context())
			ctx, err := s.BeginTX(ctx)
			if err != nil {
				t.Fatal(err)
			}
			at, rt := "at-"+tc.name, "rt-"+tc.name
			if err := s.CreateAccessTokenSession(ctx, at, r.Sanitize(nil)); err != nil {
				t.Fatal(err)
			}
			first := rs.encoded
			second := tc.change(r)
			if err := s.CreateRefreshTokenSession(ctx, rt, at, second); err != nil {
				t.Fatal(err)
			}
			if once := rs.encoded == first; once != tc.once {
				t.Fatalf("encoded once: %v, want %v", once, tc.once)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if rs.encoded != nil {
				t.Fatal("the encoding outlived the transaction")
			}
			got, err := s.GetRefreshTokenSession(t.Context(), rt, newSession())
			if err != nil {
				t.Fatal(err)
			}
			want := second.GetSession().GetExpiresAt(fosite.RefreshToken)
			if e := got.GetSession().GetExpiresAt(fosite.RefreshToken); !e.Equal(want) {
				t.Fatalf("refresh row expires %v, want %v", e, want)
			}
			if !slices.Equal(got.GetGrantedScopes(), second.GetGrantedScopes()) {
				t.Fatalf("refresh row scopes %v, want %v", got.GetGrantedScopes(), second.GetGrantedScopes())
			}
			ar, _ := st.OAuth().GetToken(t.Context(), store.TokenAccess, at)
			rr, _ := st.OAuth().GetToken(t.Context(), store.TokenRefresh, rt)
			if same := string(ar.Data) == string(rr.Data); same != tc.same {
				t.Fatalf("rows carry the same data: %v, want %v", same, tc.same)
			}
		})
	}
}
