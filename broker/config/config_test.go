package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodRP = `
relying_parties:
  - id: shop
    name: {de: Laden, en: Shop}
    protocol: oidc
    accepted_credentials: [eid, webauthn]
    oidc:
      redirect_uris: [https://shop.example/cb, http://localhost:3000/cb, "http://[::1]:9/cb"]
      sector_identifier_uri: https://shop.example/sector.json
      client_secret: 0123456789abcdef0123456789abcdef
`

func TestDemoConfigIsValid(t *testing.T) {
	c, err := Demo()
	if err != nil {
		t.Fatalf("demo configuration does not validate: %v", err)
	}
	if !c.Demo || c.Database.DSN != "sqlite:./trustbroker.db" || c.Server.Issuer != "http://localhost:8080" {
		t.Fatalf("unexpected demo values: %+v", c)
	}
}

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(goodRP), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rp := c.RelyingParties[0]
	if rp.MinLoA != "substantial" || rp.SubjectType != "pairwise" {
		t.Errorf("defaults not applied: %+v", rp)
	}
	if c.Server.ReadTimeout == 0 || c.Keys.RSABits != 3072 {
		t.Errorf("defaults lost under YAML: %+v", c.Server)
	}
}

// TestRefusals checks that each bad configuration is refused with a message
// naming the key path.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "serverr: {}\n", []string{`serverr: unknown key (did you mean "server"?) (line 1)`}},
		{"unknown nested key", "server:\n  listen: :1\n  tls:\n    cert: x\n", []string{"server.tls.cert: unknown key (line 4)"}},
		{"wrong type", "server:\n  read_timeout: [1]\n", []string{"server.read_timeout: expected a duration"}},
		{"bad duration", "session:\n  lifetime: 8\n", []string{`session.lifetime: "8" is not a duration`}},
		{"bad int", "keys:\n  rsa_bits: many\n", []string{`keys.rsa_bits: expected a whole number, got "many"`}},
		{"bad DSN scheme", "database:\n  dsn: mysql://x/y\n", []string{`database.dsn: unsupported scheme "mysql"`}},
		{"DSN without database", "database:\n  dsn: postgres://host\n", []string{"database.dsn: a PostgreSQL URL needs a host and a database name"}},
		{"http redirect", strings.Replace(goodRP, "https://shop.example/cb", "http://shop.example/cb", 1),
			[]string{`relying_parties[0].oidc.redirect_uris[0]: "http://shop.example/cb" must use https (http only for localhost)`}},
		{"fragment", strings.Replace(goodRP, "https://shop.example/cb", "https://shop.example/cb#x", 1),
			[]string{"relying_parties[0].oidc.redirect_uris[0]:", "has a fragment"}},
		{"short secret", strings.Replace(goodRP, "0123456789abcdef0123456789abcdef", "short", 1),
			[]string{"relying_parties[0].oidc.client_secret: shorter than 32 characters"}},
		{"unknown credential", strings.Replace(goodRP, "[eid, webauthn]", "[eid, password]", 1),
			[]string{`relying_parties[0].accepted_credentials[1]: "password"`}},
		{"self-registration above low", strings.Replace(goodRP, "    oidc:\n", "    self_registration: true\n    oidc:\n", 1),
			[]string{"relying_parties[0].self_registration: gives level low: needs min_loa: low"}},
		{"self-registration without webauthn", strings.Replace(goodRP, "[eid, webauthn]\n", "[eid]\n    min_loa: low\n    self_registration: true\n", 1),
			[]string{"relying_parties[0].self_registration: needs webauthn in accepted_credentials"}},
		{"bad issuer", "server:\n  issuer: http://broker.example/\n", []string{"server.issuer:"}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", []string{"log.level: key given twice"}},
		{"bad zone", "policy:\n  time_zone: Mars/Olympus\n", []string{"policy.time_zone:"}},
		{"bad cidr", "policy:\n  networks:\n    - name: lan\n      cidrs: [10.0.0.0/33]\n", []string{"policy.networks[0].cidrs[0]:"}},
		{"not yaml", "server: [\n", []string{"t.yaml: not valid YAML"}},
		{"two documents", "log: {}\n---\nlog: {}\n", []string{"more than one YAML document"}},
		{"string given a bool", "server:\n  listen: true\n", []string{"server.listen: expected a string, got the boolean true"}},
		{"management not host:port", "server:\n  management:\n    listen: localhost\n", []string{`server.management.listen: "localhost" is not host:port (or off for no management listener)`}},
		{"management port not a number", "server:\n  management:\n    listen: localhost:metrics\n", []string{`server.management.listen: "localhost:metrics" is not host:port`}},
		{"management port too large", "server:\n  management:\n    listen: localhost:65536\n", []string{`server.management.listen: "localhost:65536" is not host:port`}},
		{"management empty", "server:\n  management:\n    listen: ''\n", []string{`server.management.listen: "" is not host:port (or off for no management listener)`}},
		{"management off misspelt", "server:\n  management:\n    listen: \"false\"\n", []string{`server.management.listen: "false" is not host:port`}},
		{"management on the public listener", "server:\n  listen: 127.0.0.1:8080\n  management:\n    listen: 127.0.0.1:8080\n",
			[]string{`server.management.listen: "127.0.0.1:8080": server.listen takes that port already`}},
		{"management beside a wildcard public listener", "server:\n  listen: :8080\n  management:\n    listen: localhost:8080\n",
			[]string{`server.management.listen: "localhost:8080": server.listen takes that port already`}},
		{"management unknown key", "server:\n  management:\n    port: 9464\n", []string{"server.management.port: unknown key (line 3)"}},
		{"several at once", "log:\n  format: xml\n  level: loud\ndatabase:\n  dsn: ''\n",
			[]string{"log.format:", "log.level:", "database.dsn: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "t.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is not config.Errors: %T %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestManagementListen: the management listener is on loopback unless
// configured; any host:port (port 0 for tests) or off is accepted, also
// from the environment and the flag.
func TestManagementListen(t *testing.T) {
	c, err := Parse(nil, "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Server.Management; m.Listen != "localhost:9464" || !m.Enabled() {
		t.Errorf("default %+v, want localhost:9464", m)
	}
	d, err := Demo()
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(d.Server.Management.Listen); !IsLoopbackHost(host) {
		t.Errorf("the demo serves metrics beyond this host: %q", d.Server.Management.Listen)
	}
	for _, l := range []string{":9464", "0.0.0.0:9464", "[::1]:9464", "127.0.0.1:0", "mgmt.internal:9100", "off"} {
		c, err := Parse([]byte("server:\n  management:\n    listen: \""+l+"\"\n"), "t.yaml")
		if err != nil {
			t.Errorf("%q refused: %v", l, err)
			continue
		}
		if c.Server.Management.Listen != l || c.Server.Management.Enabled() != (l != "off") {
			t.Errorf("%q: got %+v", l, c.Server.Management)
		}
	}
	// Unquoted: YAML 1.1 read off as false; the decoder must give the word.
	if c, err := Parse([]byte("server:\n  management: {listen: off}\n"), "t.yaml"); err != nil || c.Server.Management.Enabled() {
		t.Errorf("listen: off (unquoted): %v", err)
	}
	env := map[string]string{"TRUSTBROKER_MANAGEMENT_LISTEN": "off"}
	c, err = Load("", func(k string) string { return env[k] }, nil)
	if err != nil || c.Server.Management.Enabled() {
		t.Errorf("TRUSTBROKER_MANAGEMENT_LISTEN=off: %+v, %v", c.Server.Management, err)
	}
	c, err = Load("", func(k string) string { return env[k] }, Overrides{"management-listen": "127.0.0.1:9999"})
	if err != nil || c.Server.Management.Listen != "127.0.0.1:9999" {
		t.Errorf("--management-listen over the environment: %+v, %v", c.Server.Management, err)
	}
	if _, err := Load("", func(k string) string { return map[string]string{"TRUSTBROKER_MANAGEMENT_LISTEN": "9464"}[k] }, nil); err == nil ||
		!strings.Contains(err.Error(), `server.management.listen: "9464" is not host:port`) {
		t.Errorf("a bare port from the environment: %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(path, []byte("server:\n  listen: 127.0.0.1:1000\n  issuer: https://file.example\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TRUSTBROKER_LISTEN":     "127.0.0.1:2000",
		"TRUSTBROKER_LOG_LEVEL":  "error",
		"TRUSTBROKER_MASTER_KEY": " secret ",
	}
	c, err := Load(path, func(k string) string { return env[k] }, Overrides{"listen": "127.0.0.1:3000"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:3000" {
		t.Errorf("flag did not win: %s", c.Server.Listen)
	}
	if c.Log.Level != "error" {
		t.Errorf("env did not win over file: %s", c.Log.Level)
	}
	if c.Server.Issuer != "https://file.example" {
		t.Errorf("file value lost: %s", c.Server.Issuer)
	}
	if c.Keys.MasterKey != "secret" {
		t.Errorf("master key from env not taken")
	}
	_, err = Load(path, func(k string) string {
		if k == "TRUSTBROKER_AUTO_MIGRATE" {
			return "perhaps"
		}
		return ""
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "TRUSTBROKER_AUTO_MIGRATE") {
		t.Errorf("bad env value not named: %v", err)
	}
}

func TestCheckRedirectURI(t *testing.T) {
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"https://rp.example/cb", true},
		{"http://localhost:8080/cb", true},
		{"http://127.0.0.1/cb", true},
		{"http://[::1]:1/cb", true},
		{"http://localhost.evil.example/cb", false},
		{"http://127.0.0.1.nip.io/cb", false},
		{"https://user@rp.example/cb", false},
		{"/relative", false},
		{"javascript:alert(1)", false},
		{"ftp://rp.example/", false},
		{"https://rp.example/cb#frag", false},
	} {
		if err := CheckRedirectURI(tc.uri); (err == nil) != tc.ok {
			t.Errorf("CheckRedirectURI(%q) = %v, want ok=%v", tc.uri, err, tc.ok)
		}
	}
}

// FuzzParse: no input may panic, and an accepted configuration validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodRP))
	f.Add(demoYAML)
	f.Add([]byte("server: {listen: ':1'}\nproviders:\n  - id: a\n    type: x\n    name: {en: A}\n    config: {k: [1, 2]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted config fails validation: %v", err)
			}
		}
	})
}
