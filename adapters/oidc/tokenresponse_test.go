package oidc

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// sameAsFosite writes resp with writeAccessResponse and with fosite's
// WriteAccessResponse and fails unless status, header and body are equal.
func sameAsFosite(t *testing.T, build func() *fosite.AccessResponse) {
	t.Helper()
	ours, theirs := httptest.NewRecorder(), httptest.NewRecorder()
	writeAccessResponse(ours, build())
	(&fosite.Fosite{}).WriteAccessResponse(t.Context(), theirs, nil, build())
	if ours.Code != theirs.Code || !bytes.Equal(ours.Body.Bytes(), theirs.Body.Bytes()) {
		t.Fatalf("ours %d %s\nfosite %d %s", ours.Code, ours.Body, theirs.Code, theirs.Body)
	}
	if len(ours.Header()) != len(theirs.Header()) {
		t.Fatalf("header ours %v, fosite %v", ours.Header(), theirs.Header())
	}
	for k, v := range theirs.Header() {
		if got := ours.Header()[k]; len(got) != len(v) || got[0] != v[0] {
			t.Fatalf("header %s: ours %q, fosite %q", k, got, v)
		}
	}
}

func TestWriteAccessResponseLikeFosite(t *testing.T) {
	for name, extra := range map[string]map[string]any{
		"client_credentials": {"scope": "api"},
		"refresh": {"scope": "openid profile offline_access", "refresh_token": "ory_rt_abc.def",
			"id_token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
		"escaped string":  {"scope": "a<b>&\"c\\ ü \u2028 \x01"},
		"other types":     {"scope": "api", "float": 1.5, "bool": true, "list": []string{"a"}, "map": map[string]any{"x": 1}},
		"int and int64":   {"n": 7, "m": int64(-3)},
		"escaped key":     {"a<b": "x"},
		"empty string":    {"scope": ""},
		"many parameters": {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10", "k": "11", "l": "12", "m": "13", "n": "14", "o": "15", "p": "16", "q": "17", "r": "18"},
	} {
		t.Run(name, func(t *testing.T) {
			sameAsFosite(t, func() *fosite.AccessResponse {
				r := fosite.NewAccessResponse()
				r.SetAccessToken("ory_at_x.y")
				r.SetTokenType("bearer")
				r.SetExpiresIn(time.Hour)
				for k, v := range extra {
					r.SetExtra(k, v)
				}
				return r
			})
		})
	}
}

func FuzzWriteAccessResponse(f *testing.F) {
	f.Add("ory_at_x.y", "bearer", "api", "refresh_token", "rt", int64(3600))
	f.Add("a<b", "DPoP", "x\u2028y", "k\"", "\xff", int64(-1))
	f.Fuzz(func(t *testing.T, at, typ, scope, key, val string, n int64) {
		sameAsFosite(t, func() *fosite.AccessResponse {
			r := fosite.NewAccessResponse()
			r.SetAccessToken(at)
			r.SetTokenType(typ)
			r.SetExtra("scope", scope)
			r.SetExtra("expires_in", n)
			r.SetExtra(key, val)
			return r
		})
	})
}
