// Command trustbroker is the identity and trust broker.
//
//	trustbroker [serve]            start the broker (the default)
//	trustbroker migrate            apply database migrations
//	trustbroker keys list|rotate   show or rotate signing keys
//	trustbroker config check FILE  validate a configuration file
//	trustbroker version            print the version
//
// Without --config (or TRUSTBROKER_CONFIG) the demo configuration is used:
// http://localhost:8080 on ./trustbroker.db.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/builtin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

// errConfig marks configuration errors (exit code 2).
type errConfig struct{ err error }

func (e errConfig) Error() string { return e.err.Error() }
func (e errConfig) Unwrap() error { return e.err }

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// env bundles what a command reads from its surroundings.
type env struct {
	getenv   func(string) string
	stdout   io.Writer
	stderr   io.Writer
	registry providers.Registry
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr, registry: builtin.Registry()}
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = e.serve(ctx, rest)
	case "migrate":
		err = e.migrate(ctx, rest)
	case "keys":
		err = e.keys(ctx, rest)
	case "policy":
		err = e.policyCmd(ctx, rest)
	case "config":
		err = e.configCmd(rest)
	case "webauthn":
		err = e.webauthnCmd(rest)
	case "testpki":
		err = e.testpkiCmd(rest)
	case "version":
		fmt.Fprintln(stdout, "trustbroker", versionString())
	case "help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "trustbroker: unknown command %q\n", cmd)
		usage(stderr)
		return exitConfig
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(errConfig)):
		fmt.Fprintln(stderr, "trustbroker: configuration is invalid:")
		fmt.Fprintln(stderr, indent(err.Error()))
		return exitConfig
	default:
		fmt.Fprintln(stderr, "trustbroker:", err)
		return exitError
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: trustbroker [command] [flags]

Commands:
  serve                start the broker (default)
  migrate              apply database migrations and exit
  keys list            list signing keys
  keys rotate          rotate signing keys (the next key becomes active)
  config check FILE    validate a configuration file
  testpki              issue a TEST-ONLY card PKI and a PKCS#12 card for the demo
  webauthn mds-check FILE  check a FIDO metadata (MDS3) BLOB before installing it
  version              print the version

Run "trustbroker COMMAND --help" for the flags of a command.
Without --config the demo configuration is used (http://localhost:8080).
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return "dev-" + rev[:min(12, len(rev))] + dirty
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}

// flags is the flag set every config-reading command shares.
type flags struct {
	fs        *flag.FlagSet
	config    *string
	overrides func() config.Overrides
}

func (e env) newFlags(name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{fs: fs}
	f.config = fs.String("config", "", "YAML configuration file (env TRUSTBROKER_CONFIG); without it the demo configuration is used")
	f.overrides = config.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: trustbroker %s\n\nFlags (over TRUSTBROKER_* environment variables, over the file):\n", synopsis)
		fs.PrintDefaults()
	}
	return f
}

// load parses the flags and builds the effective configuration.
func (e env) load(f *flags, args []string) (*config.Config, error) {
	if err := f.fs.Parse(args); err != nil {
		return nil, err
	}
	path := *f.config
	if path == "" {
		path = e.getenv("TRUSTBROKER_CONFIG")
	}
	cfg, err := config.Load(path, e.getenv, f.overrides())
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return nil, errConfig{err}
		}
		return nil, err
	}
	return cfg, nil
}

func (e env) logger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(e.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(e.stderr, opts))
}

func (e env) serve(ctx context.Context, args []string) error {
	f := e.newFlags("serve", "[serve] [flags]")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	logger := e.logger(cfg)
	if cfg.Demo {
		logger.Warn("DEMO MODE: demo configuration with test data; do not use in production",
			"url", cfg.Server.Issuer, "database", cfg.Database.DSN)
	}
	if cfg.Demo && *f.config == "" && e.getenv("TRUSTBROKER_CONFIG") == "" {
		if err := ensureDemoPKI(logger); err != nil {
			return err
		}
	}
	if server.TuneGC(e.getenv) {
		logger.Debug("garbage collector tuned for a server (GOGC=200, GOMEMLIMIT=256MiB); set either variable to override")
	}
	// server.New builds the providers before anything else it would
	// write and reports their configuration errors as config.Errors.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := server.New(ctx, cfg, server.Options{Registry: e.registry, Logger: logger})
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return errConfig{err}
		}
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	defer ln.Close() // when another listener fails before Run serves it
	logger.Info("trustbroker listening", "addr", ln.Addr().String(), "issuer", cfg.Server.Issuer,
		"version", versionString(), "database", srv.Store.Dialect())
	// The other listeners end with ctx; stop ends it whenever serve
	// returns, and serve waits for their graceful shutdown before the
	// store closes.
	var side sync.WaitGroup
	defer side.Wait()
	defer stop()
	// A side listener that fails while serving ends the broker with its
	// error, so that a supervisor sees a failure, not a clean exit.
	var sideMu sync.Mutex
	var sideErrs []error
	fail := func(what string, err error) {
		logger.Error(what, "err", err)
		sideMu.Lock()
		sideErrs = append(sideErrs, fmt.Errorf("%s: %w", what, err))
		sideMu.Unlock()
		stop()
	}
	if m := cfg.Server.Management; m.Enabled() {
		mln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			return fmt.Errorf("server.management.listen: %w (choose another address, or off)", err)
		}
		logger.Info("trustbroker management listening", "addr", mln.Addr().String())
		side.Go(func() {
			if err := srv.ServeManagement(ctx, mln); err != nil {
				fail("management listener", err)
			}
		})
	}
	if cl := cfg.Server.CardLogin; cl.Listen != "" {
		cln, err := net.Listen("tcp", cl.Listen)
		if err != nil {
			return err
		}
		logger.Info("card login listening", "addr", cln.Addr().String(), "url", cl.URL)
		side.Go(func() {
			if err := srv.ServeCardLogin(ctx, cln); err != nil {
				fail("card-login listener", err)
			}
		})
	}
	err = srv.Run(ctx, ln)
	stop()
	side.Wait()
	sideMu.Lock()
	defer sideMu.Unlock()
	return errors.Join(err, errors.Join(sideErrs...))
}

func (e env) migrate(ctx context.Context, args []string) error {
	f := e.newFlags("migrate", "migrate [flags]")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	cfg.Database.AutoMigrate = false
	st, err := server.OpenStore(ctx, cfg, e.logger(cfg), time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "applied %d migration(s); schema version %d (%s)\n", n, v, st.Dialect())
	return nil
}

func (e env) keys(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		fmt.Fprintln(e.stderr, "Usage: trustbroker keys list|rotate [flags]")
		return errConfig{errors.New("keys: name list or rotate")}
	}
	sub := args[0]
	f := e.newFlags("keys "+sub, "keys "+sub+" [flags]")
	alg := ""
	if sub == "rotate" {
		f.fs.StringVar(&alg, "alg", "", "rotate only this algorithm (ES256 or RS256); default: every configured one")
	}
	cfg, err := e.load(f, args[1:])
	if err != nil {
		return err
	}
	logger := e.logger(cfg)
	mk, err := server.MasterKey(cfg, logger)
	if err != nil {
		return err
	}
	st, err := server.OpenStore(ctx, cfg, logger, time.Now)
	if err != nil {
		return err
	}
	defer st.Close()
	km := server.NewKeys(st, cfg, mk, time.Now, logger)
	if err := km.Ensure(ctx, cfg.Keys.Algorithms...); err != nil {
		return err
	}
	if sub == "rotate" {
		algs := cfg.Keys.Algorithms
		if alg != "" {
			algs = []string{alg}
		}
		for _, a := range algs {
			if err := km.Rotate(ctx, a); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "rotated %s; running servers pick the change up within %s\n", strings.Join(algs, ", "), cfg.Keys.ReloadInterval)
	}
	if err := km.Reload(ctx); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tVERIFY UNTIL")
	for _, k := range km.Keys() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State, ts(k.CreatedAt), ts(k.ActivatedAt), ts(k.RetiredAt), ts(k.VerifyUntil))
	}
	return tw.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (e env) configCmd(args []string) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(e.stderr, "Usage: trustbroker config check FILE")
		return errConfig{errors.New("config: name check and a file")}
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: trustbroker config check FILE\n\nValidates FILE with the TRUSTBROKER_* environment applied, as serve would.")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errConfig{errors.New("config check: name exactly one file")}
	}
	cfg, err := config.Load(fs.Arg(0), e.getenv, nil)
	if err != nil {
		return errConfig{err}
	}
	provs, err := server.BuildProviders(cfg, e.registry, providers.Deps{Now: time.Now, Logger: slog.New(slog.DiscardHandler), Issuer: cfg.Server.Issuer})
	if err != nil {
		return errConfig{err}
	}
	server.CloseProviders(provs)
	fmt.Fprintf(e.stdout, "%s: configuration is valid (%d providers, %d relying parties)\n", fs.Arg(0), len(cfg.Providers), len(cfg.RelyingParties))
	return nil
}
