package dpop

import (
	"errors"
	"strings"
)

// Error codes of RFC 9449 §12.2, and the RFC 6750 code that RFC 9449 §7.1
// uses for an access token whose key binding the proof does not satisfy.
const (
	// CodeInvalidProof: the DPoP proof is missing, malformed, or fails a
	// check of RFC 9449 §4.3. The token endpoint answers 400, a protected
	// resource 401 with WWW-Authenticate.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the server requires a nonce (RFC 9449 §8, §9) and the
	// proof carries none, or one it did not issue or that has gone stale.
	// The answer carries a fresh DPoP-Nonce header.
	CodeUseNonce = "use_dpop_nonce"
	// CodeInvalidToken: the proof is valid but its key is not the one the
	// presented access token is bound to (RFC 9449 §7.1).
	CodeInvalidToken = "invalid_token"
)

// ErrKeyMismatch is wrapped by the *Error returned when the proof's key
// thumbprint differs from Request.BoundJKT, so that a caller can tell a
// binding failure from a bad proof with errors.Is.
var ErrKeyMismatch = errors.New("dpop: proof key does not match the bound key")

// Error is a refusal of a DPoP proof: the client's fault, answered with a
// 4xx status. Code and Description are public (safe to send to the
// client: Description holds no attacker input beyond a short, sanitised
// excerpt); Err is the private cause, for the log only.
//
// Verify returns an *Error for every refusal and a plain error for
// everything else (a failing replay store, a malformed Request built by
// the caller), which the caller answers with a 5xx status.
type Error struct {
	// Code is CodeInvalidProof, CodeUseNonce or CodeInvalidToken.
	Code string
	// Description is the public error_description.
	Description string
	// Err is the private cause; may be nil.
	Err error
}

func (e *Error) Error() string {
	s := "dpop: " + e.Code + ": " + e.Description
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func invalidProof(desc string, err error) *Error {
	return &Error{Code: CodeInvalidProof, Description: desc, Err: err}
}

func useNonce(desc string) *Error {
	return &Error{Code: CodeUseNonce, Description: desc}
}

// maxExcerpt bounds how much of an attacker-chosen value a Description
// repeats.
const maxExcerpt = 24

// excerpt returns a short, quoted form of an untrusted value for a public
// Description: at most maxExcerpt characters, each outside the character
// set RFC 6749 §5.2 allows in error_description (and the quote and
// backslash that would end a quoted-string) replaced with '?'.
func excerpt(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	n := 0
	for _, r := range s {
		if n == maxExcerpt {
			b.WriteString("...")
			break
		}
		b.WriteRune(descriptionRune(r))
		n++
	}
	b.WriteByte('\'')
	return b.String()
}

// descriptionRune maps r into the error_description character set of
// RFC 6749 §5.2 (%x20-21 / %x23-5B / %x5D-7E), replacing the rest by '?'.
func descriptionRune(r rune) rune {
	if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
		return '?'
	}
	return r
}

// sanitize applies descriptionRune to a whole string.
func sanitize(s string) string {
	return strings.Map(descriptionRune, s)
}

// WWWAuthenticate builds the WWW-Authenticate challenge a protected
// resource answers with (RFC 9449 §7.1), listing the algorithms this
// verifier accepts in algs:
//
//	DPoP realm="…", error="invalid_dpop_proof", error_description="…", algs="ES256 …"
//
// When err is (or wraps) an *Error, its Code and Description become error
// and error_description; any other error, or nil, gives a challenge
// without error (RFC 6750 §3.1: the request lacked credentials, or the
// failure is the server's). realm is left out when empty.
func (v *Verifier) WWWAuthenticate(err error, realm string) string {
	var params []string
	if realm != "" {
		params = append(params, `realm="`+sanitize(realm)+`"`)
	}
	var de *Error
	if errors.As(err, &de) && de.Code != "" {
		params = append(params, `error="`+sanitize(de.Code)+`"`)
		if de.Description != "" {
			params = append(params, `error_description="`+sanitize(de.Description)+`"`)
		}
	}
	params = append(params, `algs="`+strings.Join(v.algs, " ")+`"`)
	return "DPoP " + strings.Join(params, ", ")
}
