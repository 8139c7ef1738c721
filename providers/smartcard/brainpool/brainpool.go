// Package brainpool verifies ECDSA signatures on the brainpoolP256r1 curve
// (RFC 5639 §3.4), which Go's crypto/ecdsa and crypto/x509 do not support
// and which the cards of the German health telematics infrastructure (HBA,
// SMC-B, eGK G2.1) and their CAs use.
//
// Verification handles public data only, so the arithmetic is plain
// math/big in affine coordinates. Sign exists for test PKIs: it is not
// constant time and must never hold a production key.
package brainpool

import (
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDP256r1 is the named-curve OID of brainpoolP256r1 (RFC 5639 §4.1).
var OIDP256r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}

// oidECPublicKey is id-ecPublicKey (RFC 5480 §2.1.1).
var oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

func hexInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("brainpool: bad constant " + s)
	}
	return n
}

// Domain parameters of brainpoolP256r1, RFC 5639 §3.4.
var (
	p  = hexInt("A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377")
	a  = hexInt("7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9")
	b  = hexInt("26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6")
	gx = hexInt("8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262")
	gy = hexInt("547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997")
	n  = hexInt("A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7")
)

// coordinate length in bytes
const size = 32

// point is an affine point; inf marks the point at infinity.
type point struct {
	x, y *big.Int
	inf  bool
}

func onCurve(x, y *big.Int) bool {
	if x.Sign() < 0 || x.Cmp(p) >= 0 || y.Sign() < 0 || y.Cmp(p) >= 0 {
		return false
	}
	// y² = x³ + ax + b (mod p)
	l := new(big.Int).Mul(y, y)
	l.Mod(l, p)
	r := new(big.Int).Mul(x, x)
	r.Mul(r, x)
	r.Add(r, new(big.Int).Mul(a, x))
	r.Add(r, b)
	r.Mod(r, p)
	return l.Cmp(r) == 0
}

func add(P, Q point) point {
	if P.inf {
		return Q
	}
	if Q.inf {
		return P
	}
	var lambda *big.Int
	if P.x.Cmp(Q.x) == 0 {
		if new(big.Int).Add(P.y, Q.y).Mod(new(big.Int).Add(P.y, Q.y), p).Sign() == 0 {
			return point{inf: true}
		}
		// doubling: λ = (3x² + a) / 2y
		num := new(big.Int).Mul(P.x, P.x)
		num.Mul(num, big.NewInt(3))
		num.Add(num, a)
		den := new(big.Int).Lsh(P.y, 1)
		den.ModInverse(den.Mod(den, p), p)
		lambda = num.Mul(num, den)
	} else {
		num := new(big.Int).Sub(Q.y, P.y)
		den := new(big.Int).Sub(Q.x, P.x)
		den.ModInverse(den.Mod(den, p), p)
		lambda = num.Mul(num, den)
	}
	lambda.Mod(lambda, p)
	x := new(big.Int).Mul(lambda, lambda)
	x.Sub(x, P.x)
	x.Sub(x, Q.x)
	x.Mod(x, p)
	y := new(big.Int).Sub(P.x, x)
	y.Mul(y, lambda)
	y.Sub(y, P.y)
	y.Mod(y, p)
	return point{x: x, y: y}
}

// mul is double-and-add; it leaks k through timing (public scalars only,
// and the test PKI's throwaway keys).
func mul(P point, k *big.Int) point {
	R := point{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		R = add(R, R)
		if k.Bit(i) == 1 {
			R = add(R, P)
		}
	}
	return R
}

// PublicKey is a brainpoolP256r1 public key.
type PublicKey struct {
	X, Y *big.Int
}

// PrivateKey is a brainpoolP256r1 key pair, for test PKIs only.
type PrivateKey struct {
	PublicKey
	D *big.Int
}

// ScalarBaseMult returns k·G, for tests against published vectors.
func ScalarBaseMult(k []byte) (x, y *big.Int) {
	R := mul(point{x: gx, y: gy}, new(big.Int).SetBytes(k))
	return R.x, R.y
}

// ScalarMult returns k·(x, y), for tests against published vectors.
func ScalarMult(x, y *big.Int, k []byte) (rx, ry *big.Int) {
	R := mul(point{x: x, y: y}, new(big.Int).SetBytes(k))
	return R.x, R.y
}

// ParseUncompressed reads an uncompressed SEC 1 point (04 || X || Y) and
// checks that it lies on the curve.
func ParseUncompressed(data []byte) (*PublicKey, error) {
	if len(data) != 1+2*size || data[0] != 4 {
		return nil, errors.New("brainpool: not an uncompressed point")
	}
	x := new(big.Int).SetBytes(data[1 : 1+size])
	y := new(big.Int).SetBytes(data[1+size:])
	if !onCurve(x, y) {
		return nil, errors.New("brainpool: point not on curve")
	}
	// The cofactor is 1, so every curve point other than infinity has
	// order n; no further subgroup check is needed.
	return &PublicKey{X: x, Y: y}, nil
}

// Bytes is the uncompressed SEC 1 encoding.
func (k *PublicKey) Bytes() []byte {
	out := make([]byte, 1+2*size)
	out[0] = 4
	k.X.FillBytes(out[1 : 1+size])
	k.Y.FillBytes(out[1+size:])
	return out
}

// MarshalPKIX encodes the key as a SubjectPublicKeyInfo (RFC 5480).
func (k *PublicKey) MarshalPKIX() ([]byte, error) {
	var bld cryptobyte.Builder
	bld.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidECPublicKey)
			b.AddASN1ObjectIdentifier(OIDP256r1)
		})
		b.AddASN1BitString(k.Bytes())
	})
	return bld.Bytes()
}

// ParsePKIX reads a SubjectPublicKeyInfo holding a brainpoolP256r1 key.
// ok is false (with a nil error) when the key is of another algorithm or
// curve, so callers can fall back to crypto/x509.
func ParsePKIX(spki []byte) (key *PublicKey, ok bool, err error) {
	in := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var algOID, curve asn1.ObjectIdentifier
	var bits asn1.BitString
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&algOID) {
		return nil, false, errors.New("brainpool: malformed SubjectPublicKeyInfo")
	}
	if !algOID.Equal(oidECPublicKey) || !alg.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
		return nil, false, nil
	}
	if !alg.ReadASN1ObjectIdentifier(&curve) || !alg.Empty() || !curve.Equal(OIDP256r1) {
		return nil, false, nil
	}
	if !seq.ReadASN1BitString(&bits) || !seq.Empty() || bits.BitLength%8 != 0 {
		return nil, true, errors.New("brainpool: malformed public key")
	}
	key, err = ParseUncompressed(bits.Bytes)
	return key, true, err
}

// hashToInt converts a digest to an integer modulo the group order as in
// SEC 1 §4.1.4 step 5 (leftmost bits, n has 256 bits).
func hashToInt(digest []byte) *big.Int {
	if len(digest) > size {
		digest = digest[:size]
	}
	e := new(big.Int).SetBytes(digest)
	if excess := len(digest)*8 - n.BitLen(); excess > 0 {
		e.Rsh(e, uint(excess))
	}
	return e
}

// Verify checks an ECDSA signature (r, s) over digest (SEC 1 §4.1.4).
func Verify(pub *PublicKey, digest []byte, r, s *big.Int) bool {
	if pub == nil || pub.X == nil || pub.Y == nil || !onCurve(pub.X, pub.Y) {
		return false
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(n) >= 0 || s.Cmp(n) >= 0 {
		return false
	}
	e := hashToInt(digest)
	w := new(big.Int).ModInverse(s, n)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, n)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, n)
	X := add(mul(point{x: gx, y: gy}, u1), mul(point{x: pub.X, y: pub.Y}, u2))
	if X.inf {
		return false
	}
	v := new(big.Int).Mod(X.x, n)
	return v.Cmp(r) == 0
}

// VerifyASN1 checks a DER-encoded ECDSA-Sig-Value (RFC 3279 §2.2.3) over digest.
func VerifyASN1(pub *PublicKey, digest, sig []byte) bool {
	var r, s big.Int
	in := cryptobyte.String(sig)
	var inner cryptobyte.String
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return false
	}
	return Verify(pub, digest, &r, &s)
}

// GenerateKey makes a key pair from rand. For test PKIs only.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	buf := make([]byte, size+8)
	if _, err := io.ReadFull(rand, buf); err != nil {
		return nil, err
	}
	// d in [1, n-1]; the 64 extra bits make the bias negligible.
	d := new(big.Int).SetBytes(buf)
	d.Mod(d, new(big.Int).Sub(n, big.NewInt(1)))
	d.Add(d, big.NewInt(1))
	x, y := ScalarBaseMult(d.Bytes())
	return &PrivateKey{PublicKey: PublicKey{X: x, Y: y}, D: d}, nil
}

// SignASN1 signs digest and returns a DER ECDSA-Sig-Value. Not constant
// time: for test PKIs only.
func SignASN1(rand io.Reader, priv *PrivateKey, digest []byte) ([]byte, error) {
	e := hashToInt(digest)
	for {
		kb := make([]byte, size+8)
		if _, err := io.ReadFull(rand, kb); err != nil {
			return nil, err
		}
		k := new(big.Int).SetBytes(kb)
		k.Mod(k, n)
		if k.Sign() == 0 {
			continue
		}
		R := mul(point{x: gx, y: gy}, k)
		r := new(big.Int).Mod(R.x, n)
		if r.Sign() == 0 {
			continue
		}
		s := new(big.Int).Mul(r, priv.D)
		s.Add(s, e)
		s.Mul(s, new(big.Int).ModInverse(k, n))
		s.Mod(s, n)
		if s.Sign() == 0 {
			continue
		}
		var bld cryptobyte.Builder
		bld.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(r)
			b.AddASN1BigInt(s)
		})
		return bld.Bytes()
	}
}

// Digest256 is SHA-256, the hash gematik's certificates use with this curve.
func Digest256(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
