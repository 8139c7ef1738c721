package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Derive returns a 32-byte key for one purpose (CSRF tokens, pairwise
// subjects), derived from the master key with HKDF-SHA256 (RFC 5869) and the
// purpose as info, so no two uses share key material.
func (mk MasterKey) Derive(purpose string) ([]byte, error) {
	if !mk.set {
		return nil, errors.New("keys: no master key")
	}
	k, err := hkdf.Key(sha256.New, mk.key[:], nil, "trustbroker/v1/"+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive %s: %w", purpose, err)
	}
	return k, nil
}
