package xmlsig

import (
	"errors"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// derToRS turns an ASN.1 ECDSA signature into the fixed-length r||s form
// of XML-DSig (RFC 4050, RFC 6931 §2.3.6).
func derToRS(der []byte, n int) ([]byte, error) {
	var r, s big.Int
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() {
		return nil, errors.New("xmlsig: malformed ECDSA signature")
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || len(r.Bytes()) > n || len(s.Bytes()) > n {
		return nil, errors.New("xmlsig: ECDSA signature out of range")
	}
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out, nil
}
