package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// token returns an OAuth token of the kind, valid for an hour.
func (e *env) token(kind, signature, requestID string) *store.OAuthToken {
	return &store.OAuthToken{
		Kind: kind, Signature: signature, RequestID: requestID, ClientID: "rp-1", Subject: "pairwise-1",
		Active: true, ExpiresAt: e.now().Add(time.Hour),
		Data: json.RawMessage(`{"requested_scope":["openid"],"session":{"subject":"pairwise-1"}}`),
	}
}

func testOAuth(t *testing.T, open Opener) {
	t.Run("CreateGetDelete", func(t *testing.T) {
		e := setup(t, open)
		oauth := e.st.OAuth()
		tok := e.token(store.TokenAccess, "sig-1", "req-1")
		must(t, oauth.CreateToken(e.ctx, tok))
		equal(t, "defaulted RequestedAt", tok.RequestedAt, e.now())
		got, err := oauth.GetToken(e.ctx, store.TokenAccess, "sig-1")
		must(t, err)
		equal(t, "GetToken", got, tok)
		_, err = oauth.GetToken(e.ctx, store.TokenRefresh, "sig-1")
		wantErr(t, err, store.ErrNotFound)
		// The same signature under another kind is another token.
		must(t, oauth.CreateToken(e.ctx, e.token(store.TokenRefresh, "sig-1", "req-1")))
		wantErr(t, oauth.CreateToken(e.ctx, e.token(store.TokenAccess, "sig-1", "req-2")), store.ErrConflict)
		noExpiry := e.token(store.TokenPKCE, "sig-2", "req-1")
		noExpiry.ExpiresAt = time.Time{}
		wantSomeErr(t, oauth.CreateToken(e.ctx, noExpiry), "CreateToken without ExpiresAt")

		must(t, oauth.DeleteToken(e.ctx, store.TokenAccess, "sig-1"))
		_, err = oauth.GetToken(e.ctx, store.TokenAccess, "sig-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, oauth.DeleteToken(e.ctx, store.TokenAccess, "sig-1"), store.ErrNotFound)
		_, err = oauth.GetToken(e.ctx, store.TokenRefresh, "sig-1")
		must(t, err)
	})

	t.Run("ConcurrentDeactivate", func(t *testing.T) {
		// A code redeemed twice at once, a refresh token rotated twice at
		// once: exactly one deactivation may succeed.
		e := setup(t, open)
		must(t, e.st.OAuth().CreateToken(e.ctx, e.token(store.TokenAuthorizeCode, "code-race", "req-R")))
		errs := parallel(writers, func(int) error {
			return e.st.OAuth().DeactivateToken(e.ctx, store.TokenAuthorizeCode, "code-race")
		})
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				wantErr(t, err, store.ErrNotFound)
			}
		}
		equal(t, "successful deactivations", wins, 1)
	})

	t.Run("DeactivateRevoke", func(t *testing.T) {
		e := setup(t, open)
		oauth := e.st.OAuth()
		for _, tok := range []*store.OAuthToken{
			e.token(store.TokenRefresh, "r-1", "req-A"),
			e.token(store.TokenRefresh, "r-2", "req-A"),
			e.token(store.TokenRefresh, "r-3", "req-B"),
			e.token(store.TokenAccess, "a-1", "req-A"),
		} {
			must(t, oauth.CreateToken(e.ctx, tok))
		}
		must(t, oauth.DeactivateToken(e.ctx, store.TokenRefresh, "r-1"))
		got, err := oauth.GetToken(e.ctx, store.TokenRefresh, "r-1")
		must(t, err)
		equal(t, "Active after DeactivateToken (still returned)", got.Active, false)
		wantErr(t, oauth.DeactivateToken(e.ctx, store.TokenRefresh, "r-missing"), store.ErrNotFound)
		wantErr(t, oauth.DeactivateToken(e.ctx, store.TokenRefresh, "r-1"), store.ErrNotFound)

		n, err := oauth.RevokeByRequestID(e.ctx, store.TokenRefresh, "req-A")
		must(t, err)
		equal(t, "RevokeByRequestID count (r-1 was inactive already)", n, int64(1))
		for sig, want := range map[string]bool{"r-1": false, "r-2": false, "r-3": true} {
			got, err := oauth.GetToken(e.ctx, store.TokenRefresh, sig)
			must(t, err)
			equal(t, "Active of "+sig, got.Active, want)
		}
		got, err = oauth.GetToken(e.ctx, store.TokenAccess, "a-1")
		must(t, err)
		equal(t, "access token of the revoked refresh family", got.Active, true)
		n, err = oauth.RevokeByRequestID(e.ctx, store.TokenRefresh, "req-A")
		must(t, err)
		equal(t, "second RevokeByRequestID count", n, int64(0))
	})

	t.Run("Expiry", func(t *testing.T) {
		e := setup(t, open)
		oauth := e.st.OAuth()
		must(t, oauth.CreateToken(e.ctx, e.token(store.TokenAuthorizeCode, "code-1", "req-1")))
		e.clock.Advance(time.Hour)
		_, err := oauth.GetToken(e.ctx, store.TokenAuthorizeCode, "code-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, oauth.DeactivateToken(e.ctx, store.TokenAuthorizeCode, "code-1"), store.ErrNotFound)
	})
}

func testReplay(t *testing.T, open Opener) {
	t.Run("Use", func(t *testing.T) {
		e := setup(t, open)
		replay := e.st.Replay()
		exp := e.now().Add(5 * time.Minute)
		must(t, replay.Use(e.ctx, "dpop", "jti-1", exp))
		wantErr(t, replay.Use(e.ctx, "dpop", "jti-1", exp), store.ErrConflict)
		must(t, replay.Use(e.ctx, "client_assertion", "jti-1", exp))
		wantSomeErr(t, replay.Use(e.ctx, "dpop", "jti-2", time.Time{}), "Use without expiry")

		e.clock.Advance(5*time.Minute - time.Microsecond)
		wantErr(t, replay.Use(e.ctx, "dpop", "jti-1", e.now().Add(time.Minute)), store.ErrConflict)
		e.clock.Advance(time.Microsecond) // expired: the value may be recorded anew
		must(t, replay.Use(e.ctx, "dpop", "jti-1", e.now().Add(time.Minute)))
		wantErr(t, replay.Use(e.ctx, "dpop", "jti-1", e.now().Add(time.Minute)), store.ErrConflict)
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		e := setup(t, open)
		for _, round := range []string{"fresh", "expired"} {
			if round == "expired" {
				e.clock.Advance(time.Hour)
			}
			errs := parallel(writers, func(int) error {
				return e.st.Replay().Use(e.ctx, "saml_request", "id-1", e.now().Add(time.Minute))
			})
			wins := 0
			for _, err := range errs {
				if err == nil {
					wins++
				} else {
					wantErr(t, err, store.ErrConflict)
				}
			}
			equal(t, round+" value: successful uses", wins, 1)
		}
	})
}
