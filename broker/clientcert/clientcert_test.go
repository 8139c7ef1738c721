package clientcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func escaped(ders ...[]byte) string {
	var sb strings.Builder
	for _, d := range ders {
		sb.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	// nginx escapes like a URI component: spaces as %20, not "+".
	return strings.ReplaceAll(url.QueryEscape(sb.String()), "+", "%20")
}

func TestFromRequest(t *testing.T) {
	_, lo, _ := net.ParseCIDR("127.0.0.0/8")
	src := Source{Header: "X-SSL-Client-Cert", Proxies: []*net.IPNet{lo}}
	leaf, inter := []byte{0x30, 1, 2}, []byte{0x30, 3, 4}
	for _, tc := range []struct {
		name, remote, header string
		want                 int
		err                  bool
	}{
		{"trusted proxy", "127.0.0.1:4000", escaped(leaf, inter), 2, false},
		{"untrusted address", "192.0.2.7:4000", escaped(leaf), 0, true},
		{"no header", "127.0.0.1:4000", "", 0, false},
		{"nginx without certificate", "127.0.0.1:4000", "-", 0, false},
		{"malformed", "127.0.0.1:4000", "%ZZ", 0, true},
		{"not PEM", "127.0.0.1:4000", "hello", 0, true},
		{"trailing junk", "127.0.0.1:4000", escaped(leaf) + "junk", 0, true},
		{"private key block", "127.0.0.1:4000", url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leaf}))), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/login/x/certificate", nil)
			r.RemoteAddr = tc.remote
			if tc.header != "" {
				r.Header.Set("X-SSL-Client-Cert", tc.header)
			}
			got, err := src.FromRequest(r)
			if (err != nil) != tc.err || len(got) != tc.want {
				t.Fatalf("got %d certificates, err %v", len(got), err)
			}
		})
	}
	// The TLS handshake wins over any header; and an untrusted header is
	// reported as such.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:1"
	r.Header.Set("X-SSL-Client-Cert", escaped(leaf))
	if _, err := src.FromRequest(r); !errors.Is(err, ErrUntrustedProxy) {
		t.Fatalf("err = %v", err)
	}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: inter}}}
	got, err := src.FromRequest(r)
	if err != nil || len(got) != 1 || string(got[0]) != string(inter) {
		t.Fatalf("TLS path: %v %v", got, err)
	}
	// Without a configured header, the header is ignored.
	r.TLS = nil
	if got, err := (Source{}).FromRequest(r); err != nil || got != nil {
		t.Fatalf("disabled header path: %v %v", got, err)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(escaped([]byte{0x30, 0}))
	f.Add("-")
	f.Add("%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0A")
	f.Fuzz(func(t *testing.T, v string) {
		certs, err := DecodeHeader(v)
		if err == nil && len(certs) > maxCerts {
			t.Fatalf("%d certificates", len(certs))
		}
	})
}
