// Package health runs the broker's readiness checks for GET /readyz: named
// checks, run concurrently under one timeout. The plain answer is for load
// balancers and probes ("ok", or 503 naming the failing checks); with
// ?verbose every check gets a line, in the form of the Kubernetes API
// server's /readyz?verbose. Only a check's short public reason is shown;
// the error behind it goes to the log. Terse is the answer for a listener
// anyone can reach: "ok" or "failed", no check named.
//
// Readiness is this replica's own ability to serve: only checks of its own
// dependencies (the database) may fail it. A check of something that
// concerns one relying party or provider (its metadata) is Partial: every
// replica sees the same party, so failing readiness for it would take all
// replicas out of the load balancer at once, for every relying party. A
// partial check that fails is "unavailable": shown and logged, but /readyz
// stays 200.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// DefaultTimeout bounds one run of all checks.
const DefaultTimeout = 2 * time.Second

// Check is a named readiness check. Run returns nil when the broker is
// ready as far as the check can tell; an error made by Degraded when it is
// ready with a problem an operator should see; any other error when it is
// not ready. Run must honour ctx: a check still running at the timeout
// counts as failed.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
	// Partial: its failure affects one relying party or provider only:
	// reported (StateUnavailable), logged at error level, but it does not
	// fail readiness. A partial check that panics or times out is
	// unavailable too.
	Partial bool
}

// Problem is a check's error with a public part: Reason is short and
// shown by /readyz?verbose (no URLs, no secrets); Err is the detail, for
// the log only.
type Problem struct {
	Reason   string
	Err      error
	degraded bool
}

func (p *Problem) Error() string {
	if p.Err == nil {
		return p.Reason
	}
	return p.Reason + ": " + p.Err.Error()
}

func (p *Problem) Unwrap() error { return p.Err }

// Failed is a failed check (unavailable when the check is Partial) with a
// public reason; err (may be nil) is the detail for the log.
func Failed(reason string, err error) error { return &Problem{Reason: reason, Err: err} }

// Degraded is a passing check with a problem: /readyz stays 200, the
// verbose answer and the log show the reason.
func Degraded(reason string, err error) error {
	return &Problem{Reason: reason, Err: err, degraded: true}
}

// State is the outcome of one check.
type State string

const (
	StateOK       State = "ok"
	StateDegraded State = "degraded"
	StateFailed   State = "failed"
	// StateUnavailable is a failed Partial check: the relying party or
	// provider it concerns cannot be used, the broker is still ready.
	StateUnavailable State = "unavailable"
)

// Result is one check's outcome.
type Result struct {
	Name   string
	State  State
	Reason string // public; empty for an error without one
	Err    error  // for the log
}

// Readiness is the set of checks /readyz runs. Add every check before it
// serves.
type Readiness struct {
	// Timeout bounds one run (DefaultTimeout when zero).
	Timeout time.Duration
	Logger  *slog.Logger
	checks  []Check
}

// Add registers checks; they run and are listed in the order added.
func (r *Readiness) Add(cs ...Check) { r.checks = append(r.checks, cs...) }

// Run runs every check concurrently and waits for all of them, at most
// Timeout; a check that has not answered by then failed ("timed out").
// A Partial check that failed, panicked or timed out is unavailable.
func (r *Readiness) Run(ctx context.Context) []Result {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		i   int
		err error
	}
	// Buffered: a check that answers after the timeout does not block.
	answers := make(chan answer, len(r.checks))
	for i, c := range r.checks {
		go func() {
			defer func() {
				if v := recover(); v != nil {
					answers <- answer{i, Failed("internal error", fmt.Errorf("panic: %v", v))}
				}
			}()
			answers <- answer{i, c.Run(ctx)}
		}()
	}
	res := make([]Result, len(r.checks))
	done := make([]bool, len(r.checks))
wait:
	for range r.checks {
		select {
		case a := <-answers:
			res[a.i], done[a.i] = result(r.checks[a.i].Name, a.err), true
		case <-ctx.Done():
			break wait
		}
	}
	for i, c := range r.checks {
		if !done[i] {
			res[i] = Result{Name: c.Name, State: StateFailed, Reason: "timed out", Err: ctx.Err()}
		}
		if c.Partial && res[i].State == StateFailed {
			res[i].State = StateUnavailable
		}
	}
	return res
}

func result(name string, err error) Result {
	if err == nil {
		return Result{Name: name, State: StateOK}
	}
	var p *Problem
	if errors.As(err, &p) {
		if p.degraded {
			return Result{Name: name, State: StateDegraded, Reason: p.Reason, Err: err}
		}
		return Result{Name: name, State: StateFailed, Reason: p.Reason, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Result{Name: name, State: StateFailed, Reason: "timed out", Err: err}
	}
	return Result{Name: name, State: StateFailed, Err: err}
}

// ServeHTTP answers GET /readyz: 200 "ok" when no check failed (degraded
// and unavailable ones pass), else 503 "not ready: " and the failing
// checks' names. With ?verbose: one line per check, "[+]name ok",
// "[+]name degraded: reason", "[+]name unavailable: reason" or "[-]name
// failed: reason", then "readyz check passed" or "readyz check failed".
// Failed and unavailable checks are logged at error level with their
// error, degraded ones at warning level.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.serve(w, req, req.URL.Query().Has("verbose"), true)
}

// Terse answers GET /readyz where anyone may ask (the broker's public
// listener): 200 "ok" or 503 "failed", whatever the query. The checks run
// and are logged as by ServeHTTP, but their names and reasons are not
// shown: they tell which relying parties and providers the broker serves
// and how they fare, which is for operators (the management listener).
func (r *Readiness) Terse() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.serve(w, req, false, false) })
}

// serve runs the checks and answers: one line per check when verbose,
// else "ok", or on failure "not ready: " and the failing checks' names
// when named, else "failed".
func (r *Readiness) serve(w http.ResponseWriter, req *http.Request, verbose, named bool) {
	res := r.Run(req.Context())
	var failed []string
	for _, x := range res {
		switch x.State {
		case StateFailed:
			failed = append(failed, x.Name)
			r.log().ErrorContext(req.Context(), "readiness check failed", "check", x.Name, "reason", x.Reason, "err", x.Err)
		case StateUnavailable:
			r.log().ErrorContext(req.Context(), "readiness check unavailable; the broker stays ready", "check", x.Name, "reason", x.Reason, "err", x.Err)
		case StateDegraded:
			r.log().WarnContext(req.Context(), "readiness check degraded", "check", x.Name, "reason", x.Reason, "err", x.Err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if !verbose {
		switch {
		case len(failed) > 0 && named:
			_, _ = io.WriteString(w, "not ready: "+strings.Join(failed, ", ")+"\n")
		case len(failed) > 0:
			_, _ = io.WriteString(w, "failed\n")
		default:
			_, _ = io.WriteString(w, "ok\n")
		}
		return
	}
	var b strings.Builder
	for _, x := range res {
		mark := "[+]"
		if x.State == StateFailed {
			mark = "[-]"
		}
		b.WriteString(mark + x.Name + " " + string(x.State))
		if x.Reason != "" {
			b.WriteString(": " + x.Reason)
		}
		b.WriteByte('\n')
	}
	if len(failed) > 0 {
		b.WriteString("readyz check failed\n")
	} else {
		b.WriteString("readyz check passed\n")
	}
	_, _ = io.WriteString(w, b.String())
}

func (r *Readiness) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
