package eidas_test

import (
	"encoding/base64"
	"testing"

	"github.com/trustbroker/trustbroker/providers/eidas"
)

func TestDecodeCurrentAddress(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	// The example of the eIDAS SAML Attribute Profile: prefixed elements,
	// no namespace declaration, no root.
	a, err := eidas.DecodeCurrentAddress(b64(`<eidas-natural:LocatorDesignator>22</eidas-natural:LocatorDesignator>
<eidas-natural:Thoroughfare>Arcacia Avenue</eidas-natural:Thoroughfare>
<eidas-natural:PostName>London</eidas-natural:PostName>
<eidas-natural:PostCode>SW1A 1AA</eidas-natural:PostCode>`))
	if err != nil {
		t.Fatal(err)
	}
	c := a.Claim()
	if c["street_address"] != "Arcacia Avenue 22" || c["locality"] != "London" || c["postal_code"] != "SW1A 1AA" ||
		c["formatted"] != "Arcacia Avenue 22\nSW1A 1AA London" {
		t.Fatalf("%v", c)
	}
	// Unprefixed, other spellings, a round trip of the encoder.
	a, err = eidas.DecodeCurrentAddress(b64(`<FullAddress>Hauptplatz 1, 8010 Graz</FullAddress><AdminUnitFirstline>AT</AdminUnitFirstline>`))
	if err != nil || a.FullCvaddress != "Hauptplatz 1, 8010 Graz" || a.AdminunitFirstline != "AT" {
		t.Fatalf("%+v %v", a, err)
	}
	in := &eidas.Address{Thoroughfare: "Rue <&> Neuve", LocatorDesignator: "3", PostCode: "1000", PostName: "Bruxelles"}
	back, err := eidas.DecodeCurrentAddress(eidas.EncodeCurrentAddress(in))
	if err != nil || *back != *in {
		t.Fatalf("round trip %+v %v", back, err)
	}
	for name, bad := range map[string]string{
		"not base64":   "%%%",
		"empty":        "",
		"no elements":  b64("just text"),
		"doctype":      b64(`<!DOCTYPE x [<!ENTITY a "b">]><PostName>&a;</PostName>`),
		"nested":       b64(`<PostName><x>London</x></PostName>`),
		"twice":        b64(`<PostName>A</PostName><PostName>B</PostName>`),
		"unclosed":     b64(`<PostName>London`),
		"only unknown": b64(`<Planet>Earth</Planet>`),
		"too long":     b64("<PostName>" + string(make([]byte, 5000)) + "</PostName>"),
		"text beside":  b64(`evil<PostName>London</PostName>`),
	} {
		if a, err := eidas.DecodeCurrentAddress(bad); err == nil {
			t.Errorf("%s: accepted %+v", name, a)
		}
	}
}

func FuzzCurrentAddress(f *testing.F) {
	f.Add(eidas.EncodeCurrentAddress(&eidas.Address{Thoroughfare: "Calle Mayor", LocatorDesignator: "10", PostName: "Madrid"}))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`<FullAddress>x</FullAddress>`)))
	f.Fuzz(func(t *testing.T, s string) {
		a, err := eidas.DecodeCurrentAddress(s)
		if err != nil {
			return
		}
		if len(a.Claim()) == 0 {
			t.Fatal("decoded address without content")
		}
	})
}
