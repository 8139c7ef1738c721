// Package dpop verifies DPoP proofs: OAuth 2.0 Demonstrating Proof of
// Possession, RFC 9449. The OpenID Provider calls it where a request may
// carry a DPoP header: the token endpoint (binding new tokens to the
// proof's key, RFC 9449 §5), and the protected resources it serves
// (userinfo, RFC 9449 §7). It also supplies the key thumbprint compared
// with dpop_jkt at the authorization and PAR endpoints (RFC 9449 §10).
//
// The package returns errors and never logs. A refusal is an *Error (the
// client's fault, 4xx); any other error is the server's (5xx). Replay
// protection lives in the injected ReplayCache, shared by all replicas,
// and nonces are stateless (HMAC under a key the replicas share), so no
// state is kept in process memory.
//
// At the token endpoint the caller, on success, binds the issued tokens to
// Proof.JKT (cnf.jkt, token_type DPoP); on an *Error it answers 400 with
// the Code as error, adding a DPoP-Nonce header from NewNonce when the
// Code is CodeUseNonce (RFC 9449 §8). At a protected resource it passes
// the access token and its cnf.jkt as Request.AccessToken and BoundJKT
// and answers a refusal with 401 and WWWAuthenticate (RFC 9449 §7.1, §9).
package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustbroker/trustbroker/broker/store"
)

// ReplayCache remembers one-time values across replicas, atomically:
// of two concurrent uses of a value exactly one succeeds. store.Replay
// satisfies it: Use returns an error wrapping store.ErrConflict when value
// was used before in namespace and has not expired; any other error is a
// storage failure.
type ReplayCache interface {
	Use(ctx context.Context, namespace, value string, expiresAt time.Time) error
}

var _ ReplayCache = store.Replay(nil)

// replayNamespace is the ReplayCache namespace of proof jtis.
const replayNamespace = "dpop"

// Defaults of Options.
const (
	DefaultMaxAge        = 60 * time.Second
	DefaultLeeway        = 5 * time.Second
	DefaultNonceLifetime = 5 * time.Minute
)

// defaultAlgorithms are the proof algorithms accepted when
// Options.Algorithms is empty.
var defaultAlgorithms = []string{"ES256", "ES384", "PS256", "RS256", "EdDSA"}

// asymmetric lists the algorithms Options.Algorithms may name: the
// asymmetric JWS algorithms of RFC 7518 §3.1 and RFC 8037 (RFC 9449 §4.3
// step 5). "none" and the HMAC algorithms are never accepted.
var asymmetric = []string{
	"ES256", "ES384", "ES512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"EdDSA",
}

// Options configure a Verifier. Zero durations take their defaults.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Replay records each proof's jti until it can no longer be
	// accepted (RFC 9449 §11.1). Required.
	Replay ReplayCache
	// NonceKey signs server nonces (RFC 9449 §8, §9); at least 32 bytes
	// and the same on every replica. Without it NewNonce fails and nonce
	// claims are not checked.
	NonceKey []byte
	// RequireNonce refuses proofs without a valid server nonce with
	// CodeUseNonce. Needs NonceKey.
	RequireNonce bool
	// NonceLifetime is how long a nonce stays valid; DefaultNonceLifetime
	// when zero.
	NonceLifetime time.Duration
	// Algorithms are the accepted proof algorithms, also advertised as
	// dpop_signing_alg_values_supported and in WWW-Authenticate;
	// ES256, ES384, PS256, RS256 and EdDSA when empty. Asymmetric
	// algorithms only (RFC 9449 §4.3 step 5): ES256/384/512,
	// RS256/384/512, PS256/384/512, EdDSA (Ed25519).
	Algorithms []string
	// MaxAge is how far iat may lie in the past; DefaultMaxAge when zero.
	MaxAge time.Duration
	// Leeway is how far iat may lie in the future (clock skew);
	// DefaultLeeway when zero.
	Leeway time.Duration
}

// Verifier checks DPoP proofs. It is immutable and safe for concurrent
// use.
type Verifier struct {
	now           func() time.Time
	replay        ReplayCache
	nonceKey      []byte
	requireNonce  bool
	nonceLifetime time.Duration
	algs          []string
	joseAlgs      []jose.SignatureAlgorithm
	maxAge        time.Duration
	leeway        time.Duration
}

// NewVerifier checks opts, reporting every problem at once, and returns a
// Verifier.
func NewVerifier(opts Options) (*Verifier, error) {
	v := &Verifier{
		now:           opts.Now,
		replay:        opts.Replay,
		nonceKey:      slices.Clone(opts.NonceKey),
		requireNonce:  opts.RequireNonce,
		nonceLifetime: orDefault(opts.NonceLifetime, DefaultNonceLifetime),
		algs:          slices.Clone(opts.Algorithms),
		maxAge:        orDefault(opts.MaxAge, DefaultMaxAge),
		leeway:        orDefault(opts.Leeway, DefaultLeeway),
	}
	if v.now == nil {
		v.now = time.Now
	}
	if len(v.algs) == 0 {
		v.algs = slices.Clone(defaultAlgorithms)
	}
	if err := v.validate(); err != nil {
		return nil, err
	}
	for _, a := range v.algs {
		v.joseAlgs = append(v.joseAlgs, jose.SignatureAlgorithm(a))
	}
	return v, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (v *Verifier) validate() error {
	var errs []error
	if v.replay == nil {
		errs = append(errs, errors.New("Replay is required"))
	}
	if n := len(v.nonceKey); n > 0 && n < minNonceKey {
		errs = append(errs, fmt.Errorf("NonceKey has %d bytes, needs at least %d", n, minNonceKey))
	}
	if v.requireNonce && len(v.nonceKey) == 0 {
		errs = append(errs, errors.New("RequireNonce needs a NonceKey"))
	}
	for _, a := range v.algs {
		if !slices.Contains(asymmetric, a) {
			errs = append(errs, fmt.Errorf("algorithm %q is not an asymmetric JWS algorithm", a))
		}
	}
	if v.maxAge < 0 || v.leeway < 0 || v.nonceLifetime < 0 {
		errs = append(errs, errors.New("MaxAge, Leeway and NonceLifetime must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dpop: options: %w", err)
	}
	return nil
}

// Algorithms returns the accepted proof algorithms, for the
// dpop_signing_alg_values_supported metadata (RFC 9449 §5.1).
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// Request is what Verify needs of the HTTP request that carried a proof.
type Request struct {
	// Headers are all values of the DPoP header field
	// (http.Header.Values("DPoP")); more than one is refused (RFC 9449
	// §4.3 step 1).
	Headers []string
	// Method is the request's HTTP method, compared with htm.
	Method string
	// URL is the request's target URI as the server knows it: its own
	// configured external scheme and host with the request path, never
	// the Host or X-Forwarded-Host header of an untrusted peer. It is
	// compared with htu after normalisation; query and fragment are
	// ignored (RFC 9449 §4.3 step 9).
	URL string
	// AccessToken is the access token presented with the proof at a
	// protected resource; the proof must then carry a matching ath (RFC
	// 9449 §4.3 step 12). Empty at the token endpoint, where an ath, if
	// any, is ignored.
	AccessToken string
	// BoundJKT, when set, is the thumbprint the proof key must have: the
	// access token's cnf.jkt, the refresh token's binding, or the code's
	// dpop_jkt (RFC 9449 §10).
	BoundJKT string
}

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of Key, base64url: the value
	// of cnf.jkt in tokens bound to it (RFC 9449 §6).
	JKT string
	// Key is the public key from the proof's jwk header.
	Key jose.JSONWebKey
	// JTI is the proof's unique identifier.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Nonce is the verified server nonce; empty when the proof carried
	// none or the verifier has no NonceKey.
	Nonce string
}

// Verify makes every check of RFC 9449 §4.3 on the proof that came with
// req. The nonce is checked after the others, so that CodeUseNonce tells
// the client the proof was otherwise good and only needs a fresh nonce;
// the jti is recorded in the replay store last, so that a refused proof
// does not use it up. A refusal is an *Error; any other error (a bad
// Request, a failing replay store) is the server's.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	target, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	now := v.now()
	compact, err := singleProof(req.Headers)
	if err != nil {
		return nil, err
	}
	key, payload, err := v.verifySignature(compact)
	if err != nil {
		return nil, err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	iat, err := v.checkClaims(c, req, target, now)
	if err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(key)
	if err != nil {
		return nil, invalidProof("the jwk header has no thumbprint", err)
	}
	if err := checkBinding(jkt, req); err != nil {
		return nil, err
	}
	nonce, err := v.checkNonce(c.Nonce, now)
	if err != nil {
		return nil, err
	}
	if err := v.useOnce(ctx, jkt, *c.JTI, iat); err != nil {
		return nil, err
	}
	return &Proof{JKT: jkt, Key: key, JTI: *c.JTI, IssuedAt: iat, Nonce: nonce}, nil
}

// checkRequest validates the caller's part of the request and returns the
// normalised target URI. Its errors are the caller's, not the client's.
func checkRequest(req Request) (string, error) {
	if req.Method == "" {
		return "", errors.New("dpop: Request.Method is empty")
	}
	target, err := normalizeURL(req.URL)
	if err != nil {
		return "", fmt.Errorf("dpop: Request.URL: %w", err)
	}
	return target, nil
}

// singleProof applies RFC 9449 §4.3 step 1: exactly one DPoP header.
func singleProof(headers []string) (string, error) {
	switch len(headers) {
	case 0:
		return "", invalidProof("the DPoP header is missing", nil)
	case 1:
		return headers[0], nil
	default:
		return "", invalidProof("more than one DPoP header", nil)
	}
}

// useOnce records jkt and jti in the replay store until the proof can no
// longer pass the iat check (RFC 9449 §11.1). The jti is hashed so that
// the stored value has a fixed length and holds no client-chosen text.
func (v *Verifier) useOnce(ctx context.Context, jkt, jti string, iat time.Time) error {
	sum := sha256.Sum256([]byte(jti))
	value := jkt + ":" + base64.RawURLEncoding.EncodeToString(sum[:])
	err := v.replay.Use(ctx, replayNamespace, value, iat.Add(v.maxAge+v.leeway))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return invalidProof("the DPoP proof was used before", err)
	default:
		return fmt.Errorf("dpop: replay store: %w", err)
	}
}

// checkBinding applies RFC 9449 §4.3 step 12 (second part) and §10: the
// proof key must be the one the token or code is bound to.
func checkBinding(jkt string, req Request) error {
	if req.BoundJKT == "" || subtle.ConstantTimeCompare([]byte(jkt), []byte(req.BoundJKT)) == 1 {
		return nil
	}
	code := CodeInvalidProof
	if req.AccessToken != "" {
		code = CodeInvalidToken
	}
	return &Error{Code: code, Description: "the DPoP proof key does not match the key binding", Err: ErrKeyMismatch}
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of an asymmetric
// key's public part, base64url-encoded without padding: the jkt of RFC
// 9449 §6.1 and §10.
func Thumbprint(jwk jose.JSONWebKey) (string, error) {
	pub := jwk.Public()
	if pub.Key == nil {
		return "", errors.New("dpop: thumbprint of a key that is not asymmetric")
	}
	sum, err := pub.Thumbprint(cryptoSHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// ATH returns the ath claim for an access token: base64url(SHA-256(token))
// without padding (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
