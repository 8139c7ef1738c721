package dpop

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary DPoP header values to Verify. It must not
// panic, must refuse with an *Error (the request and store are sound, so
// any other error would be a bug), and anything it accepts must really be
// signed by the key its Proof reports, which must be the proof's jwk.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"ES256", "RS256", "EdDSA"} {
		f.Add(key(name).proof(f, claimsAt(testNow, nil)))
	}
	es := key("ES256")
	f.Add(es.proof(f, claimsAt(testNow, map[string]any{"htu": "https://OP.example.test:443/./token?q#f", "nonce": "n"})))
	f.Add(es.proof(f, claimsAt(testNow, nil), withHeader("alg", "none")))
	f.Add(es.proof(f, claimsAt(testNow, nil), withHeader("jwk", key("ES256b").pub)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c.d.e")
	f.Add(`{"payload":"e30","signatures":[]}`)
	f.Fuzz(func(t *testing.T, header string) {
		v, err := NewVerifier(Options{
			Now:    func() time.Time { return testNow },
			Replay: newMemReplay(func() time.Time { return testNow }),
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(t.Context(), tokenRequest(header))
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || p != nil {
				t.Fatalf("Verify = %v, %v; want a refusal", p, err)
			}
			return
		}
		jws, err := jose.ParseSignedCompact(header, v.joseAlgs)
		if err != nil {
			t.Fatalf("accepted proof does not parse: %v", err)
		}
		hdr := jws.Signatures[0].Header
		if hdr.JSONWebKey == nil {
			t.Fatal("accepted proof has no jwk")
		}
		if _, err := jws.Verify(p.Key.Key); err != nil {
			t.Fatalf("accepted proof not signed by Proof.Key: %v", err)
		}
		if _, err := jws.Verify(hdr.JSONWebKey.Key); err != nil {
			t.Fatalf("accepted proof not signed by its jwk: %v", err)
		}
		jwkJKT, err := Thumbprint(*hdr.JSONWebKey)
		if err != nil || jwkJKT != p.JKT {
			t.Fatalf("Proof.JKT %q is not the jwk thumbprint %q (%v)", p.JKT, jwkJKT, err)
		}
		if !p.Key.IsPublic() {
			t.Fatal("accepted proof key is not public")
		}
	})
}

// FuzzNormalizeURL: no panic; a result is idempotent, has no query or
// fragment, and parses back to an absolute http(s) URL.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{
		testURL, "HTTPS://Op.Example.Test:443", "http://h:80/a/./b/../c?q#f", "https://[::1]:8443/%7e%2f",
		"https://h/%2E%2E/x", "https://h:/", "https://u@h/", "https:opaque", "/relative", "https://h/a%zz",
		"https://h:0443/..", "https://h//a//", "ftp://h/", "https://[fe80::1%25eth0]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := normalizeURL(raw)
		if err != nil {
			return
		}
		again, err := normalizeURL(n)
		if err != nil || again != n {
			t.Fatalf("normalizeURL(%q) = %q, but normalizeURL of that = %q, %v", raw, n, again, err)
		}
		if strings.ContainsAny(n, "?#") {
			t.Fatalf("normalizeURL(%q) = %q keeps a query or fragment", raw, n)
		}
		u, err := url.Parse(n)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("normalizeURL(%q) = %q, which is not an absolute http(s) URL", raw, n)
		}
	})
}
