package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/trustbroker/trustbroker/broker/clientcert"
	"github.com/trustbroker/trustbroker/broker/config"
)

func cardCertSource(c config.CardLogin) clientcert.Source {
	src := clientcert.Source{Header: c.Header}
	for _, p := range c.Proxies {
		n, err := config.ParseCIDROrIP(p)
		if err == nil { // validated with the configuration
			src.Proxies = append(src.Proxies, n)
		}
	}
	return src
}

func cardLoginURL(c config.CardLogin) string {
	if c.Listen == "" {
		return ""
	}
	return c.URL
}

// CardLoginTLS is the TLS configuration of the card-login listener: it
// requests a client certificate but does not verify it (the card
// provider validates the path to its own anchors; Go's verifier cannot
// check every card's curve). The handshake still proves possession of the
// certificate's key (CertificateVerify). Cards whose key crypto/tls cannot
// use at all (brainpoolP256r1) need the proxy path.
func CardLoginTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server.card_login: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ServeCardLogin serves the broker's handler on the card-login listener
// (server.card_login) until ctx ends. ln is a plain TCP listener; TLS is
// added here.
func (s *Server) ServeCardLogin(ctx context.Context, ln net.Listener) error {
	cl := s.Config.Server.CardLogin
	tc, err := CardLoginTLS(cl.CertFile, cl.KeyFile)
	if err != nil {
		return err
	}
	cfg := s.Config.Server
	hs := s.httpServer(s.Handler)
	hs.TLSConfig = tc
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, tc)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("card-login shutdown: %w", err)
	}
	return nil
}
