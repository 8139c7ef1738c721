// Package keys manages the broker's signing keys: generation (ES256 and
// RS256, RFC 7518 §3.1), encryption of the private keys at rest under a
// master key, rotation through the states next → active → retired, and the
// JSON Web Key Set (RFC 7517 §5) that relying parties fetch to verify what
// the broker signs.
//
// A key is published in the JWKS as "next" before it signs anything, signs
// while "active", and stays published as "retired" until VerifyUntil, the
// moment the last token it could have signed expires. The Manager keeps an
// immutable snapshot of the decrypted keys and the serialised JWKS; the
// signing and verification paths read it without locks or store access.
package keys

import (
	"crypto"
	"errors"
	"time"
)

// Signature algorithms, named as in RFC 7518 §3.1 (JWS "alg" values).
const (
	// ES256 is ECDSA with the P-256 curve and SHA-256 (RFC 7518 §3.4).
	ES256 = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
	RS256 = "RS256"
)

// DefaultAlgs returns the algorithms Ensure provides keys for when called
// without arguments: ES256 and RS256.
func DefaultAlgs() []string { return []string{ES256, RS256} }

// Errors checked with errors.Is.
var (
	// ErrUnsupportedAlg: the algorithm is not ES256 or RS256.
	ErrUnsupportedAlg = errors.New("keys: unsupported algorithm")
	// ErrNoActiveKey: the cache holds no active key for the algorithm
	// (Reload not run yet, or Ensure never ran).
	ErrNoActiveKey = errors.New("keys: no active key")
	// ErrNoNextKey: Rotate found no next key to promote; run Ensure first.
	ErrNoNextKey = errors.New("keys: no next key to promote (run Ensure first)")
	// ErrMasterKeyMismatch: a private key did not decrypt. Either the
	// master key is not the one the key was encrypted under, or the stored
	// row was altered (ciphertext changed or moved to another kid).
	ErrMasterKeyMismatch = errors.New("keys: master key does not match (or the stored key was altered)")
)

// Signer is the active signing key of one algorithm. Key is an
// *ecdsa.PrivateKey (ES256) or an *rsa.PrivateKey (RS256).
type Signer struct {
	KID string // "kid" of the key (RFC 7517 §4.5), its RFC 7638 thumbprint
	Alg string // "alg" (RFC 7518 §3.1)
	Key crypto.Signer
}

// KeyInfo describes a stored key without any secret material, for
// listings such as "keys list".
type KeyInfo struct {
	KID         string
	Alg         string
	State       string // store.KeyNext, store.KeyActive or store.KeyRetired
	CreatedAt   time.Time
	ActivatedAt time.Time // zero while next
	RetiredAt   time.Time // zero unless retired
	VerifyUntil time.Time // zero unless retired
	// Published reports whether the key was in the JWKS at the last
	// Reload (false for retired keys past VerifyUntil, awaiting Prune).
	Published bool
}
