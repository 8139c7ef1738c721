package keys

import (
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// JOSESigner returns a go-jose signer for the active key of alg that sets
// the "kid" header (RFC 7515 §4.1.4) to the key's kid; opts may add
// headers such as "typ". ES256 signatures come out in the JWS form R || S
// (RFC 7518 §3.4). The signer keeps using that key after a rotation:
// fetch a new one per token, or use SignJWT.
func (m *Manager) JOSESigner(alg string, opts *jose.SignerOptions) (jose.Signer, error) {
	s, err := m.Signer(alg)
	if err != nil {
		return nil, err
	}
	sig, err := newJOSESigner(*s, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return sig, nil
}

func newJOSESigner(s Signer, opts *jose.SignerOptions) (jose.Signer, error) {
	key := jose.JSONWebKey{Key: s.Key, KeyID: s.KID, Algorithm: s.Alg}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.Alg), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("jose signer for %s: %w", s.KID, err)
	}
	return sig, nil
}

// SignJWT signs claims, marshalled with encoding/json, as a JWT (RFC 7519)
// in JWS compact serialisation with the active key of alg; the header
// carries "alg", "kid" and "typ":"JWT". The signer comes from the cache.
func (m *Manager) SignJWT(alg string, claims any) (string, error) {
	e, err := m.active(alg)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keys: marshal claims: %w", err)
	}
	jws, err := e.joseSigner.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign with %s: %w", e.info.KID, err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("keys: serialise JWS: %w", err)
	}
	return token, nil
}
