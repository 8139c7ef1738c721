package saml

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// The SessionIndex of every assertion of an SSO session is the session's
// store key (a SHA-256 of the cookie value, not the cookie itself) sealed
// with AES-256-GCM under a key of the IdP, deterministically: the nonce is
// an HMAC of the store key, so one session has one SessionIndex (SPs match
// it exactly) and the IdP reads the session back from it without storing
// anything. Service providers learn nothing from it: neither the store key
// (from which the transient NameIDs of the other SPs are derived) nor
// which Sessions belong to one account; a forged or altered index fails
// the GCM tag.

// sessionIndexer seals and opens SessionIndexes.
type sessionIndexer struct {
	aead     cipher.AEAD
	nonceKey []byte
}

const (
	sessionIndexAAD = "trustbroker saml session index v1"
	// maxSessionIndex bounds the SessionIndex read from a LogoutRequest.
	maxSessionIndex = 256
	packHex         = 'h' // store key of 64 hex digits, packed to 32 bytes
	packRaw         = 'r' // any other store key, as it is
)

func newSessionIndexer(key []byte) (sessionIndexer, error) {
	if len(key) < 32 {
		return sessionIndexer{}, errors.New("saml: SessionKey must have at least 32 bytes")
	}
	sub := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(sub("saml-session-index-seal"))
	if err != nil {
		return sessionIndexer{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sessionIndexer{}, err
	}
	return sessionIndexer{aead: aead, nonceKey: sub("saml-session-index-nonce")}, nil
}

func packSessionID(id string) []byte {
	if len(id) == 64 && strings.ToLower(id) == id {
		if b, err := hex.DecodeString(id); err == nil {
			return append([]byte{packHex}, b...)
		}
	}
	return append([]byte{packRaw}, id...)
}

func unpackSessionID(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	switch b[0] {
	case packHex:
		if len(b) == 33 {
			return hex.EncodeToString(b[1:]), true
		}
	case packRaw:
		if len(b) > 1 {
			return string(b[1:]), true
		}
	}
	return "", false
}

func (x sessionIndexer) nonce(pt []byte) []byte {
	m := hmac.New(sha256.New, x.nonceKey)
	m.Write(pt)
	return m.Sum(nil)[:x.aead.NonceSize()]
}

// index is the SessionIndex of the session with store key id.
func (x sessionIndexer) index(id string) string {
	pt := packSessionID(id)
	n := x.nonce(pt)
	return "_" + base64.RawURLEncoding.EncodeToString(x.aead.Seal(n, n, pt, []byte(sessionIndexAAD)))
}

// sessionID is the store key a SessionIndex names, false for anything
// index did not make with this key.
func (x sessionIndexer) sessionID(idx string) (string, bool) {
	if len(idx) > maxSessionIndex || !strings.HasPrefix(idx, "_") {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(idx[1:])
	ns := x.aead.NonceSize()
	if err != nil || len(raw) < ns+x.aead.Overhead()+1 {
		return "", false
	}
	pt, err := x.aead.Open(nil, raw[:ns], raw[ns:], []byte(sessionIndexAAD))
	if err != nil || !hmac.Equal(x.nonce(pt), raw[:ns]) {
		return "", false
	}
	return unpackSessionID(pt)
}
