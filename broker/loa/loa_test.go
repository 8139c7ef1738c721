package loa

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Level
		ok   bool
	}{
		{"low", Low, true},
		{"substantial", Substantial, true},
		{"high", High, true},
		{URIHigh, High, true},
		{URIBSISubstantiell, Substantial, true},
		{"http://bsi.bund.de/eID/LoA/undefined", None, false},
		{"HIGH", None, false},
		{"", None, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if !High.Satisfies(Substantial) || Low.Satisfies(Substantial) {
		t.Error("ordering of levels is wrong")
	}
	if Substantial.URI() != URISubstantial || None.URI() != "" {
		t.Error("URI mapping is wrong")
	}
}
