package location

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/trustbroker/trustbroker/policy"
)

// writeGeoIP writes a small country database in the MaxMind DB format.
func writeGeoIP(t *testing.T, entries map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Test-Country", RecordSize: 24, IPVersion: 6, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, iso := range entries {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLocate(t *testing.T) {
	geo := writeGeoIP(t, map[string]string{"203.0.113.0/24": "de", "2001:db8:fe::/48": "FR"})
	l, err := New([]Zone{
		{Name: "office", Trust: policy.TrustTrusted, CIDRs: []string{"192.0.2.0/24", "2001:db8:1::/48"}},
		{Name: "wide", Trust: policy.TrustSemiTrusted, CIDRs: []string{"192.0.0.0/16"}},
		{Name: "single", Trust: policy.TrustUntrusted, CIDRs: []string{"198.51.100.7", "::ffff:198.51.100.8"}},
	}, []Site{{Name: "hq", CIDRs: []string{"192.0.2.0/25"}}}, geo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, tc := range []struct {
		ip, zone, trust, site, country string
		zones                          int
	}{
		{"192.0.2.1", "office", "trusted", "hq", "", 2},
		{"192.0.2.200", "office", "trusted", "", "", 2},
		{"192.0.9.1", "wide", "semi-trusted", "", "", 1},
		{"::ffff:192.0.2.1", "office", "trusted", "hq", "", 2},
		{"::ffff:c000:0201", "office", "trusted", "hq", "", 2},
		{"2001:db8:1::5", "office", "trusted", "", "", 1},
		{"2001:db8:1::5%eth0", "office", "trusted", "", "", 1},
		{"[2001:db8:1::5]:443", "office", "trusted", "", "", 1},
		{"192.0.2.1:8080", "office", "trusted", "hq", "", 2},
		{"198.51.100.7", "single", "untrusted", "", "", 1},
		{"198.51.100.8", "single", "untrusted", "", "", 1},
		{"198.51.100.9", "", "untrusted", "", "", 0},
		{"203.0.113.5", "", "untrusted", "", "DE", 0},
		{"::ffff:203.0.113.5", "", "untrusted", "", "DE", 0},
		{"2001:db8:fe::1", "", "untrusted", "", "FR", 0},
		{"2001:db8:ff::1", "", "untrusted", "", "", 0},
		{"", "", "untrusted", "", "", 0},
		{"192.0.2", "", "untrusted", "", "", 0},
		{"192.0.2.1.1", "", "untrusted", "", "", 0},
		{"not an address", "", "untrusted", "", "", 0},
		{"1.2.3.4, 5.6.7.8", "", "untrusted", "", "", 0},
	} {
		pl := l.Locate(tc.ip)
		if pl.Zone != tc.zone || pl.Trust != tc.trust || pl.Site != tc.site || pl.Country != tc.country || len(pl.Zones) != tc.zones {
			t.Errorf("Locate(%q) = %+v; want zone %q trust %q site %q country %q in %d zones", tc.ip, pl, tc.zone, tc.trust, tc.site, tc.country, tc.zones)
		}
	}
}

func TestWithoutGeoIPCountryIsUnknown(t *testing.T) {
	l, err := New(nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if pl := l.Locate("203.0.113.5"); pl.Country != "" || pl.Trust != policy.TrustUntrusted {
		t.Errorf("got %+v", pl)
	}
	var nilLocator *Locator
	if pl := nilLocator.Locate("203.0.113.5"); pl.Trust != policy.TrustUntrusted {
		t.Errorf("nil locator: %+v", pl)
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := New([]Zone{{Name: "z", Trust: "very", CIDRs: []string{"10.0.0.0/8"}}}, nil, ""); err == nil {
		t.Error("unknown trust accepted")
	}
	if _, err := New([]Zone{{Name: "z", Trust: "trusted", CIDRs: []string{"10.0.0.0/33"}}}, nil, ""); err == nil {
		t.Error("bad CIDR accepted")
	}
	if _, err := New(nil, []Site{{Name: "s"}}, ""); err == nil {
		t.Error("site without networks accepted")
	}
	if _, err := New(nil, nil, filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Error("missing GeoIP file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	os.WriteFile(bad, []byte("not a database"), 0o600)
	if _, err := New(nil, nil, bad); err == nil {
		t.Error("corrupt GeoIP file accepted")
	}
}

func FuzzLocate(f *testing.F) {
	l, err := New([]Zone{{Name: "z", Trust: "trusted", CIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}}}, nil, "")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1%eth0", "[::1]:80", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ip string) {
		pl := l.Locate(ip)
		if pl.Trust == "" || (pl.Zone == "") != (len(pl.Zones) == 0) {
			t.Fatalf("Locate(%q) = %+v", ip, pl)
		}
	})
}
