package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, r *Readiness, target string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return w.Code, w.Body.String()
}

func ok(context.Context) error { return nil }

func check(name string, run func(context.Context) error) Check { return Check{Name: name, Run: run} }

func partial(name string, run func(context.Context) error) Check {
	return Check{Name: name, Run: run, Partial: true}
}

// TestReadyz: the plain and the verbose answer for passing, degraded and
// failing checks, and for partial ones, which when failing or panicking
// are unavailable and leave the broker ready; the public reason is shown,
// the error behind it only logged.
func TestReadyz(t *testing.T) {
	secret := errors.New("dial tcp: GET https://user:s3cret@md.example/x: connection refused")
	for _, tc := range []struct {
		name        string
		checks      []Check
		code        int
		plain       string
		verbose     []string
		notInBodies []string
		log         []string
		notInLog    []string
	}{
		{
			name:    "ok",
			checks:  []Check{check("database", ok), partial("saml-metadata/a", ok)},
			code:    200,
			plain:   "ok\n",
			verbose: []string{"[+]database ok", "[+]saml-metadata/a ok", "readyz check passed"},
		},
		{
			name: "database down",
			checks: []Check{check("database", func(context.Context) error { return Failed("unavailable", secret) }),
				partial("saml-metadata/a", ok)},
			code:        503,
			plain:       "not ready: database\n",
			verbose:     []string{"[-]database failed: unavailable", "[+]saml-metadata/a ok", "readyz check failed"},
			notInBodies: []string{"s3cret", "refused"},
			log:         []string{"readiness check failed", "check=database", "connection refused"},
		},
		{
			name: "degraded passes",
			checks: []Check{check("database", ok),
				check("cache", func(context.Context) error { return Degraded("refresh failing", secret) })},
			code:        200,
			plain:       "ok\n",
			verbose:     []string{"[+]database ok", "[+]cache degraded: refresh failing", "readyz check passed"},
			notInBodies: []string{"s3cret"},
			log:         []string{`level=WARN msg="readiness check degraded"`, "check=cache", "connection refused"},
		},
		{
			name: "a partial check degraded is degraded",
			checks: []Check{check("database", ok),
				partial("saml-metadata/a", func(context.Context) error { return Degraded("refresh failing", secret) })},
			code:        200,
			plain:       "ok\n",
			verbose:     []string{"[+]database ok", "[+]saml-metadata/a degraded: refresh failing", "readyz check passed"},
			notInBodies: []string{"s3cret"},
			log:         []string{`level=WARN msg="readiness check degraded"`, "check=saml-metadata/a", "connection refused"},
		},
		{
			name: "a partial check failing is unavailable and passes",
			checks: []Check{check("database", ok),
				partial("saml-metadata/a", func(context.Context) error { return Failed("metadata expired at 2026-11-27T11:00:00Z", secret) }),
				partial("saml-metadata/b", func(context.Context) error { return secret })},
			code:  200,
			plain: "ok\n",
			verbose: []string{"[+]database ok\n", "[+]saml-metadata/a unavailable: metadata expired at 2026-11-27T11:00:00Z\n",
				"[+]saml-metadata/b unavailable\n", "readyz check passed"},
			notInBodies: []string{"s3cret", "refused", "[-]"},
			log:         []string{`level=ERROR msg="readiness check unavailable`, "check=saml-metadata/a", "check=saml-metadata/b", "connection refused"},
			notInLog:    []string{"readiness check failed"},
		},
		{
			name:        "a partial check panicking is unavailable",
			checks:      []Check{check("database", ok), partial("eidas-metadata/eu", func(context.Context) error { panic("boom") })},
			code:        200,
			plain:       "ok\n",
			verbose:     []string{"[+]database ok\n", "[+]eidas-metadata/eu unavailable: internal error\n", "readyz check passed"},
			notInBodies: []string{"boom"},
			log:         []string{`level=ERROR msg="readiness check unavailable`, "check=eidas-metadata/eu", "boom"},
		},
		{
			name: "a partial check failing with the database down: only the database is named",
			checks: []Check{check("database", func(context.Context) error { return Failed("unavailable", secret) }),
				partial("saml-metadata/a", func(context.Context) error { return Failed("metadata never loaded", secret) })},
			code:  503,
			plain: "not ready: database\n",
			verbose: []string{"[-]database failed: unavailable\n", "[+]saml-metadata/a unavailable: metadata never loaded\n",
				"readyz check failed"},
			notInBodies: []string{"s3cret", "saml-metadata/a failed"},
			log: []string{`level=ERROR msg="readiness check failed" check=database`,
				`level=ERROR msg="readiness check unavailable; the broker stays ready" check=saml-metadata/a`},
		},
		{
			name: "errors without a public reason are withheld",
			checks: []Check{check("a", func(context.Context) error { return secret }),
				check("b", func(context.Context) error { return Failed("never loaded", nil) })},
			code:        503,
			plain:       "not ready: a, b\n",
			verbose:     []string{"[-]a failed\n", "[-]b failed: never loaded", "readyz check failed"},
			notInBodies: []string{"s3cret", "refused"},
		},
		{
			name:    "a panicking check fails",
			checks:  []Check{check("a", func(context.Context) error { panic("boom") })},
			code:    503,
			plain:   "not ready: a\n",
			verbose: []string{"[-]a failed: internal error"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			r := &Readiness{Logger: slog.New(slog.NewTextHandler(&log, nil))}
			r.Add(tc.checks...)
			code, plain := get(t, r, "/readyz")
			if code != tc.code || plain != tc.plain {
				t.Errorf("plain: %d %q, want %d %q", code, plain, tc.code, tc.plain)
			}
			code, verbose := get(t, r, "/readyz?verbose")
			if code != tc.code {
				t.Errorf("verbose: %d, want %d", code, tc.code)
			}
			if lines := strings.Count(verbose, "\n"); lines != len(tc.checks)+1 {
				t.Errorf("verbose: %d lines:\n%s", lines, verbose)
			}
			for _, want := range tc.verbose {
				if !strings.Contains(verbose, want) {
					t.Errorf("verbose lacks %q:\n%s", want, verbose)
				}
			}
			for _, bad := range tc.notInBodies {
				if strings.Contains(plain, bad) || strings.Contains(verbose, bad) {
					t.Errorf("answer shows %q:\n%s%s", bad, plain, verbose)
				}
			}
			for _, want := range tc.log {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, log.String())
				}
			}
			for _, bad := range tc.notInLog {
				if strings.Contains(log.String(), bad) {
					t.Errorf("log shows %q:\n%s", bad, log.String())
				}
			}
		})
	}
}

// TestReadyzTimeout: checks run concurrently, so two slow ones fit in the
// timeout together; one that does not answer in time fails as "timed
// out" (a partial one is unavailable), and the answer comes when the
// timeout ends, not when the check does.
func TestReadyzTimeout(t *testing.T) {
	slow := func(ctx context.Context) error {
		select {
		case <-time.After(300 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := &Readiness{Timeout: 2 * time.Second}
	r.Add(check("a", slow), check("b", slow), check("c", slow))
	start := time.Now()
	if code, body := get(t, r, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("slow checks within the timeout: %d %q", code, body)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("checks ran one after another: %v", d)
	}

	stuck := make(chan struct{})
	defer close(stuck)
	r = &Readiness{Timeout: 200 * time.Millisecond}
	r.Add(check("database", ok), check("stuck", func(context.Context) error { <-stuck; return nil }),
		check("slow", slow))
	start = time.Now()
	code, body := get(t, r, "/readyz?verbose")
	if d := time.Since(start); d > time.Second {
		t.Errorf("answer after %v, timeout 200ms", d)
	}
	if code != 503 || !strings.Contains(body, "[+]database ok\n") || !strings.Contains(body, "[-]stuck failed: timed out\n") ||
		!strings.Contains(body, "[-]slow failed: timed out\n") {
		t.Errorf("%d\n%s", code, body)
	}

	// A partial check that does not answer in time is unavailable: the
	// broker stays ready.
	r = &Readiness{Timeout: 200 * time.Millisecond}
	r.Add(check("database", ok), partial("eidas-metadata/eu", func(context.Context) error { <-stuck; return nil }))
	if code, body := get(t, r, "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("partial check timed out: %d %q", code, body)
	}
	if code, body := get(t, r, "/readyz?verbose"); code != 200 ||
		body != "[+]database ok\n[+]eidas-metadata/eu unavailable: timed out\nreadyz check passed\n" {
		t.Errorf("partial check timed out, verbose: %d %q", code, body)
	}
}

// TestReadyzTerse: the answer for a listener anyone can reach is "ok" or
// 503 "failed", with or without ?verbose, never a check's name or reason;
// the checks still run and a failure is still logged.
func TestReadyzTerse(t *testing.T) {
	var log bytes.Buffer
	down := true
	r := &Readiness{Logger: slog.New(slog.NewTextHandler(&log, nil))}
	r.Add(check("database", func(context.Context) error {
		if down {
			return Failed("unavailable", errors.New("dial tcp 10.0.0.7:5432: refused"))
		}
		return nil
	}), partial("saml-metadata/secret-rp", func(context.Context) error { return Failed("no metadata", nil) }))
	for _, target := range []string{"/readyz", "/readyz?verbose"} {
		for _, d := range []bool{true, false} {
			down = d
			log.Reset()
			w := httptest.NewRecorder()
			r.Terse().ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
			wantCode, wantBody := 200, "ok\n"
			if d {
				wantCode, wantBody = 503, "failed\n"
			}
			if w.Code != wantCode || w.Body.String() != wantBody {
				t.Errorf("%s, database down %v: %d %q, want %d %q", target, d, w.Code, w.Body, wantCode, wantBody)
			}
			if d && !strings.Contains(log.String(), "10.0.0.7") {
				t.Errorf("%s: the failure was not logged: %s", target, log.String())
			}
			if !strings.Contains(log.String(), "secret-rp") {
				t.Errorf("%s: the partial check did not run: %s", target, log.String())
			}
		}
	}
}
