package keys

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// ErrNoCertificate: PEM text held no CERTIFICATE block.
var ErrNoCertificate = errors.New("no PEM certificate")

// ParsePEMCertificates returns the certificates of the CERTIFICATE blocks
// in PEM text, in order; blocks of other types (a key next to its
// certificate, say) are skipped. A certificate that does not parse is an
// error, as is text without any (ErrNoCertificate). Callers name the file
// or setting in their error.
func ParsePEMCertificates(raw []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, ErrNoCertificate
	}
	return out, nil
}
