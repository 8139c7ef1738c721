package config

import (
	"strings"
	"testing"
)

const sectorRP = `
relying_parties:
  - id: shop
    name: {de: Laden, en: Shop}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://shop.example/cb, https://Shop.Example:8443/other]
      client_secret: 0123456789abcdef0123456789abcdef
`

// TestSectorHost: the sector of an OIDC client is the host of
// sector_identifier_uri, else the one host of its redirect URIs (OIDC Core
// §8.1), in lower case and without the port.
func TestSectorHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    OIDC
		want string
		ok   bool
	}{
		{"one host, ports and case ignored", OIDC{RedirectURIs: []string{"https://Shop.example/a", "https://shop.example:8443/b"}}, "shop.example", true},
		{"sector_identifier_uri wins", OIDC{RedirectURIs: []string{"https://a.example/cb", "https://b.example/cb"}, SectorIdentifierURI: "https://Sector.example/s.json"}, "sector.example", true},
		{"several hosts", OIDC{RedirectURIs: []string{"https://a.example/cb", "https://b.example/cb"}}, "", false},
		{"loopback names differ", OIDC{RedirectURIs: []string{"http://localhost/cb", "http://127.0.0.1/cb"}}, "", false},
		{"IPv6 loopback", OIDC{RedirectURIs: []string{"http://[::1]:9/cb"}}, "::1", true},
		{"none", OIDC{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.o.SectorHost()
			if got != tc.want || ok != tc.ok {
				t.Errorf("SectorHost() = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSectorValidation(t *testing.T) {
	if _, err := Parse([]byte(sectorRP), "t.yaml"); err != nil {
		t.Fatalf("redirect URIs on one host: %v", err)
	}
	for _, tc := range []struct {
		name, old, new string
		want           []string // "" : valid
	}{
		{"several hosts", "https://Shop.Example:8443/other", "https://admin.example/cb",
			[]string{"relying_parties[0].oidc.redirect_uris: the redirect URIs span the hosts shop.example, admin.example, so they name no one sector for pairwise subjects (OIDC Core §8.1): set sector_identifier_uri, or subject_type: public"}},
		{"several hosts, public", "    oidc:\n      redirect_uris: [https://shop.example/cb, https://Shop.Example:8443/other]\n",
			"    subject_type: public\n    oidc:\n      redirect_uris: [https://shop.example/cb, https://admin.example/cb]\n", nil},
		{"several hosts, sector uri", "https://Shop.Example:8443/other]\n", "https://admin.example/cb]\n      sector_identifier_uri: https://shop.example/sector.json\n", nil},
		{"sector uri on http", "    oidc:\n", "    oidc:\n      sector_identifier_uri: http://shop.example/sector.json\n",
			[]string{`relying_parties[0].oidc.sector_identifier_uri: "http://shop.example/sector.json" must use https (http only for localhost)`}},
		{"sector uri on loopback http", "    oidc:\n", "    oidc:\n      sector_identifier_uri: http://127.0.0.1:8000/sector.json\n", nil},
		{"sector uri relative", "    oidc:\n", "    oidc:\n      sector_identifier_uri: /sector.json\n",
			[]string{`relying_parties[0].oidc.sector_identifier_uri: "/sector.json" is not an absolute URL`}},
		{"sector uri with fragment", "    oidc:\n", "    oidc:\n      sector_identifier_uri: https://shop.example/s#x\n",
			[]string{`relying_parties[0].oidc.sector_identifier_uri: "https://shop.example/s#x" has a fragment`}},
		{"sector uri ftp", "    oidc:\n", "    oidc:\n      sector_identifier_uri: ftp://shop.example/s\n",
			[]string{`relying_parties[0].oidc.sector_identifier_uri: "ftp://shop.example/s" must use https`}},
		{"CA file alone", "    oidc:\n", "    oidc:\n      sector_identifier_ca_file: ca.pem\n",
			[]string{"relying_parties[0].oidc.sector_identifier_ca_file: only with sector_identifier_uri"}},
		{"CA file with http", "    oidc:\n", "    oidc:\n      sector_identifier_uri: http://localhost/s\n      sector_identifier_ca_file: ca.pem\n",
			[]string{"relying_parties[0].oidc.sector_identifier_ca_file: only with an https sector_identifier_uri"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(sectorRP, tc.old, tc.new, 1)
			if tc.new != "" && y == sectorRP {
				t.Fatal("replacement did not apply")
			}
			_, err := Parse([]byte(y), "t.yaml")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks\n%s", err, w)
				}
			}
		})
	}
}
