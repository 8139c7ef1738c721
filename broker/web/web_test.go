package web

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func nets(t testing.TB, cidrs ...string) []*net.IPNet {
	var out []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestClientIP(t *testing.T) {
	trusted := nets(t, "10.0.0.0/8", "::1/128")
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.7:1234", "", "192.0.2.7"},
		{"192.0.2.7:1234", "203.0.113.9", "192.0.2.7"},              // untrusted peer: header ignored
		{"10.1.1.1:80", "203.0.113.9", "203.0.113.9"},               // trusted proxy
		{"10.1.1.1:80", "198.51.100.1, 203.0.113.9", "203.0.113.9"}, // rightmost untrusted
		{"10.1.1.1:80", "203.0.113.9, 10.2.2.2", "203.0.113.9"},     // chain of proxies
		{"10.1.1.1:80", "garbage", "10.1.1.1"},
		{"10.1.1.1:80", "203.0.113.9, garbage", "10.1.1.1"},
		{"[::1]:80", "2001:db8::5", "2001:db8::5"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientIP(r, trusted); got != tc.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func FuzzClientIP(f *testing.F) {
	trusted := nets(f, "10.0.0.0/8")
	f.Add("10.0.0.1:1", "1.2.3.4, 10.0.0.2")
	f.Add("1.2.3.4:5", "")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := clientIP(r, trusted)
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		// The answer is the peer, or an address the header carried.
		if got != host && !strings.Contains(xff, got) {
			t.Fatalf("clientIP invented %q", got)
		}
	})
}

func TestChain(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
		if RequestID(r.Context()) == "" || ClientIP(r.Context()) != "192.0.2.1" {
			t.Error("request id or client ip missing in context")
		}
		_, _ = w.Write([]byte("fine"))
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := Wrap(mux, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), TLS: true, Metrics: NewMetrics(reg)})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ok?code=secret-code", nil))
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") || rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("headers: %v", rec.Header())
	}
	if strings.Contains(logs.String(), "secret-code") {
		t.Error("the access log carries the query string")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/panic", nil))
	if rec.Code != 500 || !strings.Contains(logs.String(), "panic in handler") {
		t.Errorf("panic: %d %s", rec.Code, logs.String())
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 || !strings.Contains(mfs[0].String(), "GET /ok") {
		t.Errorf("metrics: %v %v", err, mfs)
	}
}

func TestCSRF(t *testing.T) {
	c := NewCSRF(bytes.Repeat([]byte{7}, 32))
	tok := c.Token("tx|binding")
	if !c.Valid("tx|binding", tok) {
		t.Fatal("own token refused")
	}
	for _, bad := range []struct{ binding, token string }{
		{"tx|other", tok}, {"tx|binding", ""}, {"", tok}, {"tx|binding", tok[:len(tok)-1]},
		{"tx|binding", NewCSRF(bytes.Repeat([]byte{8}, 32)).Token("tx|binding")},
	} {
		if c.Valid(bad.binding, bad.token) {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func FuzzCSRF(f *testing.F) {
	c := NewCSRF(bytes.Repeat([]byte{7}, 32))
	f.Add("b", "t")
	f.Fuzz(func(t *testing.T, binding, token string) {
		if c.Valid(binding, token) && token != c.Token(binding) {
			t.Fatal("accepted a token it did not issue")
		}
	})
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		secure     bool
		path, want string
	}{
		{false, "/", "tb"}, {true, "/", "__Host-tb"}, {true, "/login/x", "__Secure-tb"},
	} {
		rec := httptest.NewRecorder()
		c := Cookies{Secure: tc.secure}
		c.Set(rec, "tb", tc.path, "v", 0)
		got := rec.Header().Get("Set-Cookie")
		if !strings.HasPrefix(got, tc.want+"=v") || !strings.Contains(got, "HttpOnly") || !strings.Contains(got, "SameSite=Lax") ||
			strings.Contains(got, "Secure") != tc.secure {
			t.Errorf("cookie %q", got)
		}
	}
}
