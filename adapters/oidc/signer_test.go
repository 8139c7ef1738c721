package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"

	josev3 "github.com/go-jose/go-jose/v3"

	"github.com/trustbroker/trustbroker/broker/keys"
)

// TestSignCompact: the hand-built compact JWS verifies with go-jose, for
// both algorithms, and carries the header and claims given.
func TestSignCompact(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg string
		key crypto.Signer
	}{{keys.ES256, ec}, {keys.RS256, rs}} {
		t.Run(tc.alg, func(t *testing.T) {
			sg := &keys.Signer{KID: "kid-1", Alg: tc.alg, Key: tc.key}
			claims := &atClaims{Issuer: "https://op.example", Subject: "svc", Audience: []string{"svc"},
				ClientID: "svc", IssuedAt: 1700000000, Expiry: 1700000600, JTI: "j", Scope: "api <&>",
				Cnf: map[string]string{"jkt": "abc"}}
			raw, err := signCompact(sg, map[string]any{"alg": tc.alg, "kid": "kid-1", "typ": "at+jwt"}, claims)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := josev3.ParseSigned(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(jws.Signatures) != 1 {
				t.Fatalf("%d signatures", len(jws.Signatures))
			}
			h := jws.Signatures[0].Header
			if h.Algorithm != tc.alg || h.KeyID != "kid-1" || h.ExtraHeaders["typ"] != "at+jwt" {
				t.Fatalf("header %+v", h)
			}
			payload, err := jws.Verify(tc.key.Public())
			if err != nil {
				t.Fatalf("go-jose does not verify it: %v", err)
			}
			var got atClaims
			if err := json.Unmarshal(payload, &got); err != nil {
				t.Fatal(err)
			}
			if got.Scope != claims.Scope || got.Cnf["jkt"] != "abc" || got.Expiry != claims.Expiry {
				t.Fatalf("claims %+v", got)
			}
			if strings.Contains(string(payload), "auth_time") || strings.Contains(string(payload), "acr") {
				t.Fatalf("empty user claims present: %s", payload)
			}
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if _, err := jws.Verify(other.Public()); err == nil {
				t.Fatal("verified with another key")
			}
			// ES256 nonces are derived (RFC 6979): the same input signs
			// the same; a changed claim signs differently.
			again, _ := signCompact(sg, map[string]any{"alg": tc.alg, "kid": "kid-1", "typ": "at+jwt"}, claims)
			if again != raw {
				t.Fatal("signing is not deterministic")
			}
			claims.JTI = "k"
			if third, _ := signCompact(sg, map[string]any{"alg": tc.alg, "kid": "kid-1", "typ": "at+jwt"}, claims); third[strings.LastIndexByte(third, '.'):] == raw[strings.LastIndexByte(raw, '.'):] {
				t.Fatal("another token got the same signature")
			}
		})
	}
	if _, err := signCompact(&keys.Signer{Alg: "HS256", Key: ec}, map[string]any{}, claimsOf("x")); err == nil {
		t.Fatal("unsupported algorithm signed")
	}
}

func claimsOf(sub string) *atClaims { return &atClaims{Subject: sub} }

// TestECDSARaw: DER signatures become fixed-size r || s; malformed ones
// are refused.
func TestECDSARaw(t *testing.T) {
	// SEQUENCE { INTEGER 0x00 0x80 (leading zero), INTEGER 0x01 }
	der := []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01}
	out, err := ecdsaRaw(der, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 64 || out[31] != 0x80 || out[63] != 0x01 || out[0] != 0 || out[32] != 0 {
		t.Fatalf("raw %x", out)
	}
	long := append([]byte{0x30, 0x25, 0x02, 0x21}, make([]byte, 33)...)
	long[4] = 0x01 // 33 significant bytes: too large for P-256
	long = append(long, 0x02, 0x00)
	long[1] = byte(len(long) - 2)
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"not a sequence": {0x02, 0x01, 0x01},
		"one integer":    {0x30, 0x03, 0x02, 0x01, 0x01},
		"trailing data":  append(append([]byte{}, der...), 0x00),
		"extra element":  {0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01},
		"truncated":      der[:len(der)-1],
		"too large":      long,
	} {
		if _, err := ecdsaRaw(bad, 32); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAccessTokenHeader: the cached header is the bytes json.Marshal gives
// for the header map, and follows the key on rotation.
func TestAccessTokenHeader(t *testing.T) {
	a := &accessTokens{}
	for _, kid := range []string{"kid-1", "kid-1", "kid-2", "kid-1"} {
		sg := &keys.Signer{KID: kid, Alg: keys.ES256}
		want, _ := json.Marshal(map[string]any{"alg": keys.ES256, "kid": kid, "typ": "at+jwt"})
		if got := a.header(sg); got != base64.RawURLEncoding.EncodeToString(want) {
			t.Fatalf("header of %s = %s, want %s", kid, got, want)
		}
	}
}

// bigSigner returns a fixed "signature" of the size an 8192-bit RSA key
// gives (the largest keys.rsa_bits allows).
type bigSigner struct{ crypto.Signer }

func (bigSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, 1024)
	for i := range sig {
		sig[i] = byte(i)
	}
	return sig, nil
}

// TestSignCompactLongSignature: a signature too long for the stack buffer
// of signEncoded is encoded whole.
func TestSignCompactLongSignature(t *testing.T) {
	raw, err := signCompact(&keys.Signer{KID: "k", Alg: keys.RS256, Key: bigSigner{}}, map[string]any{"alg": keys.RS256}, claimsOf("x"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(signaturePart(raw))
	if err != nil || len(sig) != 1024 || sig[1023] != byte(1023%256) {
		t.Fatalf("signature of %d bytes (%v)", len(sig), err)
	}
	if strings.Count(raw, ".") != 2 {
		t.Fatalf("not a compact JWS: %s", raw)
	}
}
