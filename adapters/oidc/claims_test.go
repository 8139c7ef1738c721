package oidc

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/trustbroker/trustbroker/broker/loa"
)

func TestParseClaimsParam(t *testing.T) {
	cr, err := parseClaimsParam(`{"userinfo":{"given_name":{"essential":true},"email":null,"verified_claims":{"verification":{"trust_framework":null}}},
		"id_token":{"acr":{"essential":true,"values":["http://eidas.europa.eu/LoA/high"]},"family_name":null}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cr.Names, []string{"email", "family_name", "given_name"}) || !cr.VerifiedClaims ||
		!slices.Equal(cr.ACRValues, []string{"http://eidas.europa.eu/LoA/high"}) {
		t.Errorf("parsed %+v", cr)
	}
	for _, bad := range []string{`[]`, `{"userinfo":[]}`, `{"id_token":{"acr":{"values":"x"}}}`, `not json`, `{"userinfo":{"x":5}}`,
		`{"userinfo":{` + strings.Repeat(`"a":null,`, 3000) + `"b":null}}`} {
		if _, err := parseClaimsParam(bad); err == nil {
			t.Errorf("accepted %.40q", bad)
		}
	}
	if cr, err := parseClaimsParam(""); err != nil || len(cr.Names) != 0 {
		t.Errorf("empty: %v %+v", err, cr)
	}
}

func TestRequestedLoA(t *testing.T) {
	for _, tc := range []struct {
		acr    string
		claims []string
		want   loa.Level
	}{
		{"", nil, loa.None},
		{"http://eidas.europa.eu/LoA/high", nil, loa.High},
		{"http://eidas.europa.eu/LoA/high http://eidas.europa.eu/LoA/substantial", nil, loa.Substantial},
		{"urn:unknown", nil, loa.None},
		{"", []string{"http://bsi.bund.de/eID/LoA/hoch"}, loa.High},
	} {
		if got := requestedLoA(tc.acr, tc.claims); got != tc.want {
			t.Errorf("requestedLoA(%q, %v) = %v, want %v", tc.acr, tc.claims, got, tc.want)
		}
	}
}

func TestRequestedAttributes(t *testing.T) {
	reg := []string{"given_name", "email", "nationalities", "phone_number"}
	got := requestedAttributes(reg, []string{"openid", "email"}, &claimsRequest{Names: []string{"phone_number"}})
	if !slices.Equal(got, []string{"email", "phone_number"}) {
		t.Errorf("got %v", got)
	}
	got = requestedAttributes(reg, []string{"openid", "profile"}, &claimsRequest{})
	if !slices.Equal(got, []string{"given_name", "nationalities"}) {
		t.Errorf("profile: %v", got)
	}
}

// FuzzParseClaimsParam: no input panics; what is accepted names only
// claims that appear in the input.
func FuzzParseClaimsParam(f *testing.F) {
	f.Add(`{"userinfo":{"given_name":null},"id_token":{"acr":{"values":["a"]}}}`)
	f.Add(`{"id_token":{"acr":{"value":"x","essential":true}}}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := parseClaimsParam(s)
		if err != nil {
			return
		}
		// Names come from the input (JSON escapes and invalid UTF-8,
		// which the decoder replaces, aside).
		if !utf8.ValidString(s) || strings.Contains(s, `\`) {
			return
		}
		for _, n := range cr.Names {
			if !strings.Contains(s, n) {
				t.Fatalf("invented claim %q", n)
			}
		}
	})
}
