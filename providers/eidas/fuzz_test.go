package eidas_test

import (
	"testing"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

// FuzzResponse feeds mutated responses to Complete: never a panic, every
// refusal has a public part, and only the genuine person logs in, at most
// once (the assertion is signed and encrypted; replays are refused).
func FuzzResponse(f *testing.F) {
	fx := newFixture(f, "ec", "ec", nil)
	req := fx.request("tx1", allClaims, loa.Substantial)
	state, nr, _ := fx.begin(f, req)
	genuine, err := fx.node.Answer(nr, eidassim.PersonByKey("at-max"), eidassim.Normal)
	if err != nil {
		f.Fatal(err)
	}
	s := fx.node.DefaultSpec(nr, eidassim.PersonByKey("es-carmen"))
	s.Encrypt, s.SignResponse = false, false
	clear, _ := fx.node.Build(s)
	f.Add(genuine)
	f.Add(clear)
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))
	logins := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := fx.complete(req, state, data)
		if err == nil {
			logins++
			if id.Subject != "AT/DE/4f1c5e0b2a8d4e7f9c3b6a1d0e2f4a5b" || logins > 1 {
				t.Fatalf("login %d from a fuzzed response: %+v", logins, id)
			}
		}
		if err != nil {
			if _, ok := providers.PublicError(err); !ok {
				t.Fatalf("error without a public part: %v", err)
			}
		}
	})
}
