package oidc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
)

// Sector identifier URIs (OIDC Core §8.1, Dynamic Client Registration
// §2): the document at a client's sector_identifier_uri is a JSON array of
// redirect URIs; every redirect URI registered for the client must be in
// it. The broker checks this once at start and refuses to start
// otherwise; the sector itself (the URI's host) is computed from the
// configuration alone (config.OIDC.SectorHost), so a document that later
// becomes unreachable changes no subject.

// maxSectorDocumentBytes bounds a fetched sector identifier document: a
// list of URLs, far below this.
const maxSectorDocumentBytes = 64 << 10

// sectorFetchTimeout bounds one fetch (connect, TLS, headers and body).
const sectorFetchTimeout = 10 * time.Second

// CheckSectorIdentifiers fetches the sector_identifier_uri of every OIDC
// client that has one, in parallel, and checks that it lists all the
// client's redirect URIs. The errors name the configuration path
// (relying_parties[i].oidc.sector_identifier_uri); nil when all passed.
func CheckSectorIdentifiers(ctx context.Context, rps []config.RelyingParty) error {
	errs := make([]error, len(rps))
	var wg sync.WaitGroup
	for i := range rps {
		rp := &rps[i]
		if rp.OIDC == nil || rp.OIDC.SectorIdentifierURI == "" {
			continue
		}
		wg.Go(func() {
			errs[i] = CheckSectorIdentifier(ctx, rp.OIDC)
		})
	}
	wg.Wait()
	var es config.Errors
	for i, err := range errs {
		if err != nil {
			es = append(es, config.Error{Path: fmt.Sprintf("relying_parties[%d].oidc.sector_identifier_uri", i), Msg: err.Error()})
		}
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// CheckSectorIdentifier fetches o.SectorIdentifierURI (trusting only the
// CAs of o.SectorIdentifierCAFile when set) and checks that the document
// lists every one of o.RedirectURIs, compared exactly (OIDC Core §8.1).
func CheckSectorIdentifier(ctx context.Context, o *config.OIDC) error {
	client, err := sectorClient(o.SectorIdentifierCAFile)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	listed, err := FetchSectorDocument(ctx, client, o.SectorIdentifierURI)
	if err != nil {
		return err
	}
	var missing []string
	for _, u := range o.RedirectURIs {
		if !slices.Contains(listed, u) {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the document at %s does not list the redirect URIs %s (OIDC Core §8.1: it must list every one)",
			o.SectorIdentifierURI, strings.Join(missing, ", "))
	}
	return nil
}

// sectorClient is an HTTP client for one fetch: bounded in time, no
// redirects (they could lead off https), and, with a CA file, trusting
// only its certificates.
func sectorClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pool, err := loadCAFile(caFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       sectorFetchTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") },
	}, nil
}

// loadCAFile reads the PEM certificates of sector_identifier_ca_file.
func loadCAFile(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sector_identifier_ca_file: %w", err)
	}
	certs, err := keys.ParsePEMCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("sector_identifier_ca_file %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// FetchSectorDocument GETs a sector identifier document and parses it.
func FetchSectorDocument(ctx context.Context, client *http.Client, uri string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", uri, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSectorDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	if len(raw) > maxSectorDocumentBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", uri, maxSectorDocumentBytes)
	}
	uris, err := ParseSectorDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	return uris, nil
}

// ParseSectorDocument parses a sector identifier document: one JSON array
// of strings (OIDC Core §8.1), nothing before or after it, at least one
// element, no empty string.
func ParseSectorDocument(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not JSON: data after the array")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON array of redirect URIs but %s", jsonKind(v))
	}
	if len(arr) == 0 {
		return nil, errors.New("an empty array: it lists no redirect URI")
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("element %d is %s, not a string", i, jsonKind(e))
		}
		if s == "" {
			return nil, fmt.Errorf("element %d is empty", i)
		}
		out[i] = s
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
