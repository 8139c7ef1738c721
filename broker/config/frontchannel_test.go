package config

import (
	"strings"
	"testing"
)

// TestFrontchannelLogoutURI: the front-channel logout URI follows the rules
// of a redirect URI and sits on the origin of one of them (OIDC
// Front-Channel Logout 1.0 §2).
func TestFrontchannelLogoutURI(t *testing.T) {
	with := func(lines string) string {
		return strings.Replace(goodRP, "      client_secret:", lines+"      client_secret:", 1)
	}
	const key = "relying_parties[0].oidc.frontchannel_logout_uri"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"http off loopback", with("      frontchannel_logout_uri: http://shop.example/logout\n"), `must use https (http only for localhost)`},
		{"fragment", with("      frontchannel_logout_uri: https://shop.example/logout#x\n"), "has a fragment"},
		{"empty fragment", with("      frontchannel_logout_uri: 'https://shop.example/logout#'\n"), "has a fragment"},
		{"relative", with("      frontchannel_logout_uri: /logout\n"), "is not an absolute URL"},
		{"no host", with("      frontchannel_logout_uri: 'https:///logout'\n"), "is not an absolute URL"},
		{"other scheme", with("      frontchannel_logout_uri: javascript://shop.example/%0aalert(1)\n"), "must use https"},
		{"user info", with("      frontchannel_logout_uri: https://u:p@shop.example/logout\n"), "carries user information"},
		{"foreign host", with("      frontchannel_logout_uri: https://evil.example/logout\n"), "must be those of one of the redirect_uris"},
		{"foreign port", with("      frontchannel_logout_uri: https://shop.example:8443/logout\n"), "must be those of one of the redirect_uris"},
		{"foreign scheme", with("      frontchannel_logout_uri: http://localhost:3001/logout\n"), "must be those of one of the redirect_uris"},
		{"session required without URI", with("      frontchannel_logout_session_required: true\n"), "frontchannel_logout_session_required: needs frontchannel_logout_uri"},
		{"not a bool", with("      frontchannel_logout_session_required: sometimes\n"), "frontchannel_logout_session_required: expected true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "t.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(tc.name, "session") && !strings.Contains(tc.name, "bool") && !strings.Contains(err.Error(), key) {
				t.Errorf("error %q does not name %s", err, key)
			}
		})
	}
	for _, uri := range []string{"https://shop.example/logout?from=op", "https://SHOP.example/fc", "http://localhost:3000/logout", "http://[::1]:9/fc"} {
		c, err := Parse([]byte(with("      frontchannel_logout_uri: '"+uri+"'\n      frontchannel_logout_session_required: true\n")), "t.yaml")
		if err != nil {
			t.Errorf("%s refused: %v", uri, err)
			continue
		}
		if o := c.RelyingParties[0].OIDC; o.FrontchannelLogoutURI != uri || !o.FrontchannelLogoutSessionRequired {
			t.Errorf("%s: parsed %+v", uri, o)
		}
	}
}
