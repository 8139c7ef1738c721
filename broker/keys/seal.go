package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// sealV1 is the first byte of every ciphertext of scheme 1: AES-256-GCM
// under the master key, a random 96-bit nonce, and the version byte
// followed by the kid as additional authenticated data. Layout:
//
//	0x01 || nonce (12 bytes) || GCM ciphertext and tag
//
// Binding the kid means a ciphertext copied into another key's row does not
// decrypt; binding the version means it cannot be reinterpreted under a
// later scheme.
const sealV1 byte = 1

var errNoMasterKey = errors.New("no master key set")

func (mk MasterKey) aead() (cipher.AEAD, error) {
	if !mk.set {
		return nil, errNoMasterKey
	}
	block, err := aes.NewCipher(mk.key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return aead, nil
}

func sealAAD(version byte, kid string) []byte {
	return append([]byte{version}, kid...)
}

// seal encrypts plaintext for the key row kid, drawing the nonce from r.
func (mk MasterKey) seal(r io.Reader, kid string, plaintext []byte) ([]byte, error) {
	aead, err := mk.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealV1
	if _, err := io.ReadFull(r, out[1:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, sealAAD(sealV1, kid)), nil
}

// open decrypts what seal produced for the same kid. Any failure to
// authenticate is ErrMasterKeyMismatch.
func (mk MasterKey) open(kid string, sealed []byte) ([]byte, error) {
	aead, err := mk.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, errors.New("encrypted private key is empty")
	}
	if sealed[0] != sealV1 {
		return nil, fmt.Errorf("encrypted private key has unknown scheme version %d", sealed[0])
	}
	ns := aead.NonceSize()
	if len(sealed) < 1+ns+aead.Overhead() {
		return nil, errors.New("encrypted private key is truncated")
	}
	plain, err := aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealAAD(sealV1, kid))
	if err != nil {
		return nil, ErrMasterKeyMismatch
	}
	return plain, nil
}
