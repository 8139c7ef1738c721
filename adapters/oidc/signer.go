package oidc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/trustbroker/trustbroker/broker/keys"
)

// keySigner signs and verifies JWTs with the broker's cached keys. The
// algorithm follows the `kid` header the session carries (the active key of
// the client's id_token_signed_response_alg); verification accepts every
// published key, so tokens signed before a rotation still verify.
type keySigner struct {
	keys *keys.Manager
	// defaultAlg signs when no kid is given.
	defaultAlg string
}

var _ jwt.Signer = (*keySigner)(nil)

// algFor picks the algorithm of the kid in the header, if it names a key.
func (s *keySigner) algFor(header map[string]any) string {
	if kid, _ := header["kid"].(string); kid != "" {
		if _, alg, ok := s.keys.PublicKey(kid); ok {
			return alg
		}
	}
	return s.defaultAlg
}

// Generate signs claims with the active key of the header's algorithm.
func (s *keySigner) Generate(_ context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("oidc: claims or header missing")
	}
	h := header.ToMap()
	sg, err := s.keys.Signer(s.algFor(h))
	if err != nil {
		return "", "", err
	}
	tok := jwt.NewWithClaims(josev3.SignatureAlgorithm(sg.Alg), claims)
	for k, v := range h {
		tok.Header[k] = v
	}
	tok.Header["kid"] = sg.KID
	raw, err := tok.SignedString(sg.Key)
	if err != nil {
		return "", "", fmt.Errorf("oidc: sign: %w", err)
	}
	return raw, signaturePart(raw), nil
}

// Decode verifies the signature with the published key the token names
// and returns the token; claim validation errors (e.g. expiry) come back
// as *jwt.ValidationError, as fosite expects for id_token_hint.
func (s *keySigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pub, alg, ok := s.keys.PublicKey(kid)
		if !ok {
			return nil, errors.New("oidc: token signed by an unknown key")
		}
		if string(t.Method) != alg {
			return nil, fmt.Errorf("oidc: token algorithm %q does not match key %s", t.Method, kid)
		}
		return pub, nil
	})
}

// Validate verifies a token and returns its signature part.
func (s *keySigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return signaturePart(token), nil
}

// Hash is SHA-256 (at_hash, c_hash for RS256/ES256).
func (s *keySigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSignature returns the signature part of a compact JWS.
func (s *keySigner) GetSignature(_ context.Context, token string) (string, error) {
	if strings.Count(token, ".") != 2 {
		return "", errors.New("oidc: not a compact JWS")
	}
	return signaturePart(token), nil
}

// GetSigningMethodLength is the SHA-256 size.
func (s *keySigner) GetSigningMethodLength(context.Context) int { return sha256.Size }

func signaturePart(token string) string {
	return token[strings.LastIndexByte(token, '.')+1:]
}
