package eid

import "testing"

func TestMatchKey(t *testing.T) {
	pd := func(given, family, born string) *PersonalData {
		return &PersonalData{GivenNames: given, FamilyNames: family, DateOfBirth: &GeneralDate{DateString: born}}
	}
	erika := MatchKey(pd("ERIKA", "MUSTERMANN", "19640812"))
	if erika == "" {
		t.Fatal("no match key for complete data")
	}
	same := []*PersonalData{
		pd("Erika", "Mustermann", "19640812"),
		pd("  ERIKA ", "MUSTERMANN", "19640812"),
		pd("ERIKA", "  MUSTERMANN\t", "19640812"),
	}
	for i, d := range same {
		if got := MatchKey(d); got != erika {
			t.Errorf("%d: %q, want %q", i, got, erika)
		}
	}
	// NFC and case folding: composed and decomposed umlauts, ß and SS.
	if a, b := MatchKey(pd("J\u00dcRGEN", "GROSS", "19700101")), MatchKey(pd("ju\u0308rgen", "gro\u00df", "19700101")); a != b || a == "" {
		t.Errorf("normalisation: %q vs %q", a, b)
	}
	// Multiple given names keep their order and one space between them.
	if a, b := MatchKey(pd("ANNA  MARIA", "X", "19700101")), MatchKey(pd("Anna Maria", "X", "19700101")); a != b {
		t.Errorf("spaces: %q vs %q", a, b)
	}
	different := []*PersonalData{
		pd("ERIKA", "MUSTERMANN", "19640813"), // another birth date
		pd("ERIKA", "MUSTERFRAU", "19640812"),
		pd("ERIK", "MUSTERMANN", "19640812"),
		pd("MARIA ANNA", "X", "19700101"),
	}
	for i, d := range different {
		if got := MatchKey(d); got == erika || got == "" {
			t.Errorf("%d: %q", i, got)
		}
	}
	// Field boundaries are not ambiguous.
	if MatchKey(pd("A B", "C", "19700101")) == MatchKey(pd("A", "B C", "19700101")) {
		t.Error("names shifted between fields match")
	}
	for i, d := range []*PersonalData{
		nil,
		{GivenNames: "ERIKA", FamilyNames: "MUSTERMANN"},
		pd("", "MUSTERMANN", "19640812"),
		pd("ERIKA", " ", "19640812"),
		pd("ERIKA", "MUSTERMANN", "1964081"),
	} {
		if got := MatchKey(d); got != "" {
			t.Errorf("incomplete %d: %q", i, got)
		}
	}
}
