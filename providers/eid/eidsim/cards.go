package eidsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/providers/eid"
)

// Card is a specimen card of the simulator. Every card is fictitious; the
// first one is the public specimen identity of the German ID card.
type Card struct {
	// Key names the card in forms and tests.
	Key string
	// Label describes the card (de, en).
	Label [2]string
	// Data is what the chip holds (RestrictedID is derived, see below).
	Data eid.PersonalData
	// Blocked: the card is on the black list (getResult#deniedDocument).
	Blocked bool
	// Cancels: the user cancels in the eID client.
	Cancels bool
	// Renews names the card this one replaces (same person, new card,
	// therefore a new RestrictedID).
	Renews string
	// NotOnChip lists the operations whose data group the chip lacks
	// (NOTONCHIP): an identity card has no residence permit data, early
	// residence permits no birth name. An empty field of a present data
	// group is released as empty.
	NotOnChip []string
}

// PIN is the PIN of every specimen card.
const PIN = "123456"

// sectorKey stands in for the sector key of the simulator's
// authorization certificate: RestrictedID = HMAC(sectorKey, card), stable
// across restarts like a real pseudonym for one service sector.
var sectorKey = []byte("Trustbroker eID simulator sector (TEST ONLY)")

// RestrictedID is the card's pseudonym for the simulator's sector.
func (c *Card) RestrictedID() string {
	m := hmac.New(sha256.New, sectorKey)
	m.Write([]byte(c.Key))
	return hex.EncodeToString(m.Sum(nil))
}

func structured(street, zip, city, country string) *eid.GeneralPlace {
	return &eid.GeneralPlace{Structured: &eid.Place{Street: street, ZipCode: zip, City: city, Country: country}}
}

func freetext(s string) *eid.GeneralPlace { return &eid.GeneralPlace{Freetext: s} }

func date(s string) *eid.GeneralDate {
	d := &eid.GeneralDate{DateString: s}
	if !strings.Contains(s, " ") {
		d.DateValue = s[:4] + "-" + s[4:6] + "-" + s[6:]
	}
	return d
}

var noPlace = "keine Hauptwohnung in Deutschland"

// idCard: the data groups an identity card lacks.
var idCard = []string{"ResidencePermitI"}

// Cards are the specimen cards, in the order the page shows them.
var Cards = []Card{
	{Key: "erika", Label: [2]string{"Erika Mustermann – Personalausweis (Musterdaten des BMI)", "Erika Mustermann – identity card (the Federal Ministry's specimen)"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2031-10-31",
			GivenNames: "ERIKA", FamilyNames: "MUSTERMANN", AcademicTitle: "", BirthName: "GABLER",
			DateOfBirth: date("19640812"), PlaceOfBirth: freetext("BERLIN"), Nationality: "D",
			PlaceOfResidence: structured("HEIDESTRASSE 17", "51147", "KÖLN", "D"), CommunityID: "02760531500000"}},
	{Key: "erika-renewed", Renews: "erika", Label: [2]string{"Erika Mustermann – neuer Ausweis (erneuert, neues Pseudonym)", "Erika Mustermann – new card (renewed, new pseudonym)"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2036-03-31",
			GivenNames: "ERIKA", FamilyNames: "MUSTERMANN", BirthName: "GABLER",
			DateOfBirth: date("19640812"), PlaceOfBirth: freetext("BERLIN"), Nationality: "D",
			PlaceOfResidence: structured("HEIDESTRASSE 17", "51147", "KÖLN", "D"), CommunityID: "02760531500000"}},
	{Key: "minor", Label: [2]string{"Jonas Mustermann – minderjährig (für Altersprüfungen)", "Jonas Mustermann – a minor (for age checks)"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2032-05-31",
			GivenNames: "JONAS", FamilyNames: "MUSTERMANN", DateOfBirth: date("20120301"),
			PlaceOfBirth: freetext("KÖLN"), Nationality: "D",
			PlaceOfResidence: structured("HEIDESTRASSE 17", "51147", "KÖLN", "D"), CommunityID: "02760531500000"}},
	{Key: "partial", Label: [2]string{"Ansgar Mustermann – Geburtsdatum nur mit Jahr", "Ansgar Mustermann – date of birth with the year only"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2030-01-31",
			GivenNames: "ANSGAR", FamilyNames: "MUSTERMANN", DateOfBirth: date("1955    "),
			PlaceOfBirth: freetext("ISTANBUL (TÜRKEI)"), Nationality: "D",
			PlaceOfResidence: structured("MARKTPLATZ 1", "80331", "MÜNCHEN", "D"), CommunityID: "02760916200000"}},
	{Key: "permit", Label: [2]string{"Ana Musterfrau – elektronischer Aufenthaltstitel", "Ana Musterfrau – electronic residence permit"},
		NotOnChip: []string{"BirthName"}, Data: eid.PersonalData{DocumentType: "AR", IssuingState: "D", DateOfExpiry: "2029-06-30",
			GivenNames: "ANA", FamilyNames: "MUSTERFRAU", DateOfBirth: date("19900415"),
			PlaceOfBirth: freetext("PORTO ALEGRE"), Nationality: "BRA",
			PlaceOfResidence: structured("BAHNHOFSTRASSE 5", "10115", "BERLIN", "D"), CommunityID: "02761100000000",
			ResidencePermitI: "Erwerbstätigkeit gestattet."}},
	{Key: "expired", Label: [2]string{"Max Mustermann – abgelaufener Ausweis", "Max Mustermann – expired card"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2020-01-31",
			GivenNames: "MAX", FamilyNames: "MUSTERMANN", DateOfBirth: date("19700101"),
			PlaceOfBirth: freetext("HAMBURG"), Nationality: "D",
			PlaceOfResidence: structured("ALSTERUFER 2", "20354", "HAMBURG", "D"), CommunityID: "02760200000000"}},
	{Key: "blocked", Blocked: true, Label: [2]string{"Klaus Mustermann – gesperrter Ausweis (Sperrliste)", "Klaus Mustermann – blocked card (black list)"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2033-09-30",
			GivenNames: "KLAUS", FamilyNames: "MUSTERMANN", DateOfBirth: date("19800505"),
			PlaceOfBirth: freetext("DRESDEN"), Nationality: "D",
			PlaceOfResidence: structured("ELBWEG 3", "01067", "DRESDEN", "D"), CommunityID: "02761461200000"}},
	{Key: "cancel", Cancels: true, Label: [2]string{"Peter Mustermann – bricht in der Ausweis-App ab", "Peter Mustermann – cancels in the ID app"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2031-01-31",
			GivenNames: "PETER", FamilyNames: "MUSTERMANN", DateOfBirth: date("19851212"),
			PlaceOfBirth: freetext("BONN"), Nationality: "D",
			PlaceOfResidence: structured("RHEINALLEE 9", "53173", "BONN", "D"), CommunityID: "02760531400000"}},
	{Key: "abroad", Label: [2]string{"Lukas Mustermann – ohne Wohnort in Deutschland", "Lukas Mustermann – no place of residence in Germany"},
		NotOnChip: idCard, Data: eid.PersonalData{DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2034-02-28",
			GivenNames: "LUKAS", FamilyNames: "MUSTERMANN", DateOfBirth: date("19920720"),
			PlaceOfBirth: freetext("FREIBURG IM BREISGAU"), Nationality: "D",
			PlaceOfResidence: &eid.GeneralPlace{NoPlaceInfo: &noPlace}}},
}

// CardByKey finds a specimen card.
func CardByKey(key string) *Card {
	for i := range Cards {
		if Cards[i].Key == key {
			return &Cards[i]
		}
	}
	return nil
}

// Expired reports whether the document's expiry lies before now.
func (c *Card) Expired(now time.Time) bool {
	exp, err := time.Parse("2006-01-02", c.Data.DateOfExpiry)
	return err == nil && now.After(exp.AddDate(0, 0, 1))
}

// OldEnough is the age verification of the chip: with an incomplete date
// of birth the latest possible date counts (the chip compares YYYYMMDD
// with unknown parts as the end of the period).
func (c *Card) OldEnough(age int, now time.Time) bool {
	ds := c.Data.DateOfBirth.DateString
	y, err := strconv.Atoi(strings.TrimSpace(ds[:4]))
	if err != nil {
		return false
	}
	m, err := strconv.Atoi(strings.TrimSpace(ds[4:6]))
	if err != nil || m == 0 {
		m = 12
	}
	d, err := strconv.Atoi(strings.TrimSpace(ds[6:8]))
	if err != nil || d == 0 {
		d = time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	}
	birth := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	return !birth.AddDate(age, 0, 0).After(now)
}

// has reports whether the chip holds the data group of an operation.
func (c *Card) has(op string) bool {
	return !slices.Contains(c.NotOnChip, op)
}

// release copies the released operations' data.
func (c *Card) release(ops *eid.Ops) *eid.PersonalData {
	d, out := &c.Data, &eid.PersonalData{}
	allowed := func(op string) bool { return ops.Get(op) == eid.Allowed }
	if allowed("DocumentType") {
		out.DocumentType = d.DocumentType
	}
	if allowed("IssuingState") {
		out.IssuingState = d.IssuingState
	}
	if allowed("DateOfExpiry") {
		out.DateOfExpiry = d.DateOfExpiry
	}
	if allowed("GivenNames") {
		out.GivenNames = d.GivenNames
	}
	if allowed("FamilyNames") {
		out.FamilyNames = d.FamilyNames
	}
	if allowed("ArtisticName") {
		out.ArtisticName = d.ArtisticName
	}
	if allowed("AcademicTitle") {
		out.AcademicTitle = d.AcademicTitle
	}
	if allowed("DateOfBirth") {
		out.DateOfBirth = d.DateOfBirth
	}
	if allowed("PlaceOfBirth") {
		out.PlaceOfBirth = d.PlaceOfBirth
	}
	if allowed("Nationality") {
		out.Nationality = d.Nationality
	}
	if allowed("BirthName") {
		out.BirthName = d.BirthName
	}
	if allowed("PlaceOfResidence") {
		out.PlaceOfResidence = d.PlaceOfResidence
	}
	if allowed("CommunityID") {
		out.CommunityID = d.CommunityID
	}
	if allowed("ResidencePermitI") {
		out.ResidencePermitI = d.ResidencePermitI
	}
	if allowed("RestrictedID") {
		out.RestrictedID = &eid.RestrictedID{ID: c.RestrictedID()}
	}
	return out
}
