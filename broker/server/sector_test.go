package server

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/broker/config"
)

// TestNewRefusesBadSectorIdentifier: a sector_identifier_uri whose
// document does not list the client's redirect URIs stops the start with
// a configuration error naming the key path, before the database is
// opened.
func TestNewRefusesBadSectorIdentifier(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`["https://elsewhere.example/cb"]`))
	}))
	defer srv.Close()
	cfg, err := config.Parse([]byte(`
relying_parties:
  - id: shop
    name: {en: Shop}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://shop.example/cb]
      sector_identifier_uri: `+srv.URL+`/sector.json
      client_secret: 0123456789abcdef0123456789abcdef
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "tb.db")
	cfg.Database.DSN = "sqlite:" + db
	cfg.Keys.MasterKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	s, err := New(t.Context(), cfg, Options{})
	if err == nil {
		s.Close()
		t.Fatal("started")
	}
	var ce config.Errors
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "relying_parties[0].oidc.sector_identifier_uri: ") ||
		!strings.Contains(err.Error(), "does not list the redirect URIs https://shop.example/cb") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database was opened: %v", err)
	}
}
