package eidassim

import (
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

// Person is a specimen person of a member state's notified eID scheme.
// The data is invented (specimen names as the member states use them in
// their own test systems where such exist); no real person is meant.
type Person struct {
	Key     string
	Country string // ISO 3166-1 alpha-2 as eIDAS writes it (EL for Greece)
	// Label in German and English for the tester's page.
	Label [2]string
	// ID is the national part of the PersonIdentifier.
	ID         string
	FirstName  string
	FamilyName string
	// FirstNameNative / FamilyNameNative: the non-Latin original, sent
	// beside the transliteration with LatinScript="false".
	FirstNameNative  string
	FamilyNameNative string
	DateOfBirth      string
	BirthName        string
	PlaceOfBirth     string
	Gender           string
	Address          *eidas.Address
	// SchemeLoA is the level the person's eID scheme is notified at.
	SchemeLoA loa.Level
}

// Persons are the specimen persons, several member states.
var Persons = []Person{
	{Key: "at-max", Country: "AT", ID: "4f1c5e0b2a8d4e7f9c3b6a1d0e2f4a5b",
		Label:     [2]string{"Max Mustermann – Österreich (ID Austria, hoch)", "Max Mustermann – Austria (ID Austria, high)"},
		FirstName: "Max", FamilyName: "Mustermann", DateOfBirth: "1980-01-01", Gender: "Male", PlaceOfBirth: "Wien",
		Address:   &eidas.Address{Thoroughfare: "Musterstraße", LocatorDesignator: "1", PostCode: "1010", PostName: "Wien", AdminunitFirstline: "AT"},
		SchemeLoA: loa.High},
	{Key: "es-carmen", Country: "ES", ID: "99999999R",
		Label:     [2]string{"Carmen Española Española – Spanien (DNIe, hoch)", "Carmen Española Española – Spain (DNIe, high)"},
		FirstName: "Carmen", FamilyName: "Española Española", DateOfBirth: "1965-03-15", Gender: "Female", PlaceOfBirth: "Madrid",
		Address:   &eidas.Address{Thoroughfare: "Calle Mayor", LocatorDesignator: "10", PostCode: "28013", PostName: "Madrid", AdminunitFirstline: "ES"},
		SchemeLoA: loa.High},
	{Key: "it-mario", Country: "IT", ID: "TINIT-RSSMRA75D25H501X",
		Label:     [2]string{"Mario Rossi – Italien (CIE, hoch)", "Mario Rossi – Italy (CIE, high)"},
		FirstName: "Mario", FamilyName: "Rossi", DateOfBirth: "1975-04-25", Gender: "Male", PlaceOfBirth: "Roma",
		SchemeLoA: loa.High},
	{Key: "el-eleni", Country: "EL", ID: "GR-0123456789",
		Label:     [2]string{"Eleni Papadopoulou (Ελένη Παπαδοπούλου) – Griechenland (substanziell)", "Eleni Papadopoulou (Ελένη Παπαδοπούλου) – Greece (substantial)"},
		FirstName: "Eleni", FamilyName: "Papadopoulou", FirstNameNative: "Ελένη", FamilyNameNative: "Παπαδοπούλου",
		DateOfBirth: "1990-06-06", Gender: "Female", BirthName: "Georgiou", SchemeLoA: loa.Substantial},
	{Key: "be-marie", Country: "BE", ID: "85073100145",
		Label:     [2]string{"Marie Dupont – Belgien (eID, hoch, ohne Adresse)", "Marie Dupont – Belgium (eID, high, no address)"},
		FirstName: "Marie", FamilyName: "Dupont", DateOfBirth: "1985-07-31", BirthName: "Martin", SchemeLoA: loa.High},
	{Key: "se-karin", Country: "SE", ID: "199006062388",
		Label:     [2]string{"Karin Andersson – Schweden (Freja eID+, substanziell)", "Karin Andersson – Sweden (Freja eID+, substantial)"},
		FirstName: "Karin", FamilyName: "Andersson", DateOfBirth: "1990-06-06", Gender: "Female",
		Address:   &eidas.Address{Thoroughfare: "Storgatan", LocatorDesignator: "5", PostCode: "111 51", PostName: "Stockholm", AdminunitFirstline: "SE"},
		SchemeLoA: loa.Substantial},
}

// PersonByKey finds a specimen person.
func PersonByKey(key string) *Person {
	for i := range Persons {
		if Persons[i].Key == key {
			return &Persons[i]
		}
	}
	return nil
}
