package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// Cookies sets the broker's cookies with one policy: HttpOnly always,
// SameSite=Lax (the browser must send them on the top-level navigation that
// comes back from a relying party or provider), and under TLS the Secure
// flag with the __Host- prefix (path "/") or __Secure- prefix (other paths).
type Cookies struct {
	Secure bool
}

// Name returns the cookie name as sent, with the prefix TLS calls for.
func (c Cookies) Name(base, path string) string {
	if !c.Secure {
		return base
	}
	if path == "/" {
		return "__Host-" + base
	}
	return "__Secure-" + base
}

// Set writes a cookie; maxAge 0 makes it a browser-session cookie.
func (c Cookies) Set(w http.ResponseWriter, base, path, value string, maxAge time.Duration) {
	ck := &http.Cookie{
		Name:     c.Name(base, path),
		Value:    value,
		Path:     path,
		HttpOnly: true,
		Secure:   c.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		ck.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, ck)
}

// Clear deletes a cookie.
func (c Cookies) Clear(w http.ResponseWriter, base, path string) {
	http.SetCookie(w, &http.Cookie{
		Name: c.Name(base, path), Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// Get reads a cookie value ("" when absent).
func (c Cookies) Get(r *http.Request, base, path string) string {
	ck, err := r.Cookie(c.Name(base, path))
	if err != nil {
		return ""
	}
	return ck.Value
}

// CSRF issues and checks form tokens: an HMAC over a binding value that an
// attacker's page cannot know (the browser-bound login cookie, or the
// session). It complements http.CrossOriginProtection, which refuses
// cross-origin form posts by their Sec-Fetch-Site/Origin headers.
type CSRF struct {
	key []byte
}

// NewCSRF uses key (at least 32 bytes, shared by all replicas).
func NewCSRF(key []byte) *CSRF {
	return &CSRF{key: append([]byte(nil), key...)}
}

// Token returns the form token for binding.
func (c *CSRF) Token(binding string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("csrf\x00"))
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Valid reports whether token belongs to binding (constant time).
func (c *CSRF) Valid(binding, token string) bool {
	if binding == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(c.Token(binding)), []byte(token))
}
