package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// Setting is one value that a flag and a TRUSTBROKER_* environment
// variable can set over the YAML file.
type Setting struct {
	Flag  string // without dashes
	Env   string
	Usage string
	set   func(c *Config, v string) error
}

func setString(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func setBool(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst(c) = b
		return nil
	}
}

// Settings are the values settable from flags and the environment. The
// master key itself is environment-only (TRUSTBROKER_MASTER_KEY), so it never
// shows in a process list.
var Settings = []Setting{
	{"listen", "TRUSTBROKER_LISTEN", "address to listen on (host:port)", setString(func(c *Config) *string { return &c.Server.Listen })},
	{"management-listen", "TRUSTBROKER_MANAGEMENT_LISTEN", "management listener for /metrics and /readyz?verbose (host:port, or off)", setString(func(c *Config) *string { return &c.Server.Management.Listen })},
	{"issuer", "TRUSTBROKER_ISSUER", "public base URL of the broker", setString(func(c *Config) *string { return &c.Server.Issuer })},
	{"database-dsn", "TRUSTBROKER_DATABASE_DSN", "database: sqlite:PATH or postgres://...", setString(func(c *Config) *string { return &c.Database.DSN })},
	{"auto-migrate", "TRUSTBROKER_AUTO_MIGRATE", "apply database migrations at start", setBool(func(c *Config) *bool { return &c.Database.AutoMigrate })},
	{"log-format", "TRUSTBROKER_LOG_FORMAT", "log format: text or json", setString(func(c *Config) *string { return &c.Log.Format })},
	{"log-level", "TRUSTBROKER_LOG_LEVEL", "log level: debug, info, warn, error", setString(func(c *Config) *string { return &c.Log.Level })},
	{"master-key-file", "TRUSTBROKER_MASTER_KEY_FILE", "file holding the key that encrypts private keys at rest", setString(func(c *Config) *string { return &c.Keys.MasterKeyFile })},
	{"tls-cert-file", "TRUSTBROKER_TLS_CERT_FILE", "TLS certificate (PEM) to serve HTTPS", setString(func(c *Config) *string { return &c.Server.TLS.CertFile })},
	{"tls-key-file", "TRUSTBROKER_TLS_KEY_FILE", "TLS private key (PEM)", setString(func(c *Config) *string { return &c.Server.TLS.KeyFile })},
}

// Overrides holds the flag values a command line set explicitly.
type Overrides map[string]string

// RegisterFlags adds every Setting as a flag to fs; after fs.Parse, the
// returned function reports the flags the user actually gave.
func RegisterFlags(fs *flag.FlagSet) func() Overrides {
	vals := map[string]*string{}
	for _, s := range Settings {
		vals[s.Flag] = fs.String(s.Flag, "", s.Usage+" (env "+s.Env+")")
	}
	return func() Overrides {
		o := Overrides{}
		fs.Visit(func(f *flag.Flag) {
			if v, ok := vals[f.Name]; ok {
				o[f.Name] = *v
			}
		})
		return o
	}
}

// Overlay applies the environment, then the flags, over c. Bad values are
// reported with the variable or flag that carried them.
func (c *Config) Overlay(getenv func(string) string, flags Overrides) error {
	var es Errors
	for _, s := range Settings {
		if v := getenv(s.Env); v != "" {
			if err := s.set(c, v); err != nil {
				es.add(s.Env, 0, "%v", err)
			}
		}
	}
	if v := strings.TrimSpace(getenv("TRUSTBROKER_MASTER_KEY")); v != "" {
		c.Keys.MasterKey = v
	}
	for _, s := range Settings {
		if v, ok := flags[s.Flag]; ok {
			if err := s.set(c, v); err != nil {
				es.add("--"+s.Flag, 0, "%v", err)
			}
		}
	}
	return es.err()
}

// Load builds the effective configuration: the YAML file at path (the demo
// configuration when path is empty), then the environment, then the flags,
// and validates the result.
func Load(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	var (
		c   *Config
		err error
	)
	if path == "" {
		c, err = decode(demoYAML, "demo.yaml")
	} else {
		c, err = LoadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Overlay(getenv, flags); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
