package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trustbroker/trustbroker/broker/health"
)

// managementHandler serves what only operators should read, on the
// management listener (server.management): GET /metrics, and GET /readyz
// with the check names and ?verbose. /healthz is there too, so probes can
// use either listener. It runs outside broker/web's chain: the public
// request metrics would count every scrape, and the access log would get a
// line for every scrape and probe.
func managementHandler(reg *prometheus.Registry, ready *health.Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", ready)
	return mux
}

// healthz answers while the process runs.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// ServeManagement serves the management handler on ln (plain HTTP) until
// ctx ends, then shuts it down within server.shutdown_timeout.
func (s *Server) ServeManagement(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer(s.Management)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Config.Server.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("management shutdown: %w", err)
	}
	return nil
}
