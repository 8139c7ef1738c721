package saml

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/health"
	"github.com/trustbroker/trustbroker/broker/keys"
)

// SP metadata from a URL (metadata_url): fetched, its enveloped signature
// checked against the configured certificate, and refreshed every
// metadata_refresh, sooner when the metadata's cacheDuration or validUntil
// ask. A failed refresh keeps the last good copy (until its validUntil:
// metadata past it is not used, saml-metadata-2.0-os §2.3.1) and is logged
// and counted in the metrics. An SP without usable metadata (never loaded,
// or expired) cannot log in: the gauge trustbroker_saml_metadata_usable
// is 0 and /readyz?verbose shows it unavailable, but the broker stays
// ready, since every replica fetches the same metadata (ReadinessChecks).
// A failing refresh with a valid copy in use shows as degraded.

// maxMetadataBytes bounds a fetched metadata document.
const maxMetadataBytes = 1 << 20

// retryAfterFailure is the longest wait before a failed fetch is retried.
const retryAfterFailure = time.Minute

type remoteMetadata struct {
	url string
	// logURL is url for logs and errors: without a password
	// (url.URL.Redacted).
	logURL  string
	certs   []*x509.Certificate
	refresh time.Duration
	client  *http.Client

	mu         sync.Mutex
	validUntil time.Time // zero: none
	next       time.Time // when to fetch again
	lastOK     time.Time
	lastErr    error
	failures   int
	// failingSince is the first failure since the last success (zero
	// while the last fetch succeeded).
	failingSince time.Time
}

func newRemoteMetadata(c *config.SAML) (*remoteMetadata, error) {
	raw, err := os.ReadFile(c.MetadataCertFile)
	if err != nil {
		return nil, err
	}
	certs, err := keys.ParsePEMCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata_cert_file: %w", err)
	}
	refresh := c.MetadataRefresh
	if refresh <= 0 {
		refresh = time.Hour
	}
	return &remoteMetadata{url: c.MetadataURL, logURL: redactURL(c.MetadataURL), certs: certs, refresh: refresh, client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") },
	}}, nil
}

// redactURL is raw with the password of its userinfo replaced
// (url.URL.Redacted), for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// fetch gets, verifies and parses the metadata of sp. Its errors name
// the URL without a password (net/http's own errors strip it too).
func (r *remoteMetadata) fetch(ctx context.Context, entityID string) (*crewsaml.EntityDescriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", r.logURL, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxMetadataBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", r.logURL, maxMetadataBytes)
	}
	return verifyMetadata(raw, r.certs, entityID)
}

// verifyMetadata checks the signature of fetched metadata and parses what
// it covers: an EntityDescriptor for entityID with usable ACS locations.
func verifyMetadata(raw []byte, certs []*x509.Certificate, entityID string) (*crewsaml.EntityDescriptor, error) {
	if err := noDTD(raw); err != nil {
		return nil, err
	}
	signed, err := crewsaml.VerifyMetadataSignature(raw, certs)
	if err != nil {
		return nil, fmt.Errorf("metadata signature: %w", err)
	}
	md, err := ParseMetadata(signed)
	if err != nil {
		return nil, err
	}
	if md.EntityID != entityID {
		return nil, fmt.Errorf("metadata entity id %q is not entity_id %q", md.EntityID, entityID)
	}
	if err := checkACS(md); err != nil {
		return nil, err
	}
	return md, nil
}

// refresh fetches sp's metadata now; on success it is used at once, on
// failure the last good copy stays (while valid) and the failure is
// reported.
func (p *IdP) refresh(ctx context.Context, sp *serviceProvider) {
	r := sp.remote
	now := p.o.Now()
	md, err := r.fetch(ctx, sp.entityID)
	if err == nil && !md.ValidUntil.IsZero() && !md.ValidUntil.After(now) {
		err = fmt.Errorf("metadata expired at %s", md.ValidUntil.Format(time.RFC3339))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
		r.failures++
		if r.failingSince.IsZero() {
			r.failingSince = now
		}
		r.next = now.Add(min(r.refresh, retryAfterFailure))
		if !r.validUntil.IsZero() && !r.validUntil.After(now) {
			sp.cur.Store(nil)
		}
		metadataFailures.WithLabelValues(sp.rpID).Inc()
		metadataFailing.WithLabelValues(sp.rpID).Set(1)
		setUsable(sp.rpID, r.usable(sp, now))
		p.o.Logger.Warn("saml: SP metadata refresh failed; keeping the last good copy", "rp", sp.rpID, "url", r.logURL,
			"err", err, "have_metadata", sp.metadata() != nil, "last_success", r.lastOK)
		return
	}
	sp.adopt(md)
	r.lastErr, r.lastOK, r.failingSince = nil, now, time.Time{}
	wait := r.refresh
	if md.CacheDuration > 0 {
		wait = min(wait, md.CacheDuration)
	}
	r.validUntil = md.ValidUntil
	if !md.ValidUntil.IsZero() {
		wait = min(wait, md.ValidUntil.Sub(now))
	}
	r.next = now.Add(wait)
	metadataLastSuccess.WithLabelValues(sp.rpID).Set(float64(now.Unix()))
	metadataFailing.WithLabelValues(sp.rpID).Set(0)
	setUsable(sp.rpID, r.usable(sp, now))
	p.o.Logger.Info("saml: SP metadata refreshed", "rp", sp.rpID, "next", r.next)
}

// Watch refreshes the metadata_url SPs until ctx ends.
func (p *IdP) Watch(ctx context.Context) {
	var wg sync.WaitGroup
	for _, sp := range p.sps {
		if sp.remote == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				sp.remote.mu.Lock()
				wait := sp.remote.next.Sub(p.o.Now())
				sp.remote.mu.Unlock()
				t := time.NewTimer(max(wait, 50*time.Millisecond))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				p.refresh(ctx, sp)
			}
		}()
	}
	wg.Wait()
}

// MetadataStatus reports a metadata_url SP's last refresh.
type MetadataStatus struct {
	RPID      string
	URL       string // without a password (url.URL.Redacted)
	Have      bool   // metadata in use
	LastOK    time.Time
	LastError string
	Failures  int
}

// MetadataStatus lists the metadata_url SPs.
func (p *IdP) MetadataStatus() []MetadataStatus {
	var out []MetadataStatus
	for _, sp := range p.sps {
		if sp.remote == nil {
			continue
		}
		r := sp.remote
		r.mu.Lock()
		st := MetadataStatus{RPID: sp.rpID, URL: r.logURL, Have: sp.metadata() != nil, LastOK: r.lastOK, Failures: r.failures}
		if r.lastErr != nil {
			st.LastError = r.lastErr.Error()
		}
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// ReadinessChecks are the /readyz checks of the metadata_url SPs, one per
// relying party ("saml-metadata/{rp}"), see metadataReady. They are
// partial: an SP without usable metadata is shown as unavailable, but
// the broker stays ready. Every replica fetches the same metadata, so
// failing readiness for it would take all replicas out of the load
// balancer at once, for every relying party; trustbroker_saml_metadata_usable
// is what to alert on.
func (p *IdP) ReadinessChecks() []health.Check {
	var out []health.Check
	for _, sp := range p.sps {
		if sp.remote == nil {
			continue
		}
		out = append(out, health.Check{Name: "saml-metadata/" + sp.rpID, Partial: true, Run: func(context.Context) error {
			return p.metadataReady(sp)
		}})
	}
	slices.SortFunc(out, func(a, b health.Check) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// metadataReady fails (unavailable, the check is partial) while sp has no
// usable metadata: never fetched and verified, or the copy is past its
// validUntil (saml-metadata-2.0-os §2.3.1). While the last refresh failed
// and the copy in use is still valid (before its validUntil; without one
// it stays in use, as refresh keeps it) the SP works: degraded. The
// reasons carry times, never the URL. It sets the usable gauge too, so
// that it follows validUntil between refreshes.
func (p *IdP) metadataReady(sp *serviceProvider) error {
	now := p.o.Now()
	r := sp.remote
	r.mu.Lock()
	defer r.mu.Unlock()
	setUsable(sp.rpID, r.usable(sp, now))
	switch {
	case r.lastOK.IsZero():
		return health.Failed("metadata never loaded", r.lastErr)
	case !r.usable(sp, now):
		return health.Failed("metadata expired at "+r.validUntil.UTC().Format(time.RFC3339), r.lastErr)
	case r.lastErr != nil:
		return health.Degraded(fmt.Sprintf("refresh failing since %s; using the copy of %s",
			r.failingSince.UTC().Format(time.RFC3339), r.lastOK.UTC().Format(time.RFC3339)), r.lastErr)
	}
	return nil
}

// usable: sp has metadata it may use at now: fetched and verified, and
// before its validUntil (if any). r.mu is held.
func (r *remoteMetadata) usable(sp *serviceProvider, now time.Time) bool {
	return !r.lastOK.IsZero() && sp.metadata() != nil && (r.validUntil.IsZero() || r.validUntil.After(now))
}

func setUsable(rpID string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	metadataUsable.WithLabelValues(rpID).Set(v)
}

var (
	metadataLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trustbroker_saml_metadata_last_success_timestamp_seconds",
		Help: "When the metadata of a SAML SP (metadata_url) was last fetched and verified.",
	}, []string{"rp"})
	metadataFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trustbroker_saml_metadata_refresh_failures_total",
		Help: "Failed fetches or verifications of a SAML SP's metadata (metadata_url); the last good copy stays in use.",
	}, []string{"rp"})
	metadataFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trustbroker_saml_metadata_refresh_failing",
		Help: "1 while the last fetch or verification of a SAML SP's metadata (metadata_url) failed, 0 after a success; trustbroker_saml_metadata_usable tells whether a valid copy is still in use.",
	}, []string{"rp"})
	metadataUsable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trustbroker_saml_metadata_usable",
		Help: "1 while a SAML SP registered by metadata_url has usable metadata (verified, before its validUntil), 0 while it has none (never loaded or expired) and cannot log in; /readyz stays ready, alert on this.",
	}, []string{"rp"})
)

// Collectors are the IdP's metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{metadataLastSuccess, metadataFailures, metadataFailing, metadataUsable}
}
