// Package server composes the broker from a configuration: the store, the
// signing keys, the providers from the registry, the login flow, the
// adapters, and one HTTP handler with the middleware chain. cmd/trustbroker
// and the end-to-end tests build the broker through it.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trustbroker/trustbroker/adapters/demo"
	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/health"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/session"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/policy/casbin"
	"github.com/trustbroker/trustbroker/policy/location"
	"github.com/trustbroker/trustbroker/providers"
)

// Options are what a configuration does not say.
type Options struct {
	Registry providers.Registry
	Logger   *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
	// UIFiles replaces the embedded templates and assets (theming).
	UIFiles fs.FS
}

// Server is a composed broker.
type Server struct {
	Config *config.Config
	Store  *sqlstore.Store
	Keys   *keys.Manager
	Broker *broker.Broker
	// oidc is the OpenID Provider (Close waits for its logout deliveries).
	oidc    *oidc.Provider
	samlIdP *saml.IdP      // refreshes metadata_url SPs while running
	Policy  *casbin.Engine // nil with policy.engine passthrough
	locator *location.Locator
	ready   *health.Readiness // GET /readyz
	// Handler is the public listener's: the protocols, the pages, and
	// /healthz and /readyz for load balancers (readiness without check
	// names).
	Handler http.Handler
	// Management is the management listener's (ServeManagement): /metrics
	// and the full readiness report.
	Management http.Handler
	logger     *slog.Logger
	now        func() time.Time
	// providers are closed with the server (io.Closer ones).
	providers []broker.Provider
}

// MasterKey resolves the master key: TRUSTBROKER_MASTER_KEY, else
// keys.master_key_file; in demo mode a missing file is generated (and the
// log says so).
func MasterKey(cfg *config.Config, logger *slog.Logger) (keys.MasterKey, error) {
	if cfg.Keys.MasterKey != "" {
		mk, err := keys.ParseMasterKey(cfg.Keys.MasterKey)
		if err != nil {
			return keys.MasterKey{}, fmt.Errorf("TRUSTBROKER_MASTER_KEY: %w", err)
		}
		return mk, nil
	}
	path := cfg.Keys.MasterKeyFile
	if path == "" {
		return keys.MasterKey{}, errors.New("no master key: set TRUSTBROKER_MASTER_KEY or keys.master_key_file")
	}
	mk, err := keys.LoadMasterKeyFile(path)
	if err == nil || !cfg.Demo || !errors.Is(err, fs.ErrNotExist) {
		return mk, err
	}
	mk, err = keys.GenerateMasterKeyFile(path)
	if err != nil {
		return keys.MasterKey{}, err
	}
	logger.Warn("demo mode: generated a new master key file; keep it with the database", "file", path)
	return mk, nil
}

// OpenStore opens the configured database and, unless disabled, migrates it.
func OpenStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, now func() time.Time) (*sqlstore.Store, error) {
	st, err := sqlstore.Open(ctx, cfg.Database.DSN, sqlstore.Options{Now: now, Logger: logger, MaxOpenConns: cfg.Database.MaxOpenConns})
	if err != nil {
		return nil, err
	}
	if cfg.Database.AutoMigrate {
		if _, err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// NewKeys builds the key manager over the store.
func NewKeys(st store.Store, cfg *config.Config, mk keys.MasterKey, now func() time.Time, logger *slog.Logger) *keys.Manager {
	return keys.NewManager(st.Keys(), mk, keys.Options{
		Now: now, RSABits: cfg.Keys.RSABits, MaxTokenLifetime: cfg.Keys.MaxTokenLifetime,
		InTx:    keys.StoreTx(st),
		OnError: func(err error) { logger.Error("reload signing keys", "err", err) },
	})
}

// New composes the broker. The caller closes it.
func New(ctx context.Context, cfg *config.Config, o Options) (s *Server, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	mk, err := MasterKey(cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	// OIDC clients with a sector_identifier_uri: the documents there must
	// list their redirect URIs (OIDC Core §8.1); a configuration error.
	if err := oidc.CheckSectorIdentifiers(ctx, cfg.RelyingParties); err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg, o.Logger, o.Now)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	// Providers first: a bad provider block is a configuration error,
	// reported before keys are generated.
	provs, err := BuildProviders(cfg, o.Registry, providers.Deps{
		Now: o.Now, Logger: o.Logger, Issuer: cfg.Server.Issuer, HTTPClient: &http.Client{Timeout: 15 * time.Second},
		Store: st,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			CloseProviders(provs)
		}
	}()
	km := NewKeys(st, cfg, mk, o.Now, o.Logger)
	if err := km.Ensure(ctx, cfg.Keys.Algorithms...); err != nil {
		return nil, err
	}
	if err := km.Reload(ctx); err != nil {
		return nil, err
	}
	if err := syncRelyingParties(ctx, st, cfg, o.Now()); err != nil {
		return nil, err
	}
	csrfKey, err := mk.Derive("csrf")
	if err != nil {
		return nil, err
	}
	pairwiseKey, err := mk.Derive("pairwise-subject")
	if err != nil {
		return nil, err
	}
	u, err := ui.New(o.UIFiles, cfg.Demo, o.Logger)
	if err != nil {
		return nil, err
	}
	tz, err := time.LoadLocation(cfg.Policy.TimeZone)
	if err != nil {
		return nil, err
	}
	pp, err := buildPolicy(ctx, cfg, st, o.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pp.locator.Close()
		}
	}()
	cookies := web.Cookies{Secure: cfg.Server.TLS.Enabled()}
	csrf := web.NewCSRF(csrfKey)
	rps := map[string]*config.RelyingParty{}
	for i := range cfg.RelyingParties {
		rps[cfg.RelyingParties[i].ID] = &cfg.RelyingParties[i]
	}
	cm, step := newConsent(cfg, st, rps, o)
	b, err := broker.New(broker.Options{
		Store: st, Providers: provs, RelyingParties: rps,
		Policy: pp.dp, Consent: step, Locator: pp.locator,
		Sessions: &session.Manager{
			Store: st, Cookies: cookies, CookieName: cfg.Session.CookieName,
			Lifetime: cfg.Session.Lifetime, IdleTimeout: cfg.Session.IdleTimeout, Now: o.Now, Rand: o.Rand,
		},
		UI: u, CSRF: csrf, Cookies: cookies, Issuer: cfg.Server.Issuer, LoginTimeout: cfg.Session.LoginTimeout,
		PairwiseKey: pairwiseKey, Networks: cfg.Policy.Networks, TimeZone: tz,
		Now: o.Now, Rand: o.Rand, Logger: o.Logger,
		ClientCert: cardCertSource(cfg.Server.CardLogin), CardLoginURL: cardLoginURL(cfg.Server.CardLogin),
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	b.Routes(mux)
	slo := &samlLogout{}
	op, err := newOpenIDProvider(cfg, b, st, km, u, csrf, mk, o, slo)
	if err != nil {
		return nil, err
	}
	b.RegisterAdapter(op)
	op.Routes(mux)
	cm.Revokers = append(cm.Revokers, op)
	idp, err := newSAMLIdP(cfg, b, st, km, u, mk, o, op.BackchannelLogout)
	if err != nil {
		return nil, err
	}
	slo.idp = idp
	b.RegisterAdapter(idp)
	idp.Routes(mux)
	gt, err := newGate(cfg, b, st, u, pp, step, opTokens{op}, o)
	if err != nil {
		return nil, err
	}
	registerGate(gt, b, mux)
	host := accountHost{b: b, st: st, ui: u, csrf: csrf, now: o.Now, log: o.Logger}
	mountAccountPages(mux, provs, host)
	mountProviderEndpoints(mux, provs, endpointHost{host})
	mountDashboard(mux, provs, cm, host, tz, cfg, km, accountDeletionLogout(idp, op.FrontchannelReturn))
	mountSAMLLogout(mux, idp, host, op.FrontchannelReturn)
	if rp, ok := rps["demo"]; cfg.Demo && ok && rp.OIDC != nil {
		demoKey, err := mk.Derive("demo-rp")
		if err != nil {
			return nil, err
		}
		demo.New(demo.Options{
			Issuer: cfg.Server.Issuer, ClientID: rp.ID, ClientSecret: rp.OIDC.ClientSecret,
			UI: u, CSRF: csrf, Cookies: cookies, CookieKey: demoKey, Rand: o.Rand, Now: o.Now,
		}).Routes(mux)
	}
	s = &Server{Config: cfg, Store: st, Keys: km, Broker: b, Policy: pp.engine, locator: pp.locator, oidc: op, logger: o.Logger, now: o.Now, providers: provs}
	s.samlIdP = idp
	s.ready = newReadiness(st, idp, provs, o.Logger)
	s.routes(mux, u)
	var trusted []*net.IPNet
	for _, p := range cfg.Server.TrustedProxies {
		n, _ := config.ParseCIDROrIP(p)
		trusted = append(trusted, n)
	}
	// The public listener's requests are measured here, but the metrics
	// are served on the management listener only.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(saml.Collectors()...)
	s.Management = managementHandler(reg, s.ready)
	protect := http.NewCrossOriginProtection()
	for _, pattern := range oidc.CrossOriginBypass() {
		protect.AddInsecureBypassPattern(pattern)
	}
	for _, pattern := range saml.CrossOriginBypass() {
		protect.AddInsecureBypassPattern(pattern)
	}
	s.Handler = web.Wrap(protect.Handler(mux), web.Options{
		Logger: o.Logger, TLS: cfg.Server.TLS.Enabled(), TrustedProxies: trusted, Metrics: web.NewMetrics(reg),
	})
	return s, nil
}

func (s *Server) routes(mux *http.ServeMux, u *ui.UI) {
	mux.HandleFunc("GET /healthz", healthz)
	// Anyone can reach this listener: "ok" or "failed" only. The names
	// and states of the checks (which relying parties and providers the
	// broker serves) are on the management listener.
	mux.Handle("GET /readyz", s.ready.Terse())
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		etag := `"` + s.Keys.JWKSETag() + `"`
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(s.Keys.JWKS())
	})
	mux.Handle("GET /assets/", u.Assets())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		u.Render(w, r, http.StatusOK, "home", ui.Lang(r), nil)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.Render(w, r, http.StatusNotFound, "error", ui.Lang(r), struct{ Message, RequestID string }{
			u.Text(ui.Lang(r), "error.not_found"), web.RequestID(r.Context())})
	})
}

// BuildProviders builds every configured provider through the registry,
// reporting unknown types and bad config blocks with their key paths.
func BuildProviders(cfg *config.Config, reg providers.Registry, deps providers.Deps) ([]broker.Provider, error) {
	var out []broker.Provider
	var es config.Errors
	for i, pc := range cfg.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		f, ok := reg[pc.Type]
		if !ok {
			es = append(es, config.Error{Path: path + ".type", Msg: fmt.Sprintf("unknown provider type %q", pc.Type)})
			continue
		}
		node := pc.Config
		p, err := f(pc.ID, &node, path+".config", deps)
		if err != nil {
			var ce config.Errors
			if errors.As(err, &ce) {
				es = append(es, ce...)
			} else {
				es = append(es, config.Error{Path: path, Msg: err.Error()})
			}
			continue
		}
		if p.ID() != pc.ID || !providers.KnownKind(p.Kind()) {
			es = append(es, config.Error{Path: path, Msg: "provider factory returned a wrong id or kind"})
			continue
		}
		out = append(out, broker.Provider{Provider: p, Name: pc.Name})
	}
	if len(es) > 0 {
		return nil, es
	}
	return out, nil
}

// syncRelyingParties records the configured registrations in the store
// (source "config"), so audit and later the admin API see them.
func syncRelyingParties(ctx context.Context, st store.Store, cfg *config.Config, now time.Time) error {
	return st.InTx(ctx, func(tx store.Store) error {
		for i := range cfg.RelyingParties {
			rp := &cfg.RelyingParties[i]
			if err := tx.RelyingParties().Put(ctx, registration(rp, now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Run serves until ctx ends, then shuts down gracefully. Background work
// (store GC, key reload) runs alongside.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	cfg := s.Config.Server
	hs := s.httpServer(s.Handler)
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go s.Keys.Watch(bg, s.Config.Keys.ReloadInterval)
	go s.gcLoop(bg)
	go s.samlIdP.Watch(bg)
	if s.Policy != nil {
		go s.Policy.Watch(bg, s.Config.Policy.ReloadInterval, s.Store.ListenPolicy(bg))
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS.Enabled() {
			errc <- hs.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "grace", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// httpServer is an http.Server for h with the configured timeouts; every
// listener of the broker uses the same.
func (s *Server) httpServer(h http.Handler) *http.Server {
	cfg := s.Config.Server
	return &http.Server{
		Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

func (s *Server) gcLoop(ctx context.Context) {
	t := time.NewTicker(s.Config.Database.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := s.Store.GC(ctx, s.now())
		if err != nil {
			s.logger.Error("store gc", "err", err)
			continue
		}
		if n, err := s.Keys.Prune(ctx); err != nil {
			s.logger.Error("prune signing keys", "err", err)
		} else if n > 0 || res.Total() > 0 {
			s.logger.Info("store gc", "removed", res, "keys_pruned", n)
		}
	}
}

// Close releases the store.
func (s *Server) Close() error {
	s.oidc.Close()
	s.locator.Close()
	CloseProviders(s.providers)
	return s.Store.Close()
}

// Provider returns the configured provider id, or nil (for tests that
// reach a provider's simulator).
func (s *Server) Provider(id string) providers.Provider {
	for _, p := range s.providers {
		if p.ID() == id {
			return p.Provider
		}
	}
	return nil
}

// CloseProviders stops what providers run themselves (the eID simulator's
// listeners).
func CloseProviders(provs []broker.Provider) {
	for _, p := range provs {
		if c, ok := p.Provider.(io.Closer); ok {
			_ = c.Close()
		}
	}
}
