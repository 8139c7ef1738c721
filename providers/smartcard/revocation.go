package smartcard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Refusal codes of the revocation check.
const (
	CodeRevoked               = "certificate_revoked"
	CodeRevocationUnavailable = "revocation_unavailable"
)

// RevocationConfig is the `revocation` block of a card provider:
//
//	revocation:
//	  mode: hard                 # hard (default): refuse when no answer; soft: allow and log
//	  ocsp_responder: http://ocsp.example/  # instead of the certificate's AIA
//	  ocsp_signers: [ocsp.pem]   # responder certificates trusted locally (optional)
//	  crl_files: [ca.crl]        # CRLs (DER or PEM) of the issuing CAs
//	  crl_urls: [http://ca.example/ca.crl]
//	  timeout: 5s                # per HTTP fetch
//
// OCSP comes first (the configured responder, else the validated
// certificate's AIA), CRLs are the fallback (configured files and URLs,
// then the validated certificate's distribution points).
type RevocationConfig struct {
	Mode          string        `yaml:"mode"`
	OCSPResponder string        `yaml:"ocsp_responder"`
	OCSPSigners   []string      `yaml:"ocsp_signers"`
	CRLFiles      []string      `yaml:"crl_files"`
	CRLURLs       []string      `yaml:"crl_urls"`
	Timeout       time.Duration `yaml:"timeout"`
}

// RevocationSettings is RevocationConfig validated and defaulted.
type RevocationSettings struct {
	// SoftFail allows a login when no revocation answer was obtained
	// (logged); a revoked certificate is refused in both modes.
	SoftFail      bool
	OCSPResponder string
	OCSPSigners   []*Cert
	CRLFiles      []string
	CRLURLs       []string
	Timeout       time.Duration
	// Skew is the clock skew allowed for thisUpdate/nextUpdate.
	Skew time.Duration
	// MaxAge bounds the age of an OCSP response without nextUpdate.
	MaxAge time.Duration
}

// Limits of the revocation fetches.
const (
	maxCRLSize        = 8 << 20
	defaultRevTimeout = 5 * time.Second
	defaultSkew       = 5 * time.Minute
	defaultMaxAge     = time.Hour
	// noNextUpdateTTL is how long an answer without nextUpdate is cached.
	noNextUpdateTTL = 5 * time.Minute
)

func (c RevocationConfig) settings(bad func(field, format string, args ...any)) *RevocationSettings {
	r := &RevocationSettings{OCSPResponder: c.OCSPResponder, CRLFiles: c.CRLFiles, CRLURLs: c.CRLURLs,
		Timeout: c.Timeout, Skew: defaultSkew, MaxAge: defaultMaxAge}
	switch c.Mode {
	case "", "hard":
	case "soft":
		r.SoftFail = true
	default:
		bad("revocation.mode", "%q: use hard or soft", c.Mode)
	}
	if c.OCSPResponder != "" && !fetchableURL(c.OCSPResponder) {
		bad("revocation.ocsp_responder", "%q: an http or https URL is required", c.OCSPResponder)
	}
	for i, u := range c.CRLURLs {
		if !fetchableURL(u) {
			bad(fmt.Sprintf("revocation.crl_urls[%d]", i), "%q: an http or https URL is required", u)
		}
	}
	for i, f := range c.CRLFiles {
		if _, err := os.Stat(f); err != nil {
			bad(fmt.Sprintf("revocation.crl_files[%d]", i), "%v", err)
		}
	}
	for i, f := range c.OCSPSigners {
		certs, err := LoadCertificates(f)
		if err != nil {
			bad(fmt.Sprintf("revocation.ocsp_signers[%d]", i), "%v", err)
		}
		r.OCSPSigners = append(r.OCSPSigners, certs...)
	}
	if r.Timeout == 0 {
		r.Timeout = defaultRevTimeout
	}
	if r.Timeout < 0 || r.Timeout > time.Minute {
		bad("revocation.timeout", "must be between 0 and 1m")
	}
	return r
}

func fetchableURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// RevocationStatus is the outcome of a check, for the evidence.
type RevocationStatus struct {
	// Status: "good", "unavailable" (soft-fail, no answer) or
	// "not_checked" (no revocation settings).
	Status string
	// Source: "ocsp", "crl" or "none".
	Source string
	// CheckedAt is when the answer was verified; ThisUpdate is the
	// answer's own time.
	CheckedAt  time.Time
	ThisUpdate time.Time
	Cached     bool
}

// revocationChecker runs the checks of one provider instance.
type revocationChecker struct {
	s      *RevocationSettings
	cache  store.RevocationCache // nil: no shared cache
	client *http.Client
	log    *slog.Logger
}

func newRevocationChecker(s *RevocationSettings, st store.Store, log *slog.Logger) *revocationChecker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &revocationChecker{s: s, log: log, client: &http.Client{
		Timeout: s.Timeout,
		// A redirect could lead anywhere; responders do not need them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, MaxResponseHeaderBytes: 16 << 10, DisableKeepAlives: true},
	}}
	if st != nil {
		c.cache = st.Revocations()
	}
	return c
}

// errNoAnswer marks failures to obtain a verified answer (soft-fail may
// allow them); a revoked certificate is never one.
type noAnswer struct{ errs []error }

func (n *noAnswer) Error() string {
	if len(n.errs) == 0 {
		return "no OCSP responder or CRL is configured or named by the certificate"
	}
	return joinErrs(n.errs).Error()
}

// joinErrs joins errors on one line, for logs.
func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Check establishes the revocation status of path[0], a certificate whose
// path to a trust anchor was validated (path[1] is its issuer): only then
// are URLs it names fetched.
func (c *revocationChecker) Check(ctx context.Context, path []*Cert, now time.Time) (*RevocationStatus, error) {
	leaf, issuer := path[0], path[1]
	na := &noAnswer{}
	// OCSP first.
	responders := leaf.OCSPServer
	if c.s.OCSPResponder != "" {
		responders = []string{c.s.OCSPResponder}
	}
	if len(responders) > 0 {
		st, err := c.checkOCSP(ctx, leaf, issuer, responders, now)
		if err == nil && st != nil {
			return st, nil
		}
		if isRevoked(err) {
			return nil, err
		}
		if err != nil {
			na.errs = append(na.errs, err)
		}
	}
	// CRL fallback.
	type src struct{ name, url, file string }
	var srcs []src
	for _, f := range c.s.CRLFiles {
		srcs = append(srcs, src{name: f, file: f})
	}
	for _, u := range c.s.CRLURLs {
		srcs = append(srcs, src{name: u, url: u})
	}
	for _, u := range leaf.CRLDistributionPoints {
		if !slices.Contains(c.s.CRLURLs, u) {
			srcs = append(srcs, src{name: u, url: u})
		}
	}
	for _, s := range srcs {
		st, err := c.checkCRL(ctx, leaf, issuer, s.url, s.file, now)
		if err == nil && st != nil {
			return st, nil
		}
		if isRevoked(err) {
			return nil, err
		}
		if err != nil {
			na.errs = append(na.errs, fmt.Errorf("crl %s: %w", s.name, err))
		}
	}
	if c.s.SoftFail {
		c.log.WarnContext(ctx, "smartcard: revocation status unavailable; login allowed (soft-fail)",
			"issuer", leaf.Issuer.String(), "serial", leaf.SerialNumber.Text(16), "error", na.Error())
		return &RevocationStatus{Status: "unavailable", Source: "none", CheckedAt: now}, nil
	}
	return nil, refuse(CodeRevocationUnavailable, "hard-fail: %v", na)
}

type revokedError struct{ err error }

func (r *revokedError) Error() string { return r.err.Error() }
func (r *revokedError) Unwrap() error { return r.err }

func isRevoked(err error) bool {
	var re *revokedError
	return errors.As(err, &re)
}

func revoked(source string, at time.Time, reason int) error {
	return &revokedError{refuse(CodeRevoked, "%s: revoked at %s (reason %d)", source, at.UTC().Format(time.RFC3339), reason)}
}

func cacheKey(kind string, parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil))
}

// checkOCSP asks the responders in turn; a cached response (verified
// again) saves the round trip. It returns a status for good, an error
// wrapping revokedError for revoked, and an error otherwise (unknown
// included).
func (c *revocationChecker) checkOCSP(ctx context.Context, leaf, issuer *Cert, responders []string, now time.Time) (*RevocationStatus, error) {
	key := cacheKey("ocsp", issuer.RawSubject, issuer.RawSubjectPublicKeyInfo, leaf.SerialNumber.Bytes())
	if c.cache != nil {
		if e, err := c.cache.Get(ctx, key); err == nil {
			if a, err := verifyOCSP(e.Data, leaf, issuer, nil, c.s.OCSPSigners, now, c.s.Skew, c.s.MaxAge); err == nil {
				return c.ocspStatus(a, now, true)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			c.log.WarnContext(ctx, "smartcard: revocation cache", "error", err)
		}
	}
	var errs []error
	for _, u := range responders {
		if !fetchableURL(u) {
			errs = append(errs, fmt.Errorf("ocsp %q: not an http URL", u))
			continue
		}
		req, err := newOCSPRequest(leaf, issuer)
		if err != nil {
			return nil, err
		}
		der, err := c.fetch(ctx, http.MethodPost, u, req.der, maxOCSPResponse)
		if err != nil {
			errs = append(errs, fmt.Errorf("ocsp %s: %w", u, err))
			continue
		}
		a, err := verifyOCSP(der, leaf, issuer, req, c.s.OCSPSigners, now, c.s.Skew, c.s.MaxAge)
		if err != nil {
			errs = append(errs, fmt.Errorf("ocsp %s: %w", u, err))
			continue
		}
		if c.cache != nil && a.resp.Status != ocsp.Unknown {
			exp := a.resp.NextUpdate
			if exp.IsZero() {
				exp = now.Add(noNextUpdateTTL)
			}
			if err := c.cache.Put(ctx, &store.RevocationEntry{Key: key, Data: der, FetchedAt: now, ExpiresAt: exp}); err != nil {
				c.log.WarnContext(ctx, "smartcard: revocation cache", "error", err)
			}
		}
		st, err := c.ocspStatus(a, now, false)
		if err != nil && !isRevoked(err) {
			errs = append(errs, fmt.Errorf("ocsp %s: %w", u, err))
			continue
		}
		return st, err
	}
	return nil, joinErrs(errs)
}

func (c *revocationChecker) ocspStatus(a *ocspAnswer, now time.Time, cached bool) (*RevocationStatus, error) {
	switch a.resp.Status {
	case ocsp.Good:
		return &RevocationStatus{Status: "good", Source: "ocsp", CheckedAt: now, ThisUpdate: a.resp.ThisUpdate, Cached: cached}, nil
	case ocsp.Revoked:
		return nil, revoked("ocsp", a.resp.RevokedAt, a.resp.RevocationReason)
	}
	return nil, errors.New("ocsp: status unknown")
}

// checkCRL reads the CRL from file or URL (cached), checks it is the
// issuer's, signed by it and fresh, and looks the serial up.
func (c *revocationChecker) checkCRL(ctx context.Context, leaf, issuer *Cert, u, file string, now time.Time) (*RevocationStatus, error) {
	var der []byte
	var err error
	key := cacheKey("crl", []byte(u))
	cached := false
	switch {
	case file != "":
		der, err = readLimited(file, maxCRLSize)
	case c.cache != nil:
		if e, cerr := c.cache.Get(ctx, key); cerr == nil {
			if _, verr := verifyCRL(e.Data, issuer, now, c.s.Skew); verr == nil {
				der, cached = e.Data, true
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if der == nil && u != "" {
		if !fetchableURL(u) {
			return nil, errors.New("not an http URL")
		}
		if der, err = c.fetch(ctx, http.MethodGet, u, nil, maxCRLSize); err != nil {
			return nil, err
		}
	}
	crl, err := verifyCRL(der, issuer, now, c.s.Skew)
	if err != nil {
		return nil, err
	}
	if u != "" && !cached && c.cache != nil {
		exp := crl.NextUpdate
		if exp.IsZero() {
			exp = now.Add(noNextUpdateTTL)
		}
		if len(der) <= maxCRLSize {
			if err := c.cache.Put(ctx, &store.RevocationEntry{Key: key, Data: der, FetchedAt: now, ExpiresAt: exp}); err != nil {
				c.log.WarnContext(ctx, "smartcard: revocation cache", "error", err)
			}
		}
	}
	for _, rc := range crl.RevokedCertificateEntries {
		if rc.SerialNumber != nil && rc.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return nil, revoked("crl", rc.RevocationTime, rc.ReasonCode)
		}
	}
	return &RevocationStatus{Status: "good", Source: "crl", CheckedAt: now, ThisUpdate: crl.ThisUpdate, Cached: cached}, nil
}

// verifyCRL parses a DER (or PEM) CRL and checks issuer, signature and
// freshness. CRLs with critical extensions (an issuing distribution point
// or a delta CRL indicator) are refused: their scope is not evaluated.
func verifyCRL(der []byte, issuer *Cert, now time.Time, skew time.Duration) (*x509.RevocationList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(der), []byte("-----BEGIN")) {
		der = pemBlock(der, "X509 CRL")
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return nil, errors.New("CRL of another issuer")
	}
	if len(crl.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(crl.AuthorityKeyId, issuer.SubjectKeyId) {
		return nil, errors.New("CRL authority key identifier does not match the issuer")
	}
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("the issuer may not sign CRLs")
	}
	for _, e := range crl.Extensions {
		if e.Critical {
			return nil, fmt.Errorf("CRL with unsupported critical extension %v", e.Id)
		}
	}
	if err := signedBy(issuer, crl.SignatureAlgorithm, crl.RawTBSRevocationList, crl.Signature); err != nil {
		return nil, fmt.Errorf("CRL signature: %w", err)
	}
	if crl.ThisUpdate.After(now.Add(skew)) {
		return nil, errors.New("CRL thisUpdate lies in the future")
	}
	if !crl.NextUpdate.IsZero() && now.Add(-skew).After(crl.NextUpdate) {
		return nil, fmt.Errorf("stale CRL (nextUpdate %s)", crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return crl, nil
}

// fetch sends one request with the instance's timeout and reads at most
// limit bytes of a 200 answer.
func (c *revocationChecker) fetch(ctx context.Context, method, u string, body []byte, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/ocsp-request")
		req.Header.Set("Accept", "application/ocsp-response")
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", res.StatusCode)
	}
	if res.ContentLength > limit {
		return nil, fmt.Errorf("answer of %d bytes exceeds %d", res.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("answer exceeds %d bytes", limit)
	}
	return data, nil
}

func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s exceeds %d bytes", name, limit)
	}
	return data, nil
}

func pemBlock(data []byte, typ string) []byte {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}
