// Package clientcert finds the client certificate of a card login: from the
// TLS connection of the broker's card-login listener, or from the header a
// trusted reverse proxy that terminated TLS forwards (nginx
// `$ssl_client_escaped_cert`). The certificates come out as DER, leaf
// first, unverified: the card provider validates them.
package clientcert

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// MaxHeaderLen bounds the header value (a URL-escaped PEM chain).
const MaxHeaderLen = 32 << 10

// maxCerts bounds the certificates taken from a header.
const maxCerts = 8

// Source says where certificates are accepted from.
type Source struct {
	// Header is the request header a proxy forwards the certificate in
	// (e.g. X-SSL-Client-Cert); empty disables the proxy path.
	Header string
	// Proxies are the networks whose connections may carry Header. The
	// TCP peer address decides, never X-Forwarded-For.
	Proxies []*net.IPNet
}

// ErrUntrustedProxy: the header came from an address not in Proxies.
var ErrUntrustedProxy = errors.New("client certificate header from an untrusted address")

// FromRequest returns the peer certificates: those of the TLS handshake when
// there are any, else those of the proxy header when the peer is a trusted
// proxy. A header from any other address is an error (and never read), so a
// misconfigured proxy shows up in the log instead of failing silently.
func (s Source) FromRequest(r *http.Request) ([][]byte, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		out := make([][]byte, len(r.TLS.PeerCertificates))
		for i, c := range r.TLS.PeerCertificates {
			out[i] = c.Raw
		}
		return out, nil
	}
	if s.Header == "" {
		return nil, nil
	}
	v := r.Header.Values(s.Header)
	if len(v) == 0 {
		return nil, nil
	}
	if !s.trusted(r.RemoteAddr) {
		return nil, ErrUntrustedProxy
	}
	if len(v) > 1 {
		return nil, errors.New("client certificate header repeated")
	}
	return DecodeHeader(v[0])
}

func (s Source) trusted(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range s.Proxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// DecodeHeader decodes a URL-escaped PEM value as nginx's
// $ssl_client_escaped_cert gives it (one or more CERTIFICATE blocks, leaf
// first). An empty value or "-" (nginx without a certificate) yields no
// certificates. Anything else that is not a clean PEM sequence of
// certificates is an error.
func DecodeHeader(v string) ([][]byte, error) {
	if len(v) > MaxHeaderLen {
		return nil, errors.New("client certificate header too long")
	}
	if v == "" || v == "-" || v == "(null)" {
		return nil, nil
	}
	// Path unescaping keeps "+" (base64) as it is.
	pemText, err := url.PathUnescape(v)
	if err != nil {
		return nil, errors.New("client certificate header is not URL-escaped")
	}
	data := []byte(pemText)
	var out [][]byte
	for {
		blk, rest := pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" || len(blk.Headers) > 0 {
			return nil, errors.New("client certificate header holds a " + blk.Type + " block")
		}
		if len(out) == maxCerts {
			return nil, errors.New("client certificate header holds too many certificates")
		}
		out = append(out, blk.Bytes)
		data = rest
	}
	if strings.TrimSpace(string(data)) != "" || len(out) == 0 {
		return nil, errors.New("client certificate header is not PEM")
	}
	return out, nil
}

// TLSThumbprint is the x5t#S256 of the client certificate presented on the
// request's own TLS connection (RFC 8705 §3.1: base64url of the SHA-256 of
// the DER certificate), or "" without one. A certificate from a proxy's
// header never counts: possession of its key was proved to the proxy, not
// on a connection the broker can tie a token to.
func TLSThumbprint(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return Thumbprint(r.TLS.PeerCertificates[0].Raw)
}

// Thumbprint is the x5t#S256 of a DER certificate.
func Thumbprint(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}
