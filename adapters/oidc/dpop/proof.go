package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// maxProofLen bounds the DPoP header value; an RSA-4096 proof is
	// about 2 KiB.
	maxProofLen = 8192
	// minRSABits is the smallest RSA modulus accepted in a proof key.
	minRSABits = 2048
	// maxUnix is 9999-12-31T23:59:59Z, the latest iat considered.
	maxUnix = 253402300799
	// maxJTILen bounds the jti claim.
	maxJTILen = 256
	// typDPoP is the explicit type of RFC 9449 §4.2.
	typDPoP = "dpop+jwt"

	cryptoSHA256 = crypto.SHA256
)

// privateJWKMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2); a proof's jwk
// must have none of them (RFC 9449 §4.3 step 7).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// refusedHeaders are JOSE header parameters a proof must not carry: crit
// and b64 change how the JWS is processed, and jku, x5u and x5c name keys
// other than the jwk that RFC 9449 §4.2 makes the only proof key.
var refusedHeaders = []string{"crit", "b64", "jku", "x5u", "x5c"}

// verifySignature applies RFC 9449 §4.3 steps 2 and 4–7: one well-formed
// compact JWS, typ dpop+jwt, an allowed asymmetric alg, a public jwk
// matching the alg, and a signature that verifies with it. It returns the
// key and the verified payload.
//
// The header is read twice: once here, to refuse early with a precise
// description, and once by go-jose, whose reading is the one acted on.
// The first reading may only refuse; where the two disagree the proof is
// refused.
func (v *Verifier) verifySignature(compact string) (jose.JSONWebKey, []byte, error) {
	var none jose.JSONWebKey
	hdrPart, err := splitCompact(compact)
	if err != nil {
		return none, nil, err
	}
	alg, err := v.precheckHeader(hdrPart)
	if err != nil {
		return none, nil, err
	}
	jws, err := jose.ParseSignedCompact(compact, v.joseAlgs)
	if err != nil {
		return none, nil, invalidProof("the DPoP proof is not a well-formed JWS", err)
	}
	h := jws.Signatures[0].Header
	if h.Algorithm != alg || !isDPoPType(h.ExtraHeaders[jose.HeaderType]) {
		return none, nil, invalidProof("the DPoP proof header is ambiguous", nil)
	}
	if h.JSONWebKey == nil {
		return none, nil, invalidProof("the DPoP proof has no jwk header", nil)
	}
	key := *h.JSONWebKey
	if err := checkKey(alg, key); err != nil {
		return none, nil, invalidProof("the jwk header does not fit alg", err)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return none, nil, invalidProof("the DPoP proof signature does not verify with its jwk", err)
	}
	return key, payload, nil
}

// splitCompact checks the shape of a JWS in compact serialisation (RFC
// 7515 §7.1) — three base64url parts, the first two non-empty — and
// returns the protected header part. This refuses the JSON serialisation
// and JWE (five parts) before any decoding.
func splitCompact(s string) (string, error) {
	if s == "" {
		return "", invalidProof("the DPoP header is empty", nil)
	}
	if len(s) > maxProofLen {
		return "", invalidProof("the DPoP proof is too long", nil)
	}
	for i := 0; i < len(s); i++ {
		if !base64URLByte(s[i]) && s[i] != '.' {
			return "", invalidProof("the DPoP proof is not a compact JWS", nil)
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", invalidProof("the DPoP proof is not a compact JWS", nil)
	}
	return parts[0], nil
}

func base64URLByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// precheckHeader decodes the protected header and checks typ, alg, jwk and
// the refused parameters, returning alg.
func (v *Verifier) precheckHeader(part string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return "", invalidProof("the DPoP proof header is not base64url", err)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil || h == nil {
		return "", invalidProof("the DPoP proof header is not a JSON object", err)
	}
	var typ, alg string
	if json.Unmarshal(h["typ"], &typ) != nil || !isDPoPType(typ) {
		return "", invalidProof("the DPoP proof typ is not dpop+jwt", nil)
	}
	if json.Unmarshal(h["alg"], &alg) != nil || alg == "" {
		return "", invalidProof("the DPoP proof has no alg", nil)
	}
	if !slices.Contains(v.algs, alg) {
		return "", invalidProof("the DPoP proof alg "+excerpt(alg)+" is not accepted", nil)
	}
	for _, name := range refusedHeaders {
		if _, ok := h[name]; ok {
			return "", invalidProof("the DPoP proof header has "+name+", which is not accepted", nil)
		}
	}
	return alg, checkJWKMembers(h["jwk"])
}

// checkJWKMembers refuses a missing jwk and one with private members
// (RFC 9449 §4.3 step 7).
func checkJWKMembers(raw json.RawMessage) error {
	if raw == nil {
		return invalidProof("the DPoP proof has no jwk header", nil)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return invalidProof("the jwk header is not a JSON object", err)
	}
	for _, m := range privateJWKMembers {
		if _, ok := members[m]; ok {
			return invalidProof("the jwk header holds private or symmetric key material", nil)
		}
	}
	return nil
}

// isDPoPType accepts the typ of RFC 9449 §4.2, compared as a media type
// (case-insensitive, "application/" optional, RFC 7515 §4.1.9).
func isDPoPType(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	return s == typDPoP || s == "application/"+typDPoP
}

// checkKey refuses a jwk that is not a public key of the family alg
// belongs to, and RSA keys shorter than minRSABits. go-jose has checked
// the curve points and refused weak Ed25519 keys while parsing.
func checkKey(alg string, jwk jose.JSONWebKey) error {
	switch k := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if want := curveFor(alg); want == nil || k.Curve != want {
			return errors.New("EC key for a different algorithm")
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return errors.New("RSA key for a different algorithm")
		}
		if k.N.BitLen() < minRSABits {
			return errors.New("RSA key too short")
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return errors.New("Ed25519 key for a different algorithm")
		}
	default:
		return errors.New("not a supported public key")
	}
	return nil
}

// curveFor is the curve an ECDSA algorithm requires (RFC 7518 §3.4).
func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return nil
}

// claims are the proof claims of RFC 9449 §4.2. Pointers tell a missing
// claim from an empty one.
type claims struct {
	JTI   *string  `json:"jti"`
	HTM   *string  `json:"htm"`
	HTU   *string  `json:"htu"`
	IAT   *float64 `json:"iat"`
	Nonce *string  `json:"nonce"`
	ATH   *string  `json:"ath"`
	// Exp and NBF are not part of RFC 9449 but, when a client sends
	// them, honoured as RFC 7519 §4.1.4–5 demands.
	Exp *float64 `json:"exp"`
	NBF *float64 `json:"nbf"`
}

// parseClaims decodes the verified payload and checks that the required
// claims are there (RFC 9449 §4.3 step 3).
func parseClaims(payload []byte) (*claims, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalidProof("the DPoP proof claims are not a JSON object of the expected types", err)
	}
	for _, m := range []struct {
		name    string
		missing bool
	}{
		{"jti", c.JTI == nil || *c.JTI == ""},
		{"htm", c.HTM == nil || *c.HTM == ""},
		{"htu", c.HTU == nil || *c.HTU == ""},
		{"iat", c.IAT == nil},
	} {
		if m.missing {
			return nil, invalidProof("the DPoP proof has no "+m.name+" claim", nil)
		}
	}
	if len(*c.JTI) > maxJTILen {
		return nil, invalidProof("the DPoP proof jti is too long", nil)
	}
	return &c, nil
}

// checkClaims applies RFC 9449 §4.3 steps 8, 9, 11 and the ath part of 12,
// and returns iat.
func (v *Verifier) checkClaims(c *claims, req Request, target string, now time.Time) (time.Time, error) {
	if *c.HTM != req.Method {
		return time.Time{}, invalidProof("htm "+excerpt(*c.HTM)+" does not match the request method", nil)
	}
	htu, err := normalizeURL(*c.HTU)
	if err != nil {
		return time.Time{}, invalidProof("htu is not an absolute http(s) URI", err)
	}
	if htu != target {
		return time.Time{}, invalidProof("htu does not match the request URI", nil)
	}
	iat, err := v.checkIAT(*c.IAT, now)
	if err != nil {
		return time.Time{}, err
	}
	if err := v.checkExpNBF(c.Exp, c.NBF, now); err != nil {
		return time.Time{}, err
	}
	if err := checkATH(c.ATH, req.AccessToken); err != nil {
		return time.Time{}, err
	}
	return iat, nil
}

// checkIAT applies RFC 9449 §4.3 step 11 and §11.1: iat within
// [now-MaxAge, now+Leeway], both ends included.
func (v *Verifier) checkIAT(f float64, now time.Time) (time.Time, error) {
	iat, ok := numericDate(f)
	if !ok {
		return time.Time{}, invalidProof("iat is out of range", nil)
	}
	if iat.Before(now.Add(-v.maxAge)) {
		return time.Time{}, invalidProof("iat is too far in the past", nil)
	}
	if iat.After(now.Add(v.leeway)) {
		return time.Time{}, invalidProof("iat is in the future", nil)
	}
	return iat, nil
}

// checkExpNBF refuses a proof whose optional exp has passed or whose
// optional nbf lies ahead, allowing Leeway for clock skew (RFC 7519
// §4.1.4–5).
func (v *Verifier) checkExpNBF(exp, nbf *float64, now time.Time) error {
	if exp != nil {
		t, ok := numericDate(*exp)
		if !ok || !now.Before(t.Add(v.leeway)) {
			return invalidProof("the DPoP proof has expired (exp)", nil)
		}
	}
	if nbf != nil {
		t, ok := numericDate(*nbf)
		if !ok || t.After(now.Add(v.leeway)) {
			return invalidProof("the DPoP proof is not yet valid (nbf)", nil)
		}
	}
	return nil
}

// numericDate converts a JWT NumericDate (RFC 7519 §2), which may have a
// fraction, refusing values before 1970 or after 9999.
func numericDate(f float64) (time.Time, bool) {
	if math.IsNaN(f) || f < 0 || f > maxUnix {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// checkATH applies RFC 9449 §4.3 step 12 (first part): with an access
// token the ath claim is required and must be its hash.
func checkATH(ath *string, accessToken string) error {
	if accessToken == "" {
		return nil
	}
	if ath == nil || *ath == "" {
		return invalidProof("the DPoP proof has no ath claim", nil)
	}
	if subtle.ConstantTimeCompare([]byte(*ath), []byte(ATH(accessToken))) != 1 {
		return invalidProof("ath does not match the access token", nil)
	}
	return nil
}
