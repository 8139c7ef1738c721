package dpop

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// maxURLLen bounds the htu claim and the request URL.
const maxURLLen = 2048

// normalizeURL returns the form in which the htu claim and the request's
// target URI are compared (RFC 9449 §4.3 step 9): the query and fragment
// dropped, then syntax-based (RFC 3986 §6.2.2: scheme and host in lower
// case, percent-encodings in upper case and decoded where they stand for
// unreserved characters, dot-segments removed) and scheme-based (RFC 3986
// §6.2.3: default port and empty port removed, empty path made "/")
// normalisation. Only absolute http and https URIs without userinfo
// (RFC 9110 §4.2.4) are accepted; hosts are restricted to DNS names and
// IP literals in ASCII.
//
// The result is idempotent: normalizeURL of a result returns it unchanged.
func normalizeURL(raw string) (string, error) {
	if len(raw) > maxURLLen {
		return "", errors.New("URL too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("URL does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("URL scheme is not http or https")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("URL is not absolute")
	}
	if u.User != nil {
		return "", errors.New("URL has userinfo")
	}
	host, err := normalizeHost(u.Host, scheme)
	if err != nil {
		return "", err
	}
	path, err := normalizePath(u.EscapedPath())
	if err != nil {
		return "", err
	}
	return scheme + "://" + host + path, nil
}

// normalizeHost lower-cases the host and drops an empty or default port.
func normalizeHost(hostport, scheme string) (string, error) {
	hostport = strings.ToLower(hostport)
	host, port := splitHostPort(hostport)
	if !validHost(host) {
		return "", errors.New("URL host is not a DNS name or IP literal")
	}
	if port == "" {
		return host, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || strings.TrimLeft(port, "0123456789") != "" {
		return "", errors.New("URL port is invalid")
	}
	if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
		return host, nil
	}
	return host + ":" + strconv.FormatUint(n, 10), nil
}

// splitHostPort splits at the colon that begins the port, if any; an IPv6
// literal keeps its brackets. The port is empty when absent or when the
// authority ends in a bare colon.
func splitHostPort(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.LastIndexByte(hostport, ']') > i {
		return hostport, ""
	}
	return hostport[:i], hostport[i+1:]
}

// validHost accepts a lower-case reg-name of letters, digits, '-', '.' and
// '_', or a bracketed IPv6 literal of hex digits, ':' and '.' (no zone).
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if h[0] == '[' {
		if len(h) < 4 || h[len(h)-1] != ']' {
			return false
		}
		return onlyBytes(h[1:len(h)-1], "0123456789abcdef:.")
	}
	return onlyBytes(h, "abcdefghijklmnopqrstuvwxyz0123456789-._")
}

func onlyBytes(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// normalizePath normalises percent-encodings in an escaped path (upper-case
// hex digits; unreserved characters decoded, RFC 3986 §6.2.2.1–2), removes
// dot-segments (RFC 3986 §5.2.4, §6.2.2.3) and makes an empty path "/"
// (RFC 3986 §6.2.3).
func normalizePath(escaped string) (string, error) {
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(escaped) {
			return "", errors.New("URL path has a bad percent-encoding")
		}
		hi, ok1 := unhex(escaped[i+1])
		lo, ok2 := unhex(escaped[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("URL path has a bad percent-encoding")
		}
		if d := hi<<4 | lo; unreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(escaped[i+1 : i+3]))
		}
		i += 2
	}
	p := removeDotSegments(b.String())
	if p == "" {
		p = "/"
	}
	return p, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unreserved reports whether c is in the unreserved set of RFC 3986 §2.3.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is the algorithm of RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	var out []string
	pop := func() {
		if len(out) > 0 {
			out = out[:len(out)-1]
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			pop()
		case in == "/..":
			in = "/"
			pop()
		case in == "." || in == "..":
			in = ""
		default:
			j := strings.IndexByte(in[1:], '/') + 1
			if j == 0 {
				j = len(in)
			}
			out = append(out, in[:j])
			in = in[j:]
		}
	}
	return strings.Join(out, "")
}
