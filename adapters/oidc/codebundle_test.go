package oidc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

// TestCodeBundle: the rows fosite creates for a code during one
// authorization response become one row; a code exchange reads the PKCE
// and OpenID Connect parts from it, deletes nothing, and after the
// redemption the parts are gone with the code.
func TestCodeBundle(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		s.codeSig = func(_ context.Context, code string) string { return strings.TrimPrefix(code, "code.") }
		s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}}}
		sess := newSession()
		sess.Subject = "user"
		sess.DefaultSession.Claims.Subject = "user"
		ar := fosite.NewAuthorizeRequest()
		ar.ID, ar.Client, ar.Session = "req-1", s.clients["c"], sess
		ar.GrantedScope = fosite.Arguments{"openid"}
		ar.Form.Set("nonce", "n-1")
		ar.Form.Set("code_challenge", "ch")
		ar.Form.Set("code_challenge_method", "S256")

		// The authorization response: three creates, one row.
		ctx, rs := withCodeBundle(t.Context())
		if err := s.CreateAuthorizeCodeSession(ctx, "sig", ar.Sanitize(nil)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOpenIDConnectSession(ctx, "code.sig", ar.Sanitize([]string{"nonce"})); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePKCERequestSession(ctx, "sig", ar.Sanitize([]string{"code_challenge", "code_challenge_method"})); err != nil {
			t.Fatal(err)
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenAuthorizeCode, "sig"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("code row written before the response was complete: %v", err)
		}
		if err := s.flushBundle(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
		for _, k := range []struct{ kind, sig string }{{store.TokenOIDC, oidcKey("code.sig")}, {store.TokenPKCE, "sig"}} {
			if _, err := st.OAuth().GetToken(t.Context(), k.kind, k.sig); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a separate %s row was written: %v", k.kind, err)
			}
		}

		// The code exchange.
		tctx, trs := withRequestState(t.Context())
		trs.code = "code.sig"
		if _, err := s.GetAuthorizeCodeSession(tctx, "sig", newSession()); err != nil {
			t.Fatal(err)
		}
		pk, err := s.GetPKCERequestSession(tctx, "sig", newSession())
		if err != nil || pk.GetRequestForm().Get("code_challenge") != "ch" || pk.GetRequestForm().Get("nonce") != "" || pk.GetClient().GetID() != "c" {
			t.Fatalf("PKCE part: %v %+v", err, pk)
		}
		if err := s.DeletePKCERequestSession(tctx, "sig"); err != nil || len(trs.pkce) != 0 {
			t.Fatalf("PKCE delete: %v, pending %v", err, trs.pkce)
		}
		tctx, err = s.BeginTX(tctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InvalidateAuthorizeCodeSession(tctx, "sig"); err != nil {
			t.Fatal(err)
		}
		if !trs.deferred || len(trs.ops) != 1 {
			t.Fatalf("redemption of a bundled code: deferred %v with %d writes, want it recorded", trs.deferred, len(trs.ops))
		}
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		tokenReq := fosite.NewAccessRequest(newSession())
		oidc, err := s.GetOpenIDConnectSession(tctx, "code.sig", tokenReq)
		if err != nil || oidc.GetRequestForm().Get("nonce") != "n-1" || oidc.GetRequestForm().Get("code_challenge") != "" ||
			!oidc.GetGrantedScopes().Has("openid") || oidc.GetSession().(*Session).DefaultSession.Claims.Subject != "user" {
			t.Fatalf("OpenID Connect part after the redemption: %v %+v", err, oidc)
		}
		if err := s.DeleteOpenIDConnectSession(tctx, "code.sig"); err != nil {
			t.Fatal(err)
		}
		if err := s.finish(tctx, trs); err != nil {
			t.Fatal(err)
		}

		// Another request: the code is redeemed, its parts with it.
		other, _ := withRequestState(t.Context())
		if _, err := s.GetAuthorizeCodeSession(other, "sig", newSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("code after redemption: %v", err)
		}
		if _, err := s.GetPKCERequestSession(other, "sig", newSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("PKCE part after redemption: %v", err)
		}
		if err := s.InvalidateAuthorizeCodeSession(other, "sig"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("second redemption: %v", err)
		}

		// A bundle the response never completed writes nothing; parts of
		// another request or code are stored as separate rows.
		ctx, _ = withCodeBundle(t.Context())
		if err := s.CreateAuthorizeCodeSession(ctx, "sig2", ar.Sanitize(nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenAuthorizeCode, "sig2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("an unfinished response wrote its code")
		}
		otherReq := fosite.NewAuthorizeRequest()
		otherReq.ID, otherReq.Client, otherReq.Session = "req-2", s.clients["c"], newSession()
		if err := s.CreatePKCERequestSession(ctx, "sig2", otherReq); err != nil {
			t.Fatal(err)
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenPKCE, "sig2"); err != nil {
			t.Fatalf("PKCE row of another request: %v", err)
		}
	})
}

// TestCodeWithoutParts: a code row without PKCE or OpenID Connect parts
// answers that neither exists (not a fallback to separate rows).
func TestCodeWithoutParts(t *testing.T) {
	s, _ := testStorage(t, dbtest.SQLite(t))
	s.codeSig = func(_ context.Context, code string) string { return strings.TrimPrefix(code, "code.") }
	s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}}}
	ar := fosite.NewAuthorizeRequest()
	ar.ID, ar.Client, ar.Session = "req", s.clients["c"], newSession()
	ctx, rs := withCodeBundle(t.Context())
	if err := s.CreateAuthorizeCodeSession(ctx, "plain", ar); err != nil {
		t.Fatal(err)
	}
	if err := s.flushBundle(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	tctx, _ := withRequestState(t.Context())
	if _, err := s.GetPKCERequestSession(tctx, "plain", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("PKCE: %v, want ErrNotFound", err)
	}
	if _, err := s.GetOpenIDConnectSession(tctx, "code.plain", fosite.NewAccessRequest(newSession())); !errors.Is(err, openid.ErrNoSessionFound) {
		t.Fatalf("OpenID Connect: %v, want ErrNoSessionFound", err)
	}
}

// TestCodeRowDecodedOnce: within a request, asking again for the code
// row into the same session reuses the first decoding (the session is
// left as it is, the request fields are fresh copies); another session
// or another request decodes the row.
func TestCodeRowDecodedOnce(t *testing.T) {
	s, st := testStorage(t, dbtest.SQLite(t))
	s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}}}
	sess := newSession()
	sess.Subject, sess.AccountID = "user", "acc"
	ar := fosite.NewAuthorizeRequest()
	ar.ID, ar.Client, ar.Session = "req", s.clients["c"], sess
	ar.GrantedScope = fosite.Arguments{"openid", "profile"}
	ar.Form.Set("nonce", "n")
	if err := s.CreateAuthorizeCodeSession(t.Context(), "sig", ar); err != nil {
		t.Fatal(err)
	}
	ctx, _ := withRequestState(t.Context())
	s0 := newSession()
	first, err := s.GetAuthorizeCodeSession(ctx, "sig", s0)
	if err != nil || s0.AccountID != "acc" || first.GetGrantedScopes()[1] != "profile" {
		t.Fatalf("first: %v %+v", err, s0)
	}
	// What fosite and the token endpoint change in between stays.
	s0.SetExpiresAt(fosite.AccessToken, time.Unix(1900000000, 0))
	s0.AccountID = "changed-in-between"
	first.(*fosite.AuthorizeRequest).GrantedScope[1] = "mutated"
	second, err := s.GetAuthorizeCodeSession(ctx, "sig", s0)
	if err != nil || s0.AccountID != "changed-in-between" || !s0.GetExpiresAt(fosite.AccessToken).Equal(time.Unix(1900000000, 0)) {
		t.Fatalf("second decoded into the session again: %v %+v", err, s0)
	}
	if second.GetGrantedScopes()[1] != "profile" || second.GetRequestForm().Get("nonce") != "n" || second.GetID() != "req" {
		t.Fatalf("second request %+v", second)
	}
	// Another session, another request: decoded.
	s1 := newSession()
	if _, err := s.GetAuthorizeCodeSession(ctx, "sig", s1); err != nil || s1.AccountID != "acc" {
		t.Fatalf("another session: %v %+v", err, s1)
	}
	other, _ := withRequestState(t.Context())
	if _, err := s.GetAuthorizeCodeSession(other, "sig", s0); err != nil || s0.AccountID != "acc" {
		t.Fatalf("another request: %v %+v", err, s0)
	}
	_ = st
}

// TestDeferredRedemptionRace: two exchanges of one code read it while it
// is unused; the second to commit finds it redeemed at Commit, with the
// error fosite gets from a failed InvalidateAuthorizeCodeSession, and the
// access token it recorded after the swap is never written.
func TestDeferredRedemptionRace(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		s, st := testStorage(t, dsn)
		s.codeSig = func(_ context.Context, code string) string { return strings.TrimPrefix(code, "code.") }
		s.clients["c"] = &Client{DefaultOpenIDConnectClient: fosite.DefaultOpenIDConnectClient{DefaultClient: &fosite.DefaultClient{ID: "c"}}}
		ar := fosite.NewAuthorizeRequest()
		ar.ID, ar.Client, ar.Session = "req-race", s.clients["c"], newSession()
		ar.Form.Set("code_challenge", "ch")
		ctx, rs := withCodeBundle(t.Context())
		if err := s.CreateAuthorizeCodeSession(ctx, "race", ar.Sanitize(nil)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePKCERequestSession(ctx, "race", ar.Sanitize([]string{"code_challenge"})); err != nil {
			t.Fatal(err)
		}
		if err := s.flushBundle(t.Context(), rs); err != nil {
			t.Fatal(err)
		}

		exchange := func() (context.Context, *requestState) {
			ctx, rs := withRequestState(t.Context())
			rs.code = "code.race"
			if _, err := s.GetAuthorizeCodeSession(ctx, "race", newSession()); err != nil {
				t.Fatal(err)
			}
			ctx, err := s.BeginTX(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.InvalidateAuthorizeCodeSession(ctx, "race"); err != nil {
				t.Fatalf("recorded redemption: %v", err)
			}
			return ctx, rs
		}
		first, firstRS := exchange()
		second, secondRS := exchange()
		if err := s.CreateAccessTokenSession(first, "at-first", newRequestFor(t, s, "req-race")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAccessTokenSession(second, "at-second", newRequestFor(t, s, "req-race")); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(first); err != nil {
			t.Fatalf("first redemption: %v", err)
		}
		if err := s.Commit(second); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("second redemption = %v, want ErrInvalidatedAuthorizeCode", err)
		}
		if err := s.Rollback(second); err != nil {
			t.Fatal(err)
		}
		if !active(t, st, store.TokenAccess, "at-first") {
			t.Error("the first redemption's access token is missing")
		}
		if _, err := st.OAuth().GetToken(t.Context(), store.TokenAccess, "at-second"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the losing redemption's access token was written: %v", err)
		}
		for _, x := range []struct {
			ctx context.Context
			rs  *requestState
		}{{first, firstRS}, {second, secondRS}} {
			if err := s.finish(x.ctx, x.rs); err != nil {
				t.Fatal(err)
			}
		}
	})
}
