package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Server-provided nonces (RFC 9449 §8, §9) are stateless so that every
// replica accepts every replica's nonce:
//
//	nonce = base64url( ts || HMAC-SHA256(NonceKey, nonceLabel || ts) )
//
// where ts is the issue time in Unix seconds, 8 bytes big-endian. A nonce
// is valid from ts-Leeway to ts+NonceLifetime. Anyone who sees a nonce may
// reuse it within its lifetime: it bounds how far ahead a proof can be
// made (RFC 9449 §11.1), while jti replay is stopped by the replay store.
const (
	nonceLabel  = "trustbroker dpop nonce v1\x00"
	nonceTSLen  = 8
	nonceRawLen = nonceTSLen + sha256.Size
	maxNonceLen = 128
	minNonceKey = 32
)

// ErrNoNonceKey is returned by NewNonce when the Verifier was built without
// Options.NonceKey.
var ErrNoNonceKey = errors.New("dpop: no nonce key configured")

// NewNonce returns a fresh server nonce for the DPoP-Nonce response header
// (RFC 9449 §8 at the token endpoint, with a refusal or, per §8.2, with a
// success; §9 at a protected resource).
func (v *Verifier) NewNonce() (string, error) {
	if len(v.nonceKey) == 0 {
		return "", ErrNoNonceKey
	}
	var ts [nonceTSLen]byte
	binary.BigEndian.PutUint64(ts[:], uint64(v.now().Unix()))
	raw := append(ts[:], v.nonceMAC(ts[:])...)
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func (v *Verifier) nonceMAC(ts []byte) []byte {
	m := hmac.New(sha256.New, v.nonceKey)
	m.Write([]byte(nonceLabel))
	m.Write(ts)
	return m.Sum(nil)
}

// validNonce reports whether nonce was issued by a verifier with the same
// key and lies within its validity window at now.
func (v *Verifier) validNonce(nonce string, now time.Time) bool {
	if len(nonce) > maxNonceLen {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return false
	}
	ts := raw[:nonceTSLen]
	if !hmac.Equal(raw[nonceTSLen:], v.nonceMAC(ts)) {
		return false
	}
	secs := binary.BigEndian.Uint64(ts)
	if secs > uint64(maxUnix) {
		return false
	}
	issued := time.Unix(int64(secs), 0)
	return !issued.After(now.Add(v.leeway)) && !now.After(issued.Add(v.nonceLifetime))
}

// checkNonce applies RFC 9449 §4.3 step 10. A nonce is checked whenever
// the proof carries one and the verifier has a key; it is required only
// when Options.RequireNonce is set. It returns the verified nonce.
func (v *Verifier) checkNonce(nonce *string, now time.Time) (string, error) {
	if nonce == nil || *nonce == "" {
		if v.requireNonce {
			return "", useNonce("a DPoP nonce is required")
		}
		return "", nil
	}
	if len(v.nonceKey) == 0 {
		return "", nil
	}
	if !v.validNonce(*nonce, now) {
		return "", useNonce("the DPoP nonce is invalid or has expired")
	}
	return *nonce, nil
}
