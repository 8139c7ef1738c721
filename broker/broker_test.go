package broker

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/policy"
)

func testBroker(t *testing.T) *Broker {
	t.Helper()
	loc, _ := time.LoadLocation("Europe/Berlin")
	b := &Broker{o: Options{PairwiseKey: bytes.Repeat([]byte{1}, 32), TimeZone: loc, Now: time.Now}}
	nb, err := New(Options{})
	if err == nil || nb != nil {
		t.Fatal("New accepted empty options")
	}
	for _, n := range []config.Network{{Name: "office", CIDRs: []string{"192.0.2.0/24"}}, {Name: "v6", CIDRs: []string{"2001:db8::/32", "198.51.100.7"}}} {
		z := zone{name: n.Name}
		for _, c := range n.CIDRs {
			ipn, err := config.ParseCIDROrIP(c)
			if err != nil {
				t.Fatal(err)
			}
			z.nets = append(z.nets, ipn)
		}
		b.networks = append(b.networks, z)
	}
	return b
}

// TestSubject: pairwise subjects differ per relying party and are stable;
// public ones are the account id (OIDC Core §8).
func TestSubject(t *testing.T) {
	b := testBroker(t)
	a := &config.RelyingParty{ID: "a", SubjectType: "pairwise"}
	c := &config.RelyingParty{ID: "c", SubjectType: "pairwise"}
	pub := &config.RelyingParty{ID: "p", SubjectType: "public"}
	if b.Subject(a, "acct") == b.Subject(c, "acct") {
		t.Error("two RPs see the same pairwise subject")
	}
	if b.Subject(a, "acct") != b.Subject(a, "acct") || b.Subject(a, "acct") == b.Subject(a, "other") {
		t.Error("pairwise subject not a stable function of RP and account")
	}
	if b.Subject(pub, "acct") != "acct" {
		t.Error("public subject is not the account id")
	}
}

func TestPolicyContext(t *testing.T) {
	b := testBroker(t)
	var pc policy.Context
	h := web.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		pc = b.PolicyContext(r, loa.High, "eid", []string{"sc"})
	}), web.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		remote string
		want   []string
	}{
		{"192.0.2.10:1", []string{"office"}},
		{"198.51.100.7:1", []string{"v6"}},
		{"[2001:db8::1]:1", []string{"v6"}},
		{"203.0.113.1:1", nil},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		h.ServeHTTP(httptest.NewRecorder(), r)
		if !slices.Equal(pc.Networks, tc.want) {
			t.Errorf("%s: networks %v, want %v", tc.remote, pc.Networks, tc.want)
		}
		if !pc.HardwareToken || pc.LoA != loa.High || pc.Time.Location().String() != "Europe/Berlin" || pc.ClientIP == "" {
			t.Errorf("context %+v", pc)
		}
	}
}
