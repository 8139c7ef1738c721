package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	jose "github.com/go-jose/go-jose/v4"
)

// Key sizes.
const (
	// DefaultRSABits is the RSA modulus size of new RS256 keys.
	DefaultRSABits = 3072
	// MinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3
	// requires 2048 bits or more).
	MinRSABits = 2048
)

// useSig is the JWK "use" of every key here (RFC 7517 §4.2).
const useSig = "sig"

// algorithm is what the package needs to know about one JWS alg.
type algorithm struct {
	generate func(r io.Reader, rsaBits int) (crypto.Signer, error)
	// check reports whether pub is a key of the right type and size.
	check func(pub crypto.PublicKey) error
}

func algorithmFor(alg string) (algorithm, error) {
	switch alg {
	case ES256:
		return algorithm{generate: generateP256, check: checkP256}, nil
	case RS256:
		return algorithm{generate: generateRSA, check: checkRSA}, nil
	}
	return algorithm{}, fmt.Errorf("%w %q", ErrUnsupportedAlg, alg)
}

func checkAlgs(algs []string) error {
	for _, alg := range algs {
		if _, err := algorithmFor(alg); err != nil {
			return err
		}
	}
	return nil
}

func generateP256(r io.Reader, _ int) (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), r)
}

func generateRSA(r io.Reader, bits int) (crypto.Signer, error) {
	if bits < MinRSABits {
		return nil, fmt.Errorf("RSA key size %d is below %d bits", bits, MinRSABits)
	}
	return rsa.GenerateKey(r, bits)
}

func checkP256(pub crypto.PublicKey) error {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
		return nil
	}
	return fmt.Errorf("%s needs a P-256 ECDSA key, have %T", ES256, pub)
}

func checkRSA(pub crypto.PublicKey) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%s needs an RSA key, have %T", RS256, pub)
	}
	if n := k.N.BitLen(); n < MinRSABits {
		return fmt.Errorf("%s key has %d bits, below %d", RS256, n, MinRSABits)
	}
	return nil
}

// publicJWK is the public half of priv as a JWK (RFC 7517 §4) with
// "alg", "use":"sig" and, as "kid", its RFC 7638 SHA-256 thumbprint.
func publicJWK(priv crypto.Signer, alg string) (jose.JSONWebKey, error) {
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: useSig}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// parsePublicJWK parses a stored public JWK and checks that it belongs to
// the row: public only, same kid and alg, "use":"sig", right key type.
func parsePublicJWK(raw []byte, kid, alg string) (jose.JSONWebKey, error) {
	a, err := algorithmFor(alg)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(raw, &jwk); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("public JWK: %w", err)
	}
	switch {
	case !jwk.IsPublic():
		return jose.JSONWebKey{}, errors.New("public JWK holds private key material")
	case jwk.KeyID != kid:
		return jose.JSONWebKey{}, fmt.Errorf("public JWK has kid %q", jwk.KeyID)
	case jwk.Algorithm != alg:
		return jose.JSONWebKey{}, fmt.Errorf("public JWK has alg %q", jwk.Algorithm)
	case jwk.Use != useSig:
		return jose.JSONWebKey{}, fmt.Errorf("public JWK has use %q", jwk.Use)
	}
	return jwk, a.check(jwk.Key)
}

// parsePrivate parses a PKCS#8 private key (RFC 5208) and checks that it
// is the private half of pub.
func parsePrivate(der []byte, pub crypto.PublicKey) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	eq, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(pub) {
		return nil, errors.New("private key does not match the public JWK")
	}
	if rk, ok := signer.(*rsa.PrivateKey); ok {
		rk.Precompute()
	}
	return signer, nil
}
