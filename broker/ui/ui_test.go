package ui

import (
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

func newUI(t *testing.T, demo bool) *UI {
	t.Helper()
	u, err := New(nil, demo, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCataloguesMatch: German and English have the same keys and no empty text.
func TestCataloguesMatch(t *testing.T) {
	keys := map[string][]string{}
	for _, lang := range Languages {
		cat, err := loadCatalogue(embedded, lang)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range cat {
			keys[lang] = append(keys[lang], k)
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: empty text for %q", lang, k)
			}
		}
		sort.Strings(keys[lang])
	}
	a, _ := json.Marshal(keys["de"])
	b, _ := json.Marshal(keys["en"])
	if string(a) != string(b) {
		t.Errorf("catalogues differ:\nde %s\nen %s", a, b)
	}
}

// sample gives each page data shaped like its real caller's.
var sample = map[string]any{
	"method": map[string]any{
		"RPName": "Shop <b>", "CSRF": "tok", "Action": "/login/x", "CancelAction": "/login/x/cancel", "MinLoA": "high", "Error": "",
		"Methods": []map[string]string{{"ID": "eid", "Name": "Online-Ausweis", "Kind": "eid"}}, "Notice": "n <b>",
	},
	"link_offer":  map[string]any{"RPName": "Shop <b>", "Provider": "Online-Ausweis <b>", "CSRF": "tok", "Action": "/login/x/link", "Error": "e <b>"},
	"error":       map[string]any{"Message": "msg", "RequestID": "rid"},
	"ceremony":    map[string]any{"Kind": "webauthn", "Name": "Passkey", "CSRF": "t", "OptionsURL": "/o", "FinishURL": "/f"},
	"demo_home":   map[string]any{"CSRF": "t"},
	"demo_result": map[string]any{"Claims": []map[string]string{{"Name": "sub", "Value": "x"}}},
	"home":        nil,
	"logout_confirm": map[string]any{"CSRF": "t", "Action": "/oauth2/logout", "ClientName": "Shop <b>",
		"Form": map[string]string{"state": "s", "client_id": "shop"}},
	"logout_done": nil,
	"logout_frontchannel": map[string]any{"Continue": "https://shop.example/bye?state=<b>", "Seconds": 2,
		"Frames": []map[string]string{{"URL": "https://shop.example/fc?iss=x&sid=<b>", "Name": "Shop <b>"}}},
	"webauthn_account": map[string]any{"Base": "/account/webauthn", "CSRF": "t", "Error": "e <b>", "Notice": "n",
		"UserName": "erika", "MinLoA": "substantial", "CanRegister": true, "NeedUserName": false,
		"Credentials": []map[string]any{{"Ref": "AQID", "Name": "Key <b>", "Kind": "Passkey", "Created": "c",
			"LastUsed": "l", "Synced": true, "Cloned": true}}},
	"consent": map[string]any{"RPName": "Shop <b>", "CSRF": "t", "Action": "/login/x/consent",
		"Items": []map[string]any{{"Name": "email", "Label": "E-Mail", "Value": "a@b <c>", "Purpose": "p", "Required": false, "Checked": false, "Basis": "consent"},
			{"Name": "given_name", "Label": "Vorname", "Value": "Erika", "Purpose": "p", "Required": true, "Checked": true, "Basis": "consent"}},
		"Info": []map[string]any{{"Name": "family_name", "Label": "Name", "Value": "M", "Purpose": "p", "Basis": "contract"}}},
	"account": map[string]any{"Name": "Erika <b>", "CSRF": "t", "Notice": "n", "Error": "",
		"Manage": []map[string]string{{"Kind": "webauthn", "Path": "/account/webauthn/"}, {"Kind": "eid", "Path": "/account/eid/"}},
		"Consents": []map[string]any{{"RPID": "shop", "Service": "Shop", "Attributes": "a, b", "LeftOut": "c",
			"Purpose": "p", "Granted": "g", "Expires": ""}},
		"Disclosures": []map[string]any{{"When": "w", "Service": "Shop", "Attributes": "", "Protocol": "oidc"}},
		"Identities":  []map[string]any{{"Kind": "eid", "Linked": "l", "LastUsed": "u"}}},
	"account_delete":  map[string]any{"Name": "Erika <b>", "CSRF": "t", "Error": "e <b>", "Services": []string{"Shop <b>", "Amt"}},
	"account_deleted": nil,
	"eid_activate": map[string]any{"ClientLink": "http://127.0.0.1:24727/eID-Client?tcTokenURL=x", "MobileLink": "eid://x",
		"StatusURL": "http://127.0.0.1:24727/eID-Client?Status=json", "OtherMethod": "/login/x", "Simulator": true,
		"Requested": []string{"GivenNames", "AgeVerification"}},
	"eid_account": map[string]any{"Base": "/account/eid/", "CSRF": "t", "Notice": "n <b>", "Error": "e <b>",
		"Cards": []map[string]any{{"Ref": "abcdef012345…", "Linked": "2026-01-01", "LastUsed": "2026-02-01", "Current": true}}},
	"eidas_post": map[string]any{"Action": "https://node.example/sso", "ToNode": true, "Simulator": true,
		"Fields": []map[string]string{{"Name": "SAMLRequest", "Value": "PHg+<b>"}, {"Name": "RelayState", "Value": "tx"}}},
}

// TestEveryPageRenders renders each page in each language, demo or not.
func TestEveryPageRenders(t *testing.T) {
	for _, demo := range []bool{false, true} {
		u := newUI(t, demo)
		pages := u.Pages()
		if len(pages) != len(sample) {
			t.Errorf("pages %v; the test knows %d", pages, len(sample))
		}
		for _, page := range pages {
			for _, lang := range Languages {
				rec := httptest.NewRecorder()
				u.Render(rec, httptest.NewRequest("GET", "/p", nil), 200, page, lang, sample[page])
				body := rec.Body.String()
				if rec.Code != 200 {
					t.Fatalf("%s/%s: status %d: %s", page, lang, rec.Code, body)
				}
				if !strings.Contains(body, `<html lang="`+lang+`">`) || !strings.Contains(body, "</html>") {
					t.Errorf("%s/%s: incomplete page", page, lang)
				}
				if strings.Contains(body, "demo-banner") != demo {
					t.Errorf("%s/%s: demo banner shown=%v, want %v", page, lang, !demo, demo)
				}
				if strings.Contains(body, "<b>") {
					t.Errorf("%s/%s: unescaped markup", page, lang)
				}
			}
		}
	}
}

// TestLangSwitchLink: the switch keeps a GET's query (a logout ticket)
// with lang replaced; a page answering a POST links to its path.
func TestLangSwitchLink(t *testing.T) {
	u := newUI(t, false)
	for _, tc := range []struct{ method, target, want string }{
		{"GET", "/oauth2/logout/frontchannel?t=abc%2Bdef&lang=de", `href="/oauth2/logout/frontchannel?lang=en&amp;t=abc%2Bdef"`},
		{"GET", "/account", `href="/account?lang=en"`},
		{"POST", "/oauth2/logout?x=1", `href="/oauth2/logout?lang=en"`},
		{"GET", "/p?q=%22%3E%3Cscript%3E", `href="/p?lang=en&amp;q=%22%3E%3Cscript%3E"`},
	} {
		rec := httptest.NewRecorder()
		u.Render(rec, httptest.NewRequest(tc.method, tc.target, nil), 200, "error", "de", sample["error"])
		if !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: no %s in\n%s", tc.method, tc.target, tc.want, rec.Body)
		}
	}
}

func TestLang(t *testing.T) {
	for _, tc := range []struct {
		query, header, explicit, want string
	}{
		{"", "", "", "de"},
		{"", "en-GB,en;q=0.9", "", "en"},
		{"", "fr-FR, en;q=0.5", "", "en"},
		{"", "fr", "", "de"},
		{"", "en", "de-AT", "de"},
		{"lang=en", "de", "de", "en"},
		{"lang=xx", "en", "", "en"},
	} {
		r := httptest.NewRequest("GET", "/?"+tc.query, nil)
		if tc.header != "" {
			r.Header.Set("Accept-Language", tc.header)
		}
		if got := Lang(r, tc.explicit); got != tc.want {
			t.Errorf("Lang(q=%q, h=%q, e=%q) = %s, want %s", tc.query, tc.header, tc.explicit, got, tc.want)
		}
	}
}

func TestAssets(t *testing.T) {
	u := newUI(t, false)
	rec := httptest.NewRecorder()
	u.Assets().ServeHTTP(rec, httptest.NewRequest("GET", "/assets/style.css", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if _, err := fs.Stat(embedded, "assets/style.css"); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
