package eid

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// The TLS-2 pre-shared key of a login is kept in the login transaction
// until the eID client fetches its TC token, sealed (AES-256-GCM) under a
// key derived from the login's activation secret. The secret is only in
// the endpoint URLs the browser and the eID client hold; the transaction
// keeps its SHA-256. So a copy of the database (a backup, a replica, a
// read-only SQL injection) holds no usable PSK of a running login, while
// the TC token endpoint, which receives the secret, can open it.

const pskInfo = "trustbroker eid tls-2 psk v1"

func pskAEAD(secret string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, pskInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealPSK encrypts the PSK key under the activation secret, bound to the
// PSK id and the eID session (as associated data).
func sealPSK(secret, pskID, session, key string) (string, error) {
	aead, err := pskAEAD(secret)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(key)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(key), pskAAD(pskID, session))), nil
}

// openPSK reverses sealPSK.
func openPSK(secret, pskID, session, sealed string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", errors.New("eid: sealed PSK is not base64url")
	}
	aead, err := pskAEAD(secret)
	if err != nil {
		return "", err
	}
	if len(b) < aead.NonceSize()+aead.Overhead() {
		return "", errors.New("eid: sealed PSK too short")
	}
	key, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], pskAAD(pskID, session))
	if err != nil {
		return "", errors.New("eid: sealed PSK does not open with this secret")
	}
	return string(key), nil
}

func pskAAD(pskID, session string) []byte {
	return []byte(pskID + "\x00" + session)
}
