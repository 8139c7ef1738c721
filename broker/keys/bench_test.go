package keys

import (
	"testing"
)

// benchClaims is a typical ID token body; it serialises to about 300 bytes.
var benchClaims = map[string]any{
	"iss":       "https://login.trustbroker.example",
	"sub":       "b3JnLmV4YW1wbGU6YWNjb3VudDo0MmY3YjljMg",
	"aud":       "https://service.example.de/oidc/callback",
	"exp":       1772359200,
	"iat":       1772355600,
	"auth_time": 1772355590,
	"nonce":     "n-0S6_WzA2Mj",
	"acr":       "http://eidas.europa.eu/LoA/high",
	"amr":       []string{"hwk", "pin"},
	"sid":       "08a5019c-17e1-4977-8f42-65a12843ea02",
}

func benchmarkSign(b *testing.B, alg string) {
	f := newFixture(b)
	f.ready(b, alg)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.m.SignJWT(alg, benchClaims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignES256(b *testing.B) { benchmarkSign(b, ES256) }
func BenchmarkSignRS256(b *testing.B) { benchmarkSign(b, RS256) }
