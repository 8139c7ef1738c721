package saml

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
)

// SP metadata from a URL (metadata_url): fetched, its enveloped signature
// checked against the configured certificate, and refreshed every
// metadata_refresh, sooner when the metadata's cacheDuration or validUntil
// ask. A failed refresh keeps the last good copy (until its validUntil:
// metadata past it is not used, saml-metadata-2.0-os §2.3.1) and is logged
// and counted in the metrics.

// maxMetadataBytes bounds a fetched metadata document.
const maxMetadataBytes = 1 << 20

// retryAfterFailure is the longest wait before a failed fetch is retried.
const retryAfterFailure = time.Minute

type remoteMetadata struct {
	url     string
	certs   []*x509.Certificate
	refresh time.Duration
	client  *http.Client

	mu         sync.Mutex
	validUntil time.Time // zero: none
	next       time.Time // when to fetch again
	lastOK     time.Time
	lastErr    error
	failures   int
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
	return &remoteMetadata{url: c.MetadataURL, certs: certs, refresh: refresh, client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") },
	}}, nil
}

// fetch gets, verifies and parses the metadata of sp.
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
		return nil, fmt.Errorf("GET %s: %s", r.url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxMetadataBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", r.url, maxMetadataBytes)
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
		r.next = now.Add(min(r.refresh, retryAfterFailure))
		if !r.validUntil.IsZero() && !r.validUntil.After(now) {
			sp.cur.Store(nil)
		}
		metadataFailures.WithLabelValues(sp.rpID).Inc()
		p.o.Logger.Warn("saml: SP metadata refresh failed; keeping the last good copy", "rp", sp.rpID, "url", r.url,
			"err", err, "have_metadata", sp.metadata() != nil, "last_success", r.lastOK)
		return
	}
	sp.adopt(md)
	r.lastErr, r.lastOK = nil, now
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
	URL       string
	Have      bool // metadata in use
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
		st := MetadataStatus{RPID: sp.rpID, URL: r.url, Have: sp.metadata() != nil, LastOK: r.lastOK, Failures: r.failures}
		if r.lastErr != nil {
			st.LastError = r.lastErr.Error()
		}
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
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
)

// Collectors are the IdP's metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{metadataLastSuccess, metadataFailures}
}
