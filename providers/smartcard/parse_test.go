package smartcard

import (
	"encoding/asn1"
	"testing"

	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

func TestParseAdmissionRoundTrip(t *testing.T) {
	der := testpki.AdmissionDER(testpki.Admission{ProfessionItem: "Ärztin/Arzt",
		ProfessionOID: asn1.ObjectIdentifier{1, 2, 276, 0, 76, 4, 30}, RegistrationNumber: "1-HBA-1"})
	a, err := ParseAdmission(der)
	if err != nil {
		t.Fatal(err)
	}
	pi, ok := a.First()
	if !ok || pi.Items[0] != "Ärztin/Arzt" || pi.OIDs[0].String() != "1.2.276.0.76.4.30" || pi.RegistrationNumber != "1-HBA-1" {
		t.Fatalf("%+v", pi)
	}
	for _, bad := range [][]byte{nil, {0x30}, {0x30, 0x00, 0x00}, {0x30, 0x02, 0x04, 0x00}, append(der, 0)} {
		if _, err := ParseAdmission(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
}

func TestParseQCStatements(t *testing.T) {
	type st struct {
		ID   asn1.ObjectIdentifier
		Info asn1.RawValue `asn1:"optional"`
	}
	leg, _ := asn1.Marshal([]string{"DE"})
	der, _ := asn1.Marshal([]st{{ID: oidQcCompliance}, {ID: oidQcSSCD}, {ID: oidQcCClegislation, Info: asn1.RawValue{FullBytes: leg}}})
	qc, err := ParseQCStatements(der)
	if err != nil || !qc.Compliance || !qc.SSCD || len(qc.Legislation) != 1 || qc.Legislation[0] != "DE" {
		t.Fatalf("%+v %v", qc, err)
	}
	if _, err := ParseQCStatements(append(der, 1)); err == nil {
		t.Fatal("trailing data accepted")
	}
}

func FuzzParseAdmission(f *testing.F) {
	f.Add([]byte{0x30, 0x02, 0x30, 0x00})
	f.Add([]byte{0x30, 0x0b, 0xa4, 0x00, 0x30, 0x07, 0x30, 0x05, 0x30, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		a, err := ParseAdmission(der)
		if err == nil && len(a.Admissions) > maxItems {
			t.Fatal("unbounded")
		}
	})
}

func FuzzParseQCStatements(f *testing.F) {
	f.Add([]byte{0x30, 0x08, 0x30, 0x06, 0x06, 0x04, 0x04, 0x00, 0x8e, 0x46})
	f.Fuzz(func(t *testing.T, der []byte) {
		qc, err := ParseQCStatements(der)
		if err == nil && len(qc.IDs) > maxItems {
			t.Fatal("unbounded")
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		_, _ = ParseCertificate(der)
	})
}
