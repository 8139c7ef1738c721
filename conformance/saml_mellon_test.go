package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// MellonEnv names Apache httpd (Debian: /usr/sbin/apache2) with
// mod_auth_mellon installed beside it; unset, the mellon test skips with a
// message; set but incomplete, it fails (CI sets it).
const MellonEnv = "TRUSTBROKER_TEST_MELLON"

// mellonPaths are httpd, its modules directory, and mellon's metadata
// generator; the test fails when MellonEnv is set and one is missing.
func mellonPaths(t *testing.T) (httpd, modules, createMetadata string) {
	t.Helper()
	httpd = os.Getenv(MellonEnv)
	if httpd == "" {
		t.Skipf("mellon interop skipped: set %s to Apache httpd with mod_auth_mellon (Debian: apt-get install apache2 libapache2-mod-auth-mellon; %s=/usr/sbin/apache2)", MellonEnv, MellonEnv)
	}
	modules = "/usr/lib/apache2/modules"
	createMetadata = filepath.Join(filepath.Dir(httpd), "mellon_create_metadata")
	for _, f := range []string{httpd, filepath.Join(modules, "mod_auth_mellon.so"), filepath.Join(modules, "mod_cgi.so"), createMetadata} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s=%s: %v", MellonEnv, httpd, err)
		}
	}
	return httpd, modules, createMetadata
}

const mellonEntityID = "urn:trustbroker:test:mellon"

// mellonYAML registers mellon by its own metadata file; it gets the
// given name and email, transient or persistent NameIDs.
const mellonYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann, birthdate: "1964-08-12", email: erika@example.org}
relying_parties:
  - id: mellon
    name: {de: Apache mit mellon, en: Apache with mellon}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: email, purpose: {en: receipts}}
    saml:
      entity_id: ` + mellonEntityID + `
      metadata_file: {{mellon_md}}
      require_signed_requests: true
      # mellon asks for transient NameIDs; the first format also names
      # the user in the LogoutRequests the IdP sends.
      name_id_formats: [transient, persistent]
`

// The httpd configuration: one loopback listener, prefork with mod_cgi,
// mellon protecting /protected/, where a CGI prints the MELLON_ variables.
const httpdConf = `ServerRoot "{{dir}}"
ServerName localhost
Listen 127.0.0.1:{{port}}
PidFile "{{dir}}/httpd.pid"
DefaultRuntimeDir "{{dir}}/run"
ErrorLog "{{dir}}/error.log"
LogLevel info auth_mellon:debug
User nobody
Group nogroup
LoadModule mpm_prefork_module {{modules}}/mod_mpm_prefork.so
LoadModule authz_core_module {{modules}}/mod_authz_core.so
LoadModule authn_core_module {{modules}}/mod_authn_core.so
LoadModule authz_user_module {{modules}}/mod_authz_user.so
LoadModule auth_mellon_module {{modules}}/mod_auth_mellon.so
LoadModule cgi_module {{modules}}/mod_cgi.so
StartServers 1
MinSpareServers 1
MaxSpareServers 2
DocumentRoot "{{dir}}/htdocs"
<Directory "{{dir}}/htdocs">
  Require all granted
</Directory>
<Location />
  MellonEnable info
  MellonEndpointPath /mellon
  MellonSPPrivateKeyFile "{{dir}}/sp.key"
  MellonSPCertFile "{{dir}}/sp.cert"
  MellonSPMetadataFile "{{dir}}/sp.xml"
  MellonIdPMetadataFile "{{dir}}/idp.xml"
  MellonSecureCookie On
  MellonCookieSameSite lax
</Location>
<Directory "{{dir}}/htdocs/protected">
  Options +ExecCGI
  SetHandler cgi-script
</Directory>
<Location /protected/>
  AuthType Mellon
  MellonEnable auth
  Require valid-user
</Location>
`

const envCGI = `#!/bin/sh
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
printf '<!doctype html><html lang="en"><head><title>Protected</title></head><body><h1>Protected by mod_auth_mellon</h1><pre id="env">\n'
env | grep '^MELLON_' | sort | sed 's/&/\&amp;/g; s/</\&lt;/g'
printf '</pre></body></html>\n'
`

// TestSAMLMellon: Apache httpd with Debian's mod_auth_mellon protects a
// page; mellon trusts the broker's metadata and the broker mellon's; a
// headless Chromium opens the page, logs in at the broker and sees the
// released attributes as mellon's environment variables.
func TestSAMLMellon(t *testing.T) {
	httpd, modules, createMetadata := mellonPaths(t)
	ctx := browsertest.New(t)
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		// httpd's children run as nobody and read the mellon files.
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		_, port, _ := net.SplitHostPort(freePort(t))
		base := "http://localhost:" + port

		// mellon's own generator: SP key, certificate and metadata.
		cmd := exec.Command(createMetadata, mellonEntityID, base+"/mellon")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mellon_create_metadata: %v\n%s", err, out)
		}
		stem := "urn_trustbroker_test_mellon"
		for from, to := range map[string]string{stem + ".key": "sp.key", stem + ".cert": "sp.cert", stem + ".xml": "sp.xml"} {
			if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, to), 0o644); err != nil {
				t.Fatal(err)
			}
		}

		c := &clock{t: nowUTC()}
		b := harness.Start(t, strings.ReplaceAll(mellonYAML, "{{mellon_md}}", filepath.Join(dir, "sp.xml")), dsn,
			harness.Options{Now: c.now, Hostname: "localhost"})

		// mellon trusts the broker's metadata as published.
		resp, err := http.Get(b.URL + saml.PathMetadata)
		if err != nil {
			t.Fatal(err)
		}
		idpMD, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		files := map[string]string{
			"idp.xml":               string(idpMD),
			"httpd.conf":            strings.NewReplacer("{{dir}}", dir, "{{port}}", port, "{{modules}}", modules).Replace(httpdConf),
			"htdocs/protected/env":  envCGI,
			"htdocs/index.html":     "<!doctype html><title>open</title>",
			"run/.keep":             "",
			"htdocs/protected/.dir": "",
		}
		for name, body := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		startHTTPD(t, httpd, dir, port)

		tab := ctx
		var env string
		step, cancelStep := context.WithTimeout(tab, 40*time.Second)
		defer cancelStep()
		err = chromedp.Do(step,
			chromedp.Navigate(base+"/protected/env"),
			chromedp.WaitVisible(`button[value="eid-fake"]`),
			chromedp.Click(`button[value="eid-fake"]`),
			chromedp.WaitVisible(`#env`),
		)
		if err == nil {
			env, err = chromedp.Run(step, chromedp.Text(`#env`))
		}
		shot := browsertest.Screenshot(t, tab, "mellon_protected")
		if err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("login through mellon: %v\nerror.log:\n%s", err, tail(string(logs), 4000))
		}
		t.Logf("protected page: %s\n%s", shot, env)
		vars := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
			k, v, _ := strings.Cut(line, "=")
			vars[k] = v
		}
		if vars["MELLON_given_name"] != "Erika" || vars["MELLON_email"] != "erika@example.org" {
			t.Errorf("released attributes not seen by mellon: %v", vars)
		}
		if vars["MELLON_family_name"] != "" || vars["MELLON_birthdate"] != "" {
			t.Errorf("attributes that were not registered reached the SP: %v", vars)
		}
		// mellon asks for a transient NameID: a fresh value, never the
		// provider's subject.
		if id := vars["MELLON_NAME_ID"]; len(id) < 32 || strings.Contains(id, "restricted-id") {
			t.Errorf("NameID %q: want a transient identifier", id)
		}

		// Single logout from the broker's dashboard reaches mellon (a
		// signed LogoutRequest through the browser, mellon's
		// LogoutResponse back): the protected page asks for a login again.
		slo, cancelSLO := context.WithTimeout(tab, 40*time.Second)
		defer cancelSLO()
		if err := chromedp.Do(slo, chromedp.Navigate(b.URL+"/account?lang=de"),
			chromedp.WaitVisible(`form[action^="/account/logout"] button`)); err != nil {
			t.Fatalf("dashboard: %v", err)
		}
		t.Logf("dashboard: %s", browsertest.Screenshot(t, tab, "dashboard_de"))
		if err := chromedp.Do(slo, chromedp.Click(`form[action^="/account/logout"] button`)); err != nil {
			t.Fatal(err)
		}
		for {
			href, err := chromedp.Run(slo, chromedp.Evaluate[string](`location.href`))
			if err != nil {
				logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Fatalf("single logout did not come back to the broker: %v\nerror.log:\n%s", err, tail(string(logs), 4000))
			}
			// Home, in the language the dashboard was shown in.
			if href == b.URL+"/?lang=de" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := chromedp.Do(slo, chromedp.Navigate(base+"/protected/env"),
			chromedp.WaitVisible(`button[value="eid-fake"]`)); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("mellon session survived the single logout: %v\nerror.log:\n%s", err, tail(string(logs), 4000))
		}
	})
}

// startHTTPD runs httpd in the foreground as a child until the test ends.
func startHTTPD(t *testing.T, httpd, dir, port string) {
	t.Helper()
	cmd := exec.Command(httpd, "-f", filepath.Join(dir, "httpd.conf"), "-DFOREGROUND")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// prefork signals its whole process group on shutdown: its own group,
	// not the test's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		select {
		case err := <-exited:
			logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("httpd exited: %v\n%s", err, logs)
		case <-ctx.Done():
			t.Fatal("httpd did not start listening")
		case <-time.After(50 * time.Millisecond):
		}
		if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			conn.Close()
			return
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return fmt.Sprint(s)
}
