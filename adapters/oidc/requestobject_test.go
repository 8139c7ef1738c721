package oidc

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

// TestRefuseRequestObject: request objects are taken out of the request
// and answered with the OIDC Core §6 error codes; PAR request_uris pass.
func TestRefuseRequestObject(t *testing.T) {
	for _, tc := range []struct {
		name   string
		query  url.Values
		body   url.Values
		pushed bool
		want   *fosite.RFC6749Error
	}{
		{name: "plain", query: url.Values{"client_id": {"c"}}},
		{name: "request", query: url.Values{"request": {"eyJ.x.y"}}, want: fosite.ErrRequestNotSupported},
		{name: "empty request", query: url.Values{"request": {""}}, want: fosite.ErrRequestNotSupported},
		{name: "request in body", body: url.Values{"request": {"eyJ.x.y"}}, want: fosite.ErrRequestNotSupported},
		{name: "request at PAR", body: url.Values{"request": {"eyJ.x.y"}}, pushed: true, want: fosite.ErrRequestNotSupported},
		{name: "request_uri https", query: url.Values{"request_uri": {"https://rp.example/req.jwt"}}, want: fosite.ErrRequestURINotSupported},
		{name: "request_uri twice", query: url.Values{"request_uri": {parPrefix + "a", parPrefix + "b"}}, want: fosite.ErrRequestURINotSupported},
		{name: "request_uri prefix only in the middle", query: url.Values{"request_uri": {"x" + parPrefix}}, want: fosite.ErrRequestURINotSupported},
		{name: "PAR request_uri", query: url.Values{"request_uri": {parPrefix + "abc"}}},
		{name: "request_uri at PAR left to fosite", body: url.Values{"request_uri": {"https://rp.example/r"}}, pushed: true},
		{name: "both", query: url.Values{"request": {"x"}, "request_uri": {"https://rp.example/r"}}, want: fosite.ErrRequestNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, body := "GET", ""
			if tc.body != nil {
				method, body = "POST", tc.body.Encode()
			}
			r := httptest.NewRequest(method, PathAuthorize+"?"+tc.query.Encode(), strings.NewReader(body))
			if tc.body != nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			err := refuseRequestObject(r, tc.pushed)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if _, ok := r.Form["request"]; ok {
				t.Error("request left in the form")
			}
			if v := r.Form.Get("request_uri"); v != "" && !tc.pushed && !strings.HasPrefix(v, parPrefix) {
				t.Errorf("request_uri %q left in the form", v)
			}
		})
	}
}
