// Command trustbroker-bench is the load tool of the OpenID Provider. It
// starts a broker as a child process on loopback (SQLite or PostgreSQL),
// prepares tokens and codes through the real login flow (with a fake
// credential provider: this tool is test tooling and never part of the
// broker binary), then drives each endpoint with N concurrent clients for a
// bounded time and reports requests per second, p50/p99 latency, the
// server's CPU time per request (from /proc of the child) and its resident
// memory.
//
// TRUSTBROKER_BENCH_CPUPROFILE and TRUSTBROKER_BENCH_MEMPROFILE name files
// for the child's CPU profile and allocation profile.
//
//	go run ./cmd/trustbroker-bench -c 64 -d 10s
//	go run ./cmd/trustbroker-bench -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/conformance/providertest"
	"github.com/trustbroker/trustbroker/providers/builtin"
)

const (
	secret   = "bench-secret-0123456789-0123456789-0123"
	redirect = "http://localhost/bench/callback"
	verifier = "bench-verifier-0123456789-0123456789-0123456789"
)

// benchYAML configures the child broker; LISTEN, ISSUER, DSN are filled in.
const benchYAML = `
server: {listen: "LISTEN", issuer: "ISSUER"}
log: {level: error}
database: {dsn: "DSN", max_open_conns: CONNS}
keys: {rsa_bits: 2048}
# The load is on the token endpoint; logins only prepare it.
consent: {mode: passthrough}
providers:
  - id: fake
    type: fake-redirect
    name: {en: Fake}
    config: {kind: eid, subject: bench-user, loa: high, attributes: {given_name: Bench}}
relying_parties:
  - id: web
    name: {en: Web}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: bench}}]
    oidc: {redirect_uris: [` + redirect + `], client_secret: ` + secret + `}
  - id: webes
    name: {en: Web ES256}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: bench}}]
    oidc: {redirect_uris: [` + redirect + `], client_secret: ` + secret + `, id_token_signed_response_alg: ES256}
  - id: svc
    name: {en: Service}
    protocol: oidc
    accepted_credentials: [eid]
    oidc: {redirect_uris: [https://svc.example/x], client_secret: ` + secret + `, grant_types: [client_credentials], scopes: [api]}
  - id: svcjwt
    name: {en: Service JWT}
    protocol: oidc
    accepted_credentials: [eid]
    oidc: {redirect_uris: [https://svc.example/x], client_secret: ` + secret + `, grant_types: [client_credentials], scopes: [api], access_token_format: jwt}
  - id: rs
    name: {en: Resource server}
    protocol: oidc
    accepted_credentials: [eid]
    oidc: {redirect_uris: [https://rs.example/x], client_secret: ` + secret + `, grant_types: [client_credentials], introspection: true}
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "trustbroker-bench:", err)
		os.Exit(1)
	}
}

// child serves the broker from a configuration file until SIGTERM, with
// the garbage-collector settings of trustbroker serve.
func child(path string) error {
	server.TuneGC(os.Getenv)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(b, path)
	if err != nil {
		return err
	}
	cfg.Keys.MasterKey = os.Getenv("TRUSTBROKER_MASTER_KEY")
	reg := builtin.Registry()
	for k, f := range providertest.Registry() {
		reg[k] = f
	}
	if prof := os.Getenv("TRUSTBROKER_BENCH_CPUPROFILE"); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if prof := os.Getenv("TRUSTBROKER_BENCH_MEMPROFILE"); prof != "" {
		// Allocations over the whole run (go tool pprof -sample_index=alloc_space).
		defer func() {
			if f, err := os.Create(prof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := server.New(ctx, cfg, server.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	return srv.Run(ctx, ln)
}

type options struct {
	dsn         string
	concurrency int
	duration    time.Duration
	scenarios   string
	conns       int
	serve       time.Duration
}

func run() error {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "database DSN (default: SQLite in a temporary directory)")
	flag.IntVar(&o.concurrency, "c", 64, "concurrent clients")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "duration of each scenario")
	flag.StringVar(&o.scenarios, "scenarios", "discovery,jwks,client_credentials,client_credentials_jwt,introspection,refresh,refresh_es256,code,code_es256", "scenarios to run")
	flag.DurationVar(&o.serve, "serve", 0, "only start the broker and keep it up this long (for wrk as a second opinion)")
	flag.IntVar(&o.conns, "conns", 0, "database connections of the broker (database.max_open_conns; 0: its default)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "trustbroker-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.dsn == "" {
		o.dsn = "sqlite:" + filepath.Join(dir, "bench.db")
	}
	if strings.HasPrefix(o.dsn, "postgres") {
		dsn, drop, err := ownSchema(o.dsn)
		if err != nil {
			return err
		}
		defer drop()
		o.dsn = dsn
	}
	b, err := startChild(dir, o.dsn, o.conns)
	if err != nil {
		return err
	}
	defer b.stop()
	if o.serve > 0 {
		fmt.Printf("broker pid %d at %s, database %s; client secret %s\n", b.cmd.Process.Pid, b.base, dialect(o.dsn), secret)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		select {
		case <-ctx.Done():
		case <-time.After(o.serve):
		}
		return nil
	}
	fmt.Printf("broker pid %d at %s, database %s, %d clients, %s per scenario\n", b.cmd.Process.Pid, b.base, dialect(o.dsn), o.concurrency, o.duration)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: o.concurrency * 2, MaxIdleConnsPerHost: o.concurrency * 2}, Timeout: 30 * time.Second}
	var results []result
	for _, name := range strings.Split(o.scenarios, ",") {
		sc, err := b.scenario(client, strings.TrimSpace(name), o)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, measure(b, sc, o))
		for _, w := range sc.close {
			w.close()
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\terrors\treq/s\tp50\tp99\tserver CPU/req\tclient CPU/req\tRSS\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d MB\t\n", r.name, r.n, r.errors, r.rate, r.p50.Round(time.Microsecond),
			r.p99.Round(time.Microsecond), r.cpuPerReq.Round(time.Microsecond), r.clientCPU.Round(time.Microsecond), r.rssMB)
	}
	return tw.Flush()
}

func dialect(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "PostgreSQL"
	}
	return "SQLite"
}

type proc struct {
	cmd  *exec.Cmd
	base string
}

func startChild(dir, dsn string, conns int) (*proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	cfg := strings.NewReplacer("LISTEN", addr, "ISSUER", base, "DSN", dsn, "CONNS", strconv.Itoa(conns)).Replace(benchYAML)
	path := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-child", path)
	cmd.Env = append(os.Environ(), "TRUSTBROKER_MASTER_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &proc{cmd: cmd, base: base}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.stop()
	return nil, errors.New("the broker did not become healthy")
}

func (c *proc) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
	}
}

// cpu returns the child's user+system CPU time from /proc (Linux).
func (c *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clk = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clk
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMB returns the child's resident set size.
func (c *proc) rssMB() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindStringSubmatch(string(b))
	if m == nil {
		return 0
	}
	kb, _ := strconv.Atoi(m[1])
	return kb / 1024
}

// scenario is one load: a request built per call by a worker.
type scenario struct {
	name string
	// do performs one request for worker w; false means an error.
	do func(w int) bool
	// limit bounds the total number of requests (0: none), for scenarios
	// that consume prepared material.
	limit int64
	// close are the scenario's connections, closed after it.
	close []*wireConn
}

func (c *proc) scenario(client *http.Client, name string, o options) (*scenario, error) {
	host := strings.TrimPrefix(c.base, "http://")
	wires := make([]*wireConn, o.concurrency)
	for i := range wires {
		wires[i] = newWireConn(host)
	}
	// send performs one prepared request on worker w's connection.
	send := func(w int, req []byte) (int, []byte) {
		status, body, err := wires[w].roundTrip(req)
		if err != nil {
			return 0, nil
		}
		return status, body
	}
	ok := func(w int, req []byte) bool {
		status, _ := send(w, req)
		return status == 200
	}
	switch name {
	case "discovery":
		req := wireGet(host, "/.well-known/openid-configuration")
		return &scenario{name: name, do: func(w int) bool { return ok(w, req) }, close: wires}, nil
	case "jwks":
		req := wireGet(host, "/jwks.json")
		return &scenario{name: name, do: func(w int) bool { return ok(w, req) }, close: wires}, nil
	case "client_credentials", "client_credentials_jwt":
		id := "svc"
		if name == "client_credentials_jwt" {
			id = "svcjwt"
		}
		req := wirePost(host, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}.Encode(), id, secret)
		return &scenario{name: name + " (" + id + ")", do: func(w int) bool { return ok(w, req) }, close: wires}, nil
	case "introspection":
		tok, err := clientToken(client, c.base+"/oauth2/token")
		if err != nil {
			return nil, err
		}
		req := wirePost(host, "/oauth2/introspect", url.Values{"token": {tok}}.Encode(), "rs", secret)
		return &scenario{name: name, close: wires, do: func(w int) bool {
			status, body := send(w, req)
			return status == 200 && bytes.Contains(body, []byte(`"active":true`))
		}}, nil
	case "refresh", "refresh_es256":
		id := "web"
		if name == "refresh_es256" {
			id = "webes"
		}
		rts := make([]string, o.concurrency)
		for i := range rts {
			rt, err := c.refreshToken(client, id)
			if err != nil {
				return nil, err
			}
			rts[i] = rt
		}
		return &scenario{name: name + " (ID token " + map[string]string{"web": "RS256", "webes": "ES256"}[id] + ")", close: wires, do: func(w int) bool {
			req := wirePost(host, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rts[w]}}.Encode(), id, secret)
			status, body := send(w, req)
			m := refreshRE.FindSubmatch(body)
			if status != 200 || m == nil {
				return false
			}
			rts[w] = string(m[1])
			return true
		}}, nil
	case "code", "code_es256":
		id := "web"
		if name == "code_es256" {
			id = "webes"
		}
		codes, err := c.prepareCodes(id, o)
		if err != nil {
			return nil, err
		}
		reqs := make([][]byte, len(codes))
		for i, code := range codes {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {redirect}}.Encode()
			reqs[i] = wirePost(host, "/oauth2/token", form, id, secret)
		}
		var next atomic.Int64
		return &scenario{name: fmt.Sprintf("code exchange, ID token %s (%d codes)", map[string]string{"web": "RS256", "webes": "ES256"}[id], len(codes)),
			limit: int64(len(codes)), close: wires, do: func(w int) bool {
				return ok(w, reqs[next.Add(1)-1])
			}}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

func postBody(client *http.Client, u, form, user string) (int, []byte) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, secret)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var (
	accessRE  = regexp.MustCompile(`"access_token":"([^"]+)"`)
	refreshRE = regexp.MustCompile(`"refresh_token":"([^"]+)"`)
)

func clientToken(client *http.Client, tokenURL string) (string, error) {
	status, b := postBody(client, tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}.Encode(), "svc")
	m := accessRE.FindSubmatch(b)
	if status != 200 || m == nil {
		return "", fmt.Errorf("client_credentials: %d %s", status, b)
	}
	return string(m[1]), nil
}

// browser logs in through the real flow (fake provider) and returns the
// authorization code for one authorization request.
type browser struct {
	client *http.Client
	base   string
}

func newBrowser(base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{base: base, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// challenge is the S256 code challenge of verifier (RFC 7636 §4.2).
var challenge = func() string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}()

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// code runs one authorization request; with an SSO session it needs no
// form, else it chooses the fake provider.
func (b *browser) code(clientID, scope string) (string, error) {
	q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "scope": {scope}, "redirect_uri": {redirect},
		"state": {"bench-state-0123456789"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	resp, err := b.client.Get(b.base + "/oauth2/auth?" + q.Encode())
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Request.URL.Path, "/login/") {
		m := csrfRE.FindSubmatch(body)
		if m == nil {
			return "", errors.New("no login form")
		}
		resp, err = b.client.PostForm(resp.Request.URL.String(), url.Values{"csrf": {string(m[1])}, "provider": {"fake"}})
		if err != nil {
			return "", err
		}
		resp.Body.Close()
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("no code (status %d, location %q)", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code"), nil
}

func (c *proc) refreshToken(client *http.Client, clientID string) (string, error) {
	code, err := newBrowser(c.base).code(clientID, "openid profile offline_access")
	if err != nil {
		return "", err
	}
	status, b := postBody(client, c.base+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {redirect}}.Encode(), clientID)
	m := refreshRE.FindSubmatch(b)
	if status != 200 || m == nil {
		return "", fmt.Errorf("code exchange: %d %s", status, b)
	}
	return string(m[1]), nil
}

// prepareCodes collects codes through SSO logins for at most 20 s (codes
// live 60 s), with the scenario's concurrency.
func (c *proc) prepareCodes(clientID string, o options) ([]string, error) {
	var (
		mu    sync.Mutex
		codes []string
		wg    sync.WaitGroup
		fail  atomic.Int64
	)
	stop := time.Now().Add(min(20*time.Second, o.duration*2))
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := newBrowser(c.base)
			for time.Now().Before(stop) {
				code, err := br.code(clientID, "openid")
				if err != nil {
					fail.Add(1)
					continue
				}
				mu.Lock()
				codes = append(codes, code)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(codes) == 0 {
		return nil, fmt.Errorf("no codes (%d failures)", fail.Load())
	}
	return codes, nil
}

type result struct {
	name      string
	n, errors int64
	rate      float64
	p50, p99  time.Duration
	cpuPerReq time.Duration
	// clientCPU is the load generator's own CPU per request (it shares
	// the machine with the broker).
	clientCPU time.Duration
	rssMB     int
}

func measure(c *proc, sc *scenario, o options) result {
	lat := make([][]time.Duration, o.concurrency)
	var n, errs, issued atomic.Int64
	cpu0, self0 := c.cpu(), selfCPU()
	start := time.Now()
	stop := start.Add(o.duration)
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				// A scenario with prepared material ends when it is used
				// up; no request is counted that was not sent.
				if sc.limit > 0 && issued.Add(1) > sc.limit {
					return
				}
				t := time.Now()
				ok := sc.do(w)
				lat[w] = append(lat[w], time.Since(t))
				n.Add(1)
				if !ok {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, self := c.cpu()-cpu0, selfCPU()-self0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := result{name: sc.name, n: n.Load(), errors: errs.Load(), rssMB: c.rssMB()}
	if len(all) > 0 {
		r.rate = float64(len(all)) / elapsed.Seconds()
		r.p50 = all[len(all)/2]
		r.p99 = all[len(all)*99/100]
		r.cpuPerReq = cpu / time.Duration(len(all))
		r.clientCPU = self / time.Duration(len(all))
	}
	return r
}

// ownSchema gives the run a PostgreSQL schema of its own (search_path),
// dropped afterwards, so a shared database keeps nothing of the run.
func ownSchema(dsn string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("tbbench_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			fmt.Fprintln(os.Stderr, "drop bench schema:", err)
		}
		db.Close()
	}, nil
}
