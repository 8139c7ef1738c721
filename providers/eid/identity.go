package eid

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

// Claim names of the derived results. age_over_N follows the ISO/IEC
// 18013-5 (mDL) convention; place_verified says the place of residence
// lies in the configured community (TR-03130 PlaceVerification).
const (
	ClaimAgeOverPrefix = "age_over_"
	ClaimPlaceVerified = "place_verified"
	// ClaimResidencePermit carries the residence permit's auxiliary
	// conditions (ResidencePermitI); no standard claim exists.
	ClaimResidencePermit = "eid_residence_permit_i"
)

// claimOperations maps the OIDC (and OIDC4IDA) claim names a relying party
// asks for to the eID operations that release them.
var claimOperations = map[string][]string{
	"given_name":          {"GivenNames"},
	"family_name":         {"FamilyNames"},
	"name":                {"GivenNames", "FamilyNames"},
	"birthdate":           {"DateOfBirth"},
	"place_of_birth":      {"PlaceOfBirth"},
	"address":             {"PlaceOfResidence"},
	"nationalities":       {"Nationality"},
	"birth_family_name":   {"BirthName"},
	"title":               {"AcademicTitle"},
	"also_known_as":       {"ArtisticName"},
	ClaimResidencePermit:  {"ResidencePermitI"},
	ClaimPlaceVerified:    {"PlaceVerification"},
	"verified_claims":     {"DocumentType", "IssuingState", "DateOfExpiry"},
	"eid_document_type":   {"DocumentType"},
	"eid_issuing_state":   {"IssuingState"},
	"eid_date_of_expiry":  {"DateOfExpiry"},
	"eid_community_id":    {"CommunityID"},
	"eid_restricted_id_2": {"RestrictedID"},
}

var ageClaimRE = regexp.MustCompile(`^age_over_([1-9][0-9]?)$`)

// UseIDRequest derives the useID request from the requested claims, and
// returns the age and whether a place is verified. The claims
// asked for are REQUIRED (the relying party registered them; the consent
// step later lets the user leave optional ones out), the document data
// behind the OIDC4IDA evidence ALLOWED (the user may deselect them in the
// eID client), RestrictedID always REQUIRED (it is the subject), the rest
// PROHIBITED. Only one age can be verified per useID: the highest asked.
func (s *Settings) UseIDRequest(claims []string) (*UseIDRequest, int, bool) {
	req := &UseIDRequest{}
	ops := &req.UseOperations
	age, place := 0, false
	for _, c := range claims {
		if m := ageClaimRE.FindStringSubmatch(c); m != nil {
			n, _ := strconv.Atoi(m[1])
			age = max(age, n)
			continue
		}
		for _, op := range claimOperations[c] {
			if op == "PlaceVerification" {
				if s.CommunityID == "" {
					continue
				}
				place = true
			}
			ops.Set(op, Required)
		}
	}
	for _, op := range []string{"DocumentType", "IssuingState", "DateOfExpiry"} {
		if ops.Get(op) == "" {
			ops.Set(op, Allowed)
		}
	}
	ops.RestrictedID = Required
	if age > 0 {
		ops.AgeVerification = Required
		req.SetAge(age)
	}
	if place {
		req.SetCommunity(s.CommunityID)
	}
	ops.Fill(Prohibited)
	req.TransactionInfo = s.TransactionInfo
	req.LevelOfAssurance = s.LoARequest
	req.EIDTypeRequest = s.EIDTypes
	return req, age, place
}

// identity builds the broker's Identity from a successful getResult.
func (p *Provider) identity(res *GetResultResponse, st *state, lang string) (*providers.Identity, error) {
	pd := res.PersonalData
	if pd == nil || pd.RestrictedID == nil || pd.RestrictedID.ID == "" || !hexRE.MatchString(pd.RestrictedID.ID) || len(pd.RestrictedID.ID) > 256 {
		return nil, publicError("no_pseudonym", lang,
			"Der Ausweis hat kein dienste- und kartenspezifisches Kennzeichen übermittelt. Bitte erlauben Sie in der Ausweis-App die Übermittlung aller Pflichtangaben.",
			"The ID card did not release its pseudonym. Please allow all mandatory data in the ID app.", nil)
	}
	now := p.now()
	attrs := map[string]any{}
	set := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			attrs[k] = v
		}
	}
	set("given_name", pd.GivenNames)
	set("family_name", pd.FamilyNames)
	if pd.GivenNames != "" && pd.FamilyNames != "" {
		attrs["name"] = strings.TrimSpace(pd.GivenNames) + " " + strings.TrimSpace(pd.FamilyNames)
	}
	if pd.DateOfBirth != nil {
		if b := Birthdate(*pd.DateOfBirth); b != "" {
			attrs["birthdate"] = b
		}
	}
	if pb := placeOfBirth(pd.PlaceOfBirth); pb != nil {
		attrs["place_of_birth"] = pb
	}
	if a := address(pd.PlaceOfResidence); a != nil {
		attrs["address"] = a
	}
	if n := strings.TrimSpace(pd.Nationality); n != "" {
		attrs["nationalities"] = []string{ICAOToAlpha3(n)}
	}
	set("birth_family_name", pd.BirthName)
	set("title", pd.AcademicTitle)
	set("also_known_as", pd.ArtisticName)
	set(ClaimResidencePermit, pd.ResidencePermitI)
	set("eid_document_type", pd.DocumentType)
	set("eid_issuing_state", pd.IssuingState)
	set("eid_date_of_expiry", pd.DateOfExpiry)
	set("eid_community_id", pd.CommunityID)
	if st.Age > 0 && res.FulfilsAgeVerification != nil {
		attrs[ClaimAgeOverPrefix+strconv.Itoa(st.Age)] = res.FulfilsAgeVerification.FulfilsRequest
	}
	if st.Place && res.FulfilsPlaceVerification != nil {
		attrs[ClaimPlaceVerified] = res.FulfilsPlaceVerification.FulfilsRequest
	}
	level := p.s.LoA
	if res.LevelOfAssuranceResult != "" {
		// The eID-Server says what the document reached (a Smart-eID may
		// reach less than the card): never more than configured.
		got, ok := loaFromURI(res.LevelOfAssuranceResult)
		if !ok {
			return nil, publicError("loa_unknown", lang,
				"Das Vertrauensniveau des Ausweises ist unbekannt.", "The ID's level of assurance is unknown.", nil)
		}
		level = min(level, got)
	}
	return &providers.Identity{
		Subject:    strings.ToLower(pd.RestrictedID.ID),
		Attributes: attrs,
		LoA:        level,
		// RFC 8176: a smart card (the chip) unlocked with a PIN, two
		// factors (possession and knowledge).
		AMR:      []string{"sc", "pin", "mfa"},
		AuthTime: now,
		Evidence: p.evidence(pd, level, now, st.Session),
		MatchKey: MatchKey(pd),
	}, nil
}

// MatchKey identifies the person across cards (a renewed card has a new
// RestrictedID): the verified given names, family names and date of birth,
// each in Unicode NFC, case-folded, with runs of white space collapsed to
// one space, joined by NUL. Empty when any of them was not released: the
// broker then offers no linking.
func MatchKey(pd *PersonalData) string {
	if pd == nil || pd.DateOfBirth == nil {
		return ""
	}
	given, family, born := normalizeName(pd.GivenNames), normalizeName(pd.FamilyNames), Birthdate(*pd.DateOfBirth)
	if given == "" || family == "" || born == "" {
		return ""
	}
	return given + "\x00" + family + "\x00" + born
}

// normalizeName: NFC, full case folding (a Caser is stateful: one per
// call), NFC again, white space collapsed.
func normalizeName(s string) string {
	folded := norm.NFC.String(cases.Fold().String(norm.NFC.String(s)))
	return strings.Join(strings.Fields(folded), " ")
}

// evidence expresses the identification in OpenID Connect for Identity
// Assurance 1.0 (DOMAIN.md §4.2).
//
// Choice: trust framework "eidas" with assurance level from the identity
// (the German eID is notified under eIDAS at level high), and one evidence
// of type "document" with check method "vcrypt": the eID-Server verified
// the chip of the identity document cryptographically (passive and chip
// authentication, expiry, black list), which is a check of a document, not
// the lookup of an electronic record in a register. document_details
// carries the document type, issuing state and expiry as the card released
// them. "de_aml" would be the framework for GwG identifications; it needs
// the relying party's AML process and is therefore not claimed here.
func (p *Provider) evidence(pd *PersonalData, level loa.Level, now time.Time, session string) *providers.Evidence {
	check := map[string]any{"check_method": "vcrypt", "time": now.UTC().Format(time.RFC3339)}
	if p.s.Operator != "" {
		check["organization"] = p.s.Operator
	}
	doc := map[string]any{"type": DocumentTypeIDA(pd.DocumentType)}
	if pd.IssuingState != "" {
		doc["issuer"] = map[string]any{"country_code": ICAOToAlpha3(pd.IssuingState)}
	}
	if d := Birthdate(GeneralDate{DateString: strings.ReplaceAll(pd.DateOfExpiry, "-", "")}); len(d) == 10 {
		doc["date_of_expiry"] = d
	}
	item, _ := json.Marshal(map[string]any{"type": "document", "check_details": []any{check}, "document_details": doc})
	return &providers.Evidence{
		TrustFramework: "eidas", AssuranceLevel: level.String(), Time: now,
		Items: []json.RawMessage{item},
	}
}

// DocumentTypeIDA maps the card's DocumentType (ICAO 9303 document code)
// to an OIDC4IDA document type: "ID" is the identity card, "AR", "AS",
// "AF" the electronic residence permit (eAT), "UB" the eID card for
// citizens of the EU and the EEA.
func DocumentTypeIDA(dt string) string {
	switch strings.TrimSpace(dt) {
	case "AR", "AS", "AF":
		return "residence_permit"
	case "UB":
		return "de_eid_card_eu"
	default:
		return "idcard"
	}
}

// Birthdate turns GeneralDateType into an OIDC birthdate: YYYY-MM-DD when
// complete; a partial date stays partial (ISO 8601 reduced precision):
// YYYY-MM without a day, YYYY without month and day. Unknown years give "".
func Birthdate(d GeneralDate) string {
	s := d.DateString
	if len(s) != 8 {
		if v := strings.TrimSpace(d.DateValue); len(v) == 10 {
			return v
		}
		return ""
	}
	y, m, dd := s[:4], s[4:6], s[6:8]
	if !allDigits(y) {
		return ""
	}
	if !allDigits(m) || m == "00" {
		return y
	}
	if !allDigits(dd) || dd == "00" {
		return y + "-" + m
	}
	return y + "-" + m + "-" + dd
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// placeOfBirth is OIDC4IDA place_of_birth {country, region, locality}.
func placeOfBirth(p *GeneralPlace) map[string]any {
	if p == nil {
		return nil
	}
	if p.Structured != nil {
		out := map[string]any{}
		putNonEmpty(out, "locality", p.Structured.City)
		putNonEmpty(out, "region", p.Structured.State)
		if c := strings.TrimSpace(p.Structured.Country); c != "" {
			out["country"] = ICAOToAlpha3(c)
		}
		return nilIfEmpty(out)
	}
	if f := strings.TrimSpace(p.Freetext); f != "" {
		return map[string]any{"locality": f}
	}
	return nil
}

// address is the OIDC address claim (OIDC Core §5.1.1).
func address(p *GeneralPlace) map[string]any {
	if p == nil {
		return nil
	}
	if s := p.Structured; s != nil {
		out := map[string]any{}
		putNonEmpty(out, "street_address", s.Street)
		putNonEmpty(out, "locality", s.City)
		putNonEmpty(out, "region", s.State)
		putNonEmpty(out, "postal_code", s.ZipCode)
		if c := strings.TrimSpace(s.Country); c != "" {
			out["country"] = ICAOToAlpha3(c)
		}
		var lines []string
		if s.Street != "" {
			lines = append(lines, strings.TrimSpace(s.Street))
		}
		if l := strings.TrimSpace(strings.TrimSpace(s.ZipCode) + " " + strings.TrimSpace(s.City)); l != "" {
			lines = append(lines, l)
		}
		if len(lines) > 0 {
			out["formatted"] = strings.Join(lines, "\n")
		}
		return nilIfEmpty(out)
	}
	if f := strings.TrimSpace(p.Freetext); f != "" {
		return map[string]any{"formatted": f}
	}
	return nil
}

func putNonEmpty(m map[string]any, k, v string) {
	if v = strings.TrimSpace(v); v != "" {
		m[k] = v
	}
}

func nilIfEmpty(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// ICAOToAlpha3 maps the ICAO 9303 codes that differ from ISO 3166-1
// alpha-3 (Germany is "D") and passes the others through.
func ICAOToAlpha3(c string) string {
	switch c = strings.TrimSpace(c); c {
	case "D":
		return "DEU"
	case "GBD", "GBN", "GBO", "GBP", "GBS":
		return "GBR"
	}
	return c
}

// loaFromURI reads TR-03130's LevelOfAssuranceType (national and eIDAS
// URIs), not the short configuration names.
func loaFromURI(u string) (loa.Level, bool) {
	if !strings.Contains(u, "/LoA/") {
		return loa.None, false
	}
	l, err := loa.Parse(u)
	return l, err == nil
}

// requestedLabels are the operations a page shows as requested.
func requestedLabels(req *UseIDRequest) []string {
	var out []string
	for _, op := range Operations {
		if v := req.UseOperations.Get(op); v == Required || v == Allowed {
			out = append(out, op)
		}
	}
	return slices.Clip(out)
}
