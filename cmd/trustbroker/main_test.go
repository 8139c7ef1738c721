package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validConfig = `
database:
  dsn: sqlite:./x.db
keys:
  master_key_file: ./mk
relying_parties:
  - id: shop
    name: {en: Shop}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://shop.example/cb]
      client_secret: 0123456789abcdef0123456789abcdef
`

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		code       int
		want       string
	}{
		{"valid", validConfig, 0, "configuration is valid (0 providers, 1 relying parties)"},
		{"unknown key", validConfig + "colour: blue\n", 2, `colour: unknown key`},
		{"bad dsn", strings.Replace(validConfig, "sqlite:./x.db", "mysql://db/x", 1), 2, `database.dsn: unsupported scheme "mysql"`},
		{"http redirect", strings.Replace(validConfig, "https://shop.example/cb", "http://shop.example/cb", 1), 2,
			`relying_parties[0].oidc.redirect_uris[0]: "http://shop.example/cb" must use https`},
		{"bad management listen", validConfig + "server:\n  management: {listen: \"9464\"}\n", 2,
			`server.management.listen: "9464" is not host:port (or off for no management listener)`},
		{"management off", validConfig + "server:\n  management: {listen: off}\n", 0, "configuration is valid"},
		{"unknown provider type", validConfig + "providers:\n  - {id: x, type: carrier-pigeon, name: {en: X}}\n", 2,
			`providers[0].type: unknown provider type "carrier-pigeon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, nil, "config", "check", writeFile(t, "c.yaml", tc.yaml))
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant: %s", code, tc.code, out, errOut, tc.want)
			}
		})
	}
	if code, _, _ := runCmd(t, nil, "config", "check"); code != 2 {
		t.Errorf("config check without a file: exit %d", code)
	}
	if code, _, errOut := runCmd(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: %d %s", code, errOut)
	}
	if code, out, _ := runCmd(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "trustbroker ") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, args := range [][]string{{"serve", "--help"}, {"migrate", "-h"}, {"keys", "list", "--help"}, {"config", "check", "--help"}} {
		if code, _, errOut := runCmd(t, nil, args...); code != 0 || !strings.Contains(errOut, "Usage: trustbroker") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}

func TestServeRefusesBadEnvironment(t *testing.T) {
	code, _, errOut := runCmd(t, map[string]string{"TRUSTBROKER_DATABASE_DSN": "oracle:x"}, "serve")
	if code != 2 || !strings.Contains(errOut, "database.dsn") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestServeRefusesBadProvider: a bad provider block stops serve with exit
// code 2 and its key path, before any key is generated.
func TestServeRefusesBadProvider(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.NewReplacer("sqlite:./x.db", "sqlite:"+filepath.Join(dir, "x.db"), "./mk", filepath.Join(dir, "mk")).
		Replace(validConfig) + "server:\n  listen: 127.0.0.1:0\nproviders:\n  - {id: x, type: carrier-pigeon, name: {en: X}}\n"
	env := map[string]string{"TRUSTBROKER_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	code, _, errOut := runCmd(t, env, "serve", "--config", writeFile(t, "c.yaml", cfg))
	if code != 2 || !strings.Contains(errOut, `providers[0].type: unknown provider type "carrier-pigeon"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	st, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(dir, "x.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if keys, err := st.Keys().List(t.Context()); err != nil || len(keys) != 0 {
		t.Fatalf("keys were generated for a configuration that was refused: %d, %v", len(keys), err)
	}
}

// TestServeManagementPortTaken: a management address another process
// holds stops serve with the key path to change, and the public listener
// it had opened is closed again.
func TestServeManagementPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	public := "127.0.0.1:" + freePort(t)
	cfg := strings.NewReplacer("sqlite:./x.db", "sqlite:"+filepath.Join(dir, "x.db"), "./mk", filepath.Join(dir, "mk")+"\n  rsa_bits: 2048").
		Replace(validConfig) + "server:\n  listen: " + public + "\n  management: {listen: \"" + taken.Addr().String() + "\"}\n"
	env := map[string]string{"TRUSTBROKER_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	code, _, errOut := runCmd(t, env, "serve", "--config", writeFile(t, "c.yaml", cfg))
	if code != 1 || !strings.Contains(errOut, "trustbroker: server.management.listen: listen tcp "+taken.Addr().String()) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ln, err := net.Listen("tcp", public)
	if err != nil {
		t.Errorf("the public listener was left open: %v", err)
	} else {
		ln.Close()
	}
}

// TestMigrateAndKeys runs migrate, keys list and keys rotate on both backends.
func TestMigrateAndKeys(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := map[string]string{
			"TRUSTBROKER_DATABASE_DSN": dsn,
			"TRUSTBROKER_MASTER_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		}
		cfg := writeFile(t, "c.yaml", "keys:\n  rsa_bits: 2048\n")
		code, out, errOut := runCmd(t, env, "migrate", "--config", cfg)
		if code != 0 || strings.Contains(out, "applied 0 ") || !strings.Contains(out, " migration(s); schema version ") {
			t.Fatalf("migrate: %d %s %s", code, out, errOut)
		}
		if code, out, _ = runCmd(t, env, "migrate", "--config", cfg); code != 0 || !strings.Contains(out, "applied 0 migration(s)") {
			t.Errorf("second migrate: %d %s", code, out)
		}
		code, out, errOut = runCmd(t, env, "keys", "list", "--config", cfg)
		if code != 0 || strings.Count(out, " active ") != 2 || strings.Count(out, " next ") != 2 {
			t.Fatalf("keys list: %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = runCmd(t, env, "keys", "rotate", "--alg", "ES256", "--config", cfg)
		if code != 0 || strings.Count(out, " retired ") != 1 || strings.Count(out, " active ") != 2 {
			t.Fatalf("keys rotate: %d\n%s%s", code, out, errOut)
		}
		if code, _, errOut = runCmd(t, map[string]string{"TRUSTBROKER_DATABASE_DSN": dsn, "TRUSTBROKER_MASTER_KEY": "short"}, "keys", "list", "--config", cfg); code == 0 {
			t.Errorf("a bad master key was accepted: %s", errOut)
		}
	})
}

// TestBinary builds the binary, starts the demo, rotates keys while it
// runs, and stops it with SIGTERM. The management listener is on a
// loopback port the system chose (found in the log): /metrics and the
// readiness report are there, not on the public listener.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "trustbroker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	cfg := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`demo: true
server: {listen: "127.0.0.1:%s", issuer: "%s", management: {listen: "127.0.0.1:0"}}
log: {format: json}
keys: {master_key_file: ./mk, rsa_bits: 2048, reload_interval: 200ms}
`, port, base)), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := exec.Command(bin, "serve", "--config", cfg)
	srv.Dir, srv.Stdout, srv.Stderr = dir, logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() { _ = srv.Process.Kill() })

	waitHealthy(t, base, exited, logs)
	mgmt := "http://" + logAddr(t, logs, "trustbroker management listening")
	if mgmt == "http://"+net.JoinHostPort("127.0.0.1", port) {
		t.Fatalf("the management listener is the public one: %s", mgmt)
	}
	if code, body := get(t, mgmt+"/metrics"); code != http.StatusOK ||
		!strings.Contains(body, `trustbroker_http_requests_total{code="200",route="GET /healthz"} `) {
		t.Errorf("management /metrics: %d, no count of the public /healthz\n%s", code, body)
	}
	if code, body := get(t, mgmt+"/readyz?verbose"); code != http.StatusOK || !strings.HasPrefix(body, "[+]database ok\n") {
		t.Errorf("management /readyz?verbose: %d %q", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "trustbroker_") {
		t.Errorf("public /metrics: %d\n%s", code, body)
	}
	if code, body := get(t, base+"/readyz?verbose"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("public /readyz?verbose: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "demo mode: generated a new master key file") {
		t.Errorf("demo master key generation not logged:\n%s", logs.String())
	}
	before := kids(t, base)
	if len(before) != 4 {
		t.Fatalf("JWKS before rotation has %d keys, want 4 (active+next per alg)", len(before))
	}
	rot := exec.Command(bin, "keys", "rotate", "--config", cfg)
	rot.Dir = dir
	if out, err := rot.CombinedOutput(); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	var after []string
	for time.Now().Before(deadline) {
		if after = kids(t, base); len(after) == 6 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, k := range before {
		if !slices.Contains(after, k) {
			t.Errorf("key %s left the JWKS at rotation: tokens it signed could no longer be verified", k)
		}
	}
	if len(after) != 6 {
		t.Errorf("JWKS after rotation: %v", after)
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no graceful shutdown in the log:\n%s", logs.String())
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitHealthy(t *testing.T, base string, exited chan error, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("broker exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no healthy broker:\n%s", logs.String())
}

// logAddr is the addr of the first JSON log line with msg. The line may
// still be in the pipe from the child when the broker already answers.
func logAddr(t *testing.T, logs *syncBuffer, msg string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && rec.Addr != "" {
				return rec.Addr
			}
		}
	}
	t.Fatalf("no %q with addr in the log:\n%s", msg, logs.String())
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func kids(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// syncBuffer collects a child's output written from exec's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeSideListenerFails: a side listener that fails while serving
// (here the card-login listener, whose certificate does not load) ends
// the broker with exit code 1 and the listener's error, not with a clean
// exit a supervisor would not restart.
func TestServeSideListenerFails(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, "bad.pem", "not a certificate\n")
	cfg := strings.NewReplacer("sqlite:./x.db", "sqlite:"+filepath.Join(dir, "x.db"), "./mk", filepath.Join(dir, "mk")+"\n  rsa_bits: 2048").
		Replace(validConfig) + "server:\n  listen: 127.0.0.1:" + freePort(t) + "\n  management: {listen: \"off\"}\n" +
		"  card_login: {listen: \"127.0.0.1:" + freePort(t) + "\", url: \"https://localhost:8443\", cert_file: \"" + bad + "\", key_file: \"" + bad + "\"}\n"
	env := map[string]string{"TRUSTBROKER_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	code, _, errOut := runCmd(t, env, "serve", "--config", writeFile(t, "c.yaml", cfg))
	if code != 1 || !strings.Contains(errOut, "card-login listener: server.card_login:") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
