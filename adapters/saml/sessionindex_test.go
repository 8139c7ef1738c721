package saml

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	crewsaml "github.com/crewjam/saml"
)

func testIndexer(t testing.TB, seed byte) sessionIndexer {
	t.Helper()
	x, err := newSessionIndexer(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

const storeKey = "5f2b8c0e4a1d9f3e7b6a2c8d0e1f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5"

func TestSessionIndex(t *testing.T) {
	x := testIndexer(t, 1)
	if _, err := newSessionIndexer(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	for _, id := range []string{storeKey, "sess-old", strings.ToUpper(storeKey), storeKey[:63] + "g", "x"} {
		idx := x.index(id)
		if idx != x.index(id) {
			t.Errorf("%q: two SessionIndexes for one session", id)
		}
		if strings.Contains(idx, id) {
			t.Errorf("%q: the store key is readable in %q", id, idx)
		}
		got, ok := x.sessionID(idx)
		if !ok || got != id {
			t.Errorf("%q: read back %q %v", id, got, ok)
		}
	}
	if len(x.index(storeKey)) > 90 {
		t.Errorf("SessionIndex of a store key: %d characters", len(x.index(storeKey)))
	}
	if x.index(storeKey) == x.index(storeKey[:63]+"0") {
		t.Error("two sessions, one SessionIndex")
	}

	idx := x.index(storeKey)
	raw, _ := base64.RawURLEncoding.DecodeString(idx[1:])
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return "_" + base64.RawURLEncoding.EncodeToString(b)
	}
	// A valid GCM seal under a nonce that is not the store key's HMAC:
	// sealed by this key, but not an index this IdP issued.
	pt := packSessionID(storeKey)
	other := make([]byte, x.aead.NonceSize())
	foreignNonce := "_" + base64.RawURLEncoding.EncodeToString(x.aead.Seal(other, other, pt, []byte(sessionIndexAAD)))
	for name, bad := range map[string]string{
		"empty":            "",
		"no underscore":    idx[1:],
		"other key":        testIndexer(t, 2).index(storeKey),
		"old hash format":  "_0123456789abcdef0123456789abcdef",
		"nonce altered":    flip(0),
		"ciphertext":       flip(len(raw) / 2),
		"tag":              flip(len(raw) - 1),
		"truncated":        idx[:len(idx)-4],
		"not base64":       "_" + strings.Repeat("*", 60),
		"too long":         "_" + strings.Repeat("A", maxSessionIndex),
		"foreign nonce":    foreignNonce,
		"padding":          idx + "==",
		"only a seal tag":  "_" + base64.RawURLEncoding.EncodeToString(make([]byte, 28)),
		"unknown packing":  "_" + base64.RawURLEncoding.EncodeToString(x.aead.Seal(x.nonce([]byte("zabc")), x.nonce([]byte("zabc")), []byte("zabc"), []byte(sessionIndexAAD))),
		"short hex packed": "_" + base64.RawURLEncoding.EncodeToString(x.aead.Seal(x.nonce([]byte("habc")), x.nonce([]byte("habc")), []byte("habc"), []byte(sessionIndexAAD))),
	} {
		if id, ok := x.sessionID(bad); ok {
			t.Errorf("%s: %q read as session %q", name, bad, id)
		}
	}
}

func FuzzSessionIndex(f *testing.F) {
	x := testIndexer(f, 1)
	f.Add(x.index(storeKey))
	f.Add(x.index("sess"))
	f.Add("_")
	f.Add("_0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, idx string) {
		id, ok := x.sessionID(idx)
		if !ok {
			return
		}
		// Anything read back names a session whose own index it is or
		// decodes to it (base64 without strict padding bits).
		again, ok2 := x.sessionID(x.index(id))
		if !ok2 || again != id {
			t.Fatalf("%q: read %q, its own index reads %q", idx, id, again)
		}
	})
}

func TestCheckRelayState(t *testing.T) {
	sp := &serviceProvider{entityID: "https://sp.example/saml"}
	sp.cur.Store(&crewsaml.EntityDescriptor{SPSSODescriptors: []crewsaml.SPSSODescriptor{{SSODescriptor: crewsaml.SSODescriptor{}, AssertionConsumerServices: []crewsaml.IndexedEndpoint{
		{Binding: crewsaml.HTTPPostBinding, Location: "https://sp.example:8443/saml/acs"},
		{Binding: crewsaml.HTTPPostBinding, Location: "https://login.sp.example/acs"},
	}}}})
	for _, ok := range []string{"", "/", "/app/start?x=1", "app/start", "token-1234", "?q=1", "#frag",
		"https://sp.example:8443/app", "HTTPS://SP.EXAMPLE:8443/", "https://login.sp.example"} {
		if err := checkRelayState(sp, ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"//evil.example/", "/\\evil.example", "\\\\evil.example", "https://evil.example/", "https://sp.example/",
		"https://sp.example:8443.evil.example/", "http://sp.example:8443/", "https://user@sp.example:8443/",
		"javascript:alert(1)", "data:text/html,x", "https:sp.example", "/a\nb", "/a\tb", "\x7f",
		"/" + strings.Repeat("a", 80), "mailto:a@sp.example", "ftp://sp.example:8443/",
	} {
		if err := checkRelayState(sp, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// An SP without metadata (a metadata_url not fetched yet) has no
	// origin: only relative RelayStates.
	none := &serviceProvider{}
	if checkRelayState(none, "https://sp.example:8443/") == nil || checkRelayState(none, "/x") != nil {
		t.Error("SP without metadata")
	}
}

func FuzzRelayState(f *testing.F) {
	sp := &serviceProvider{}
	sp.cur.Store(&crewsaml.EntityDescriptor{SPSSODescriptors: []crewsaml.SPSSODescriptor{{AssertionConsumerServices: []crewsaml.IndexedEndpoint{
		{Binding: crewsaml.HTTPPostBinding, Location: "https://sp.example/acs"}}}}})
	for _, s := range []string{"/x", "//evil", "https://sp.example/a", "https://evil/", "\\\\x", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, relay string) {
		if checkRelayState(sp, relay) != nil {
			return
		}
		// Whatever passes resolves, against the SP's ACS as a browser
		// would, to the SP's own origin.
		base, _ := url.Parse("https://sp.example/acs")
		u, err := url.Parse(relay)
		if err != nil {
			t.Fatalf("%q accepted but unparsable", relay)
		}
		if r := base.ResolveReference(u); !strings.EqualFold(r.Scheme+"://"+r.Host, "https://sp.example") {
			t.Fatalf("%q accepted, resolves to %s", relay, r)
		}
		if strings.ContainsAny(relay, "\\\r\n\t") {
			t.Fatalf("%q accepted", relay)
		}
	})
}

// testSessionKey is the SessionKey of the IdPs the package's tests build.
var testSessionKey = bytes.Repeat([]byte{7}, 32)

// FuzzNamedSessionIDs: the LogoutRequest read before crewjam validates it
// (the cookieless lookup): no panic, at most maxSessionIndexes keys, and
// only keys this IdP sealed.
func FuzzNamedSessionIDs(f *testing.F) {
	p := &IdP{ix: testIndexer(f, 1)}
	idp := testIdP(f)
	sloURL := "https://idp.example/saml/slo"
	tmpl := `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="x" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://sp.example/saml</saml:Issuer><saml:NameID>a</saml:NameID>%s</samlp:LogoutRequest>`
	one := fmt.Sprintf(tmpl, "<samlp:SessionIndex>"+p.ix.index(storeKey)+"</samlp:SessionIndex>")
	issuer, ids := p.namedSessionIDs(idp, postForm(sloURL, one))
	if issuer != "https://sp.example/saml" || len(ids) != 1 || ids[0] != storeKey {
		f.Fatalf("seed: %q %v", issuer, ids)
	}
	if _, ids := p.namedSessionIDs(idp, postForm(sloURL, fmt.Sprintf(tmpl, strings.Repeat("<samlp:SessionIndex>"+p.ix.index(storeKey)+"</samlp:SessionIndex>", 20)))); len(ids) != maxSessionIndexes {
		f.Fatalf("20 SessionIndexes: %d read", len(ids))
	}
	for _, bad := range []string{
		fmt.Sprintf(tmpl, "<samlp:SessionIndex>"+testIndexer(f, 2).index(storeKey)+"</samlp:SessionIndex>"),
		strings.Replace(one, "<saml:Issuer>https://sp.example/saml</saml:Issuer>", "", 1),
		`<!DOCTYPE x [<!ENTITY e "a">]>` + one,
	} {
		if _, ids := p.namedSessionIDs(idp, postForm(sloURL, bad)); len(ids) != 0 {
			f.Errorf("%q: read %v", bad, ids)
		}
	}
	f.Add(one, false)
	f.Add(one, true)
	f.Add(fmt.Sprintf(tmpl, ""), false)
	f.Fuzz(func(t *testing.T, doc string, redirect bool) {
		hr := postForm(sloURL, doc)
		if redirect {
			hr = httptest.NewRequest(http.MethodGet, sloURL+"?"+url.Values{"SAMLRequest": {deflate(doc)}}.Encode(), nil)
		}
		_, ids := p.namedSessionIDs(idp, hr)
		if len(ids) > maxSessionIndexes {
			t.Fatalf("%d keys", len(ids))
		}
		for _, id := range ids {
			if id != storeKey {
				t.Fatalf("read %q, which was never sealed", id)
			}
		}
	})
}

func postForm(u, doc string) *http.Request {
	hr := httptest.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(doc))}}.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return hr
}
