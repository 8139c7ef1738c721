package oidc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

func testOrdered(now func() time.Time) *orderedHMAC {
	cfg := &fosite.Config{GlobalSecret: []byte(strings.Repeat("s", 32)), AccessTokenLifespan: time.Hour,
		RefreshTokenLifespan: time.Hour, AuthorizeCodeLifespan: time.Minute}
	return &orderedHMAC{inner: oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: cfg}, cfg), now: now}
}

func liveRequest() fosite.Requester {
	s := newSession()
	for _, tt := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken, fosite.AuthorizeCode} {
		s.SetExpiresAt(tt, time.Now().Add(time.Hour))
	}
	return fosite.NewAccessRequest(s)
}

type tokenKind struct {
	part     string
	generate func(context.Context, fosite.Requester) (string, string, error)
	sig      func(context.Context, string) string
	validate func(context.Context, fosite.Requester, string) error
}

func kinds(o *orderedHMAC) []tokenKind {
	return []tokenKind{
		{"at", o.GenerateAccessToken, o.AccessTokenSignature, o.ValidateAccessToken},
		{"rt", o.GenerateRefreshToken, o.RefreshTokenSignature, o.ValidateRefreshToken},
		{"ac", o.GenerateAuthorizeCode, o.AuthorizeCodeSignature, o.ValidateAuthorizeCode},
	}
}

// TestOrderedTokens: tokens carry their issue time ahead of the key, their
// row keys sort by issue time, they validate, and a changed time or
// signature finds nothing or fails; tokens of fosite's own form still
// work.
func TestOrderedTokens(t *testing.T) {
	ctx := t.Context()
	clock := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	o := testOrdered(func() time.Time { return clock })
	req := liveRequest()
	for i, k := range kinds(o) {
		t.Run(k.part, func(t *testing.T) {
			clock = clock.Add(time.Second)
			tok1, sig1, err := k.generate(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			clock = clock.Add(time.Microsecond)
			_, sig2, _ := k.generate(ctx, req)
			if !strings.HasPrefix(tok1, "tb_"+k.part+"_") || len(sig1) != orderedTimeLen+43 {
				t.Fatalf("token %q signature %q", tok1, sig1)
			}
			if sig1 >= sig2 {
				t.Fatalf("row keys do not follow the issue time: %q then %q", sig1, sig2)
			}
			if got := k.sig(ctx, tok1); got != sig1 {
				t.Fatalf("signature %q, issued %q", got, sig1)
			}
			if err := k.validate(ctx, req, tok1); err != nil {
				t.Fatalf("validate: %v", err)
			}
			// Another time names another row; a changed HMAC fails.
			p := len("tb_" + k.part + "_")
			other := tok1[:p] + strings.Repeat("0", orderedTimeLen) + tok1[p+orderedTimeLen:]
			if got := k.sig(ctx, other); got == sig1 || got == "" {
				t.Fatalf("changed time gives signature %q", got)
			}
			forged := tok1[:len(tok1)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok1, "AA")]
			if err := k.validate(ctx, req, forged); err == nil {
				t.Fatal("a token with a changed HMAC validated")
			}
			// Of another kind, or malformed: nothing.
			otherKind := kinds(o)[(i+1)%3]
			if got := otherKind.sig(ctx, tok1); got != "" {
				t.Fatalf("a %s token read as %s: %q", k.part, otherKind.part, got)
			}
			if err := otherKind.validate(ctx, req, tok1); err == nil {
				t.Fatalf("a %s token validated as %s", k.part, otherKind.part)
			}
			for _, bad := range []string{"tb_" + k.part + "_", "tb_" + k.part + "_0123", "tb_" + k.part + "_zzzzzzzzzzzzzzzzkey.sig", "tb_" + k.part + "_0123456789abcdefnodot"} {
				if got := k.sig(ctx, bad); got != "" {
					t.Errorf("%q: signature %q", bad, got)
				}
				if err := k.validate(ctx, req, bad); err == nil {
					t.Errorf("%q validated", bad)
				}
			}
		})
	}
	// fosite's own form, as issued before.
	legacy := []struct {
		generate func(context.Context, fosite.Requester) (string, string, error)
		k        tokenKind
	}{{o.inner.GenerateAccessToken, kinds(o)[0]}, {o.inner.GenerateRefreshToken, kinds(o)[1]}, {o.inner.GenerateAuthorizeCode, kinds(o)[2]}}
	for _, l := range legacy {
		tok, sig, err := l.generate(ctx, req)
		if err != nil || !strings.HasPrefix(tok, "ory_") {
			t.Fatalf("legacy token %q %v", tok, err)
		}
		if got := l.k.sig(ctx, tok); got != sig {
			t.Fatalf("legacy %s signature %q, want %q", l.k.part, got, sig)
		}
		if err := l.k.validate(ctx, req, tok); err != nil {
			t.Fatalf("legacy %s: %v", l.k.part, err)
		}
	}
}

func FuzzOrderedTokenSignature(f *testing.F) {
	o := testOrdered(time.Now)
	tok, _, _ := o.GenerateRefreshToken(context.Background(), liveRequest())
	f.Add(tok)
	f.Add("ory_rt_abc.def")
	f.Add("tb_rt_0123456789abcdef.")
	f.Fuzz(func(t *testing.T, token string) {
		sig := o.RefreshTokenSignature(context.Background(), token)
		if ts, _, ok := split(token, "rt"); ok && sig != "" && !strings.HasPrefix(sig, ts) {
			t.Fatalf("signature %q of %q does not lead with its time", sig, token)
		}
		// A token that validates names a row. (Which tokens validate is
		// fosite's HMAC check; each fuzz worker issues its own token, so
		// the seed validates only in the process that made it.)
		if err := o.ValidateRefreshToken(context.Background(), liveRequest(), token); err == nil && sig == "" {
			t.Fatalf("%q validated but has no row key", token)
		}
	})
}
