package eid

import (
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"regexp"

	"github.com/beevik/etree"
)

// The eID-Interface of BSI TR-03130-1 §3 (eID-Server, version 2.x).
const (
	// NS is the namespace of the eID types ("eid").
	NS = "http://bsi.bund.de/eID/"
	// NSDSS is the OASIS DSS namespace of dss:Result.
	NSDSS = "urn:oasis:names:tc:dss:1.0:core:schema"
	// SOAPAction values (the WSDL's soapAction of each operation).
	ActionUseID         = "http://bsi.bund.de/eID/useID"
	ActionGetResult     = "http://bsi.bund.de/eID/getResult"
	ActionGetServerInfo = "http://bsi.bund.de/eID/getServerInfo"
)

// Values of OperationsRequestorType / OperationsResponderType /
// OperationsSelectorType.
const (
	Required   = "REQUIRED"
	Allowed    = "ALLOWED"
	Prohibited = "PROHIBITED"
	NotOnChip  = "NOTONCHIP"
)

// Operations are the elements of UseOperations in XSD order (TR-03130-1
// §3.2, OperationsRequestorType).
var Operations = []string{
	"DocumentType", "IssuingState", "DateOfExpiry", "GivenNames", "FamilyNames", "ArtisticName",
	"AcademicTitle", "DateOfBirth", "PlaceOfBirth", "Nationality", "BirthName", "PlaceOfResidence",
	"CommunityID", "ResidencePermitI", "RestrictedID", "AgeVerification", "PlaceVerification",
}

// Ops is one value per operation (UseOperations, OperationsAllowedByUser,
// DocumentVerificationRights). CommunityID is optional in the schema and
// left out when empty; the others are always written.
type Ops struct {
	DocumentType      string `xml:"http://bsi.bund.de/eID/ DocumentType"`
	IssuingState      string `xml:"http://bsi.bund.de/eID/ IssuingState"`
	DateOfExpiry      string `xml:"http://bsi.bund.de/eID/ DateOfExpiry"`
	GivenNames        string `xml:"http://bsi.bund.de/eID/ GivenNames"`
	FamilyNames       string `xml:"http://bsi.bund.de/eID/ FamilyNames"`
	ArtisticName      string `xml:"http://bsi.bund.de/eID/ ArtisticName"`
	AcademicTitle     string `xml:"http://bsi.bund.de/eID/ AcademicTitle"`
	DateOfBirth       string `xml:"http://bsi.bund.de/eID/ DateOfBirth"`
	PlaceOfBirth      string `xml:"http://bsi.bund.de/eID/ PlaceOfBirth"`
	Nationality       string `xml:"http://bsi.bund.de/eID/ Nationality"`
	BirthName         string `xml:"http://bsi.bund.de/eID/ BirthName"`
	PlaceOfResidence  string `xml:"http://bsi.bund.de/eID/ PlaceOfResidence"`
	CommunityID       string `xml:"http://bsi.bund.de/eID/ CommunityID,omitempty"`
	ResidencePermitI  string `xml:"http://bsi.bund.de/eID/ ResidencePermitI"`
	RestrictedID      string `xml:"http://bsi.bund.de/eID/ RestrictedID"`
	AgeVerification   string `xml:"http://bsi.bund.de/eID/ AgeVerification"`
	PlaceVerification string `xml:"http://bsi.bund.de/eID/ PlaceVerification"`
}

// Get returns the value of operation name ("" for an unknown name).
func (o *Ops) Get(name string) string {
	if o == nil {
		return ""
	}
	f := reflect.ValueOf(o).Elem().FieldByName(name)
	if !f.IsValid() {
		return ""
	}
	return f.String()
}

// Set sets operation name; unknown names are ignored.
func (o *Ops) Set(name, value string) {
	f := reflect.ValueOf(o).Elem().FieldByName(name)
	if f.IsValid() {
		f.SetString(value)
	}
}

// Fill sets every empty operation except CommunityID to value.
func (o *Ops) Fill(value string) {
	for _, n := range Operations {
		if n != "CommunityID" && o.Get(n) == "" {
			o.Set(n, value)
		}
	}
}

// PSK is a pre-shared key for TLS-2 (PreSharedKeyType): ID is the TLS
// psk_identity, Key its hexBinary value.
type PSK struct {
	ID  string `xml:"http://bsi.bund.de/eID/ ID"`
	Key string `xml:"http://bsi.bund.de/eID/ Key"`
}

// EIDTypes selects (request: ALLOWED/DENIED) or reports (response: USED)
// the kinds of eID (EIDTypeRequestType / EIDTypeResponseType): the card,
// or a Smart-eID.
type EIDTypes struct {
	CardCertified string `xml:"http://bsi.bund.de/eID/ CardCertified,omitempty"`
	SECertified   string `xml:"http://bsi.bund.de/eID/ SECertified,omitempty"`
	SEEndorsed    string `xml:"http://bsi.bund.de/eID/ SEEndorsed,omitempty"`
	HWKeyStore    string `xml:"http://bsi.bund.de/eID/ HWKeyStore,omitempty"`
}

// Session is SessionType.
type Session struct {
	ID string `xml:"http://bsi.bund.de/eID/ ID"`
}

// Result is dss:Result (TR-03112 result codes).
type Result struct {
	Major   string `xml:"urn:oasis:names:tc:dss:1.0:core:schema ResultMajor"`
	Minor   string `xml:"urn:oasis:names:tc:dss:1.0:core:schema ResultMinor,omitempty"`
	Message string `xml:"urn:oasis:names:tc:dss:1.0:core:schema ResultMessage,omitempty"`
}

// OK reports ResultMajor #ok.
func (r Result) OK() bool { return r.Major == MajorOK }

// UseIDRequest is eid:useIDRequest.
type UseIDRequest struct {
	XMLName       xml.Name `xml:"http://bsi.bund.de/eID/ useIDRequest"`
	UseOperations Ops      `xml:"http://bsi.bund.de/eID/ UseOperations"`
	AgeRequest    *struct {
		Age int `xml:"http://bsi.bund.de/eID/ Age"`
	} `xml:"http://bsi.bund.de/eID/ AgeVerificationRequest,omitempty"`
	PlaceRequest *struct {
		CommunityID string `xml:"http://bsi.bund.de/eID/ CommunityID"`
	} `xml:"http://bsi.bund.de/eID/ PlaceVerificationRequest,omitempty"`
	TransactionInfo  string    `xml:"http://bsi.bund.de/eID/ TransactionInfo,omitempty"`
	LevelOfAssurance string    `xml:"http://bsi.bund.de/eID/ LevelOfAssuranceRequest,omitempty"`
	EIDTypeRequest   *EIDTypes `xml:"http://bsi.bund.de/eID/ EIDTypeRequest,omitempty"`
	PSK              *PSK      `xml:"http://bsi.bund.de/eID/ PSK,omitempty"`
}

// SetAge asks for an age verification against age years.
func (r *UseIDRequest) SetAge(age int) {
	r.AgeRequest = &struct {
		Age int `xml:"http://bsi.bund.de/eID/ Age"`
	}{age}
}

// SetCommunity asks for a place verification against a community id.
func (r *UseIDRequest) SetCommunity(id string) {
	r.PlaceRequest = &struct {
		CommunityID string `xml:"http://bsi.bund.de/eID/ CommunityID"`
	}{id}
}

// UseIDResponse is eid:useIDResponse.
type UseIDResponse struct {
	XMLName            xml.Name `xml:"http://bsi.bund.de/eID/ useIDResponse"`
	Session            *Session `xml:"http://bsi.bund.de/eID/ Session,omitempty"`
	ECardServerAddress string   `xml:"http://bsi.bund.de/eID/ eCardServerAddress,omitempty"`
	PSK                *PSK     `xml:"http://bsi.bund.de/eID/ PSK,omitempty"`
	Result             Result   `xml:"urn:oasis:names:tc:dss:1.0:core:schema Result"`
}

// GetResultRequest is eid:getResultRequest.
type GetResultRequest struct {
	XMLName        xml.Name `xml:"http://bsi.bund.de/eID/ getResultRequest"`
	Session        Session  `xml:"http://bsi.bund.de/eID/ Session"`
	RequestCounter int      `xml:"http://bsi.bund.de/eID/ RequestCounter"`
}

// GeneralDate is GeneralDateType: DateString is YYYYMMDD with spaces for an
// unknown month or day; DateValue only when the date is complete.
type GeneralDate struct {
	DateString string `xml:"http://bsi.bund.de/eID/ DateString"`
	DateValue  string `xml:"http://bsi.bund.de/eID/ DateValue,omitempty"`
}

// Place is PlaceType.
type Place struct {
	Street  string `xml:"http://bsi.bund.de/eID/ Street,omitempty"`
	City    string `xml:"http://bsi.bund.de/eID/ City"`
	State   string `xml:"http://bsi.bund.de/eID/ State,omitempty"`
	Country string `xml:"http://bsi.bund.de/eID/ Country"`
	ZipCode string `xml:"http://bsi.bund.de/eID/ ZipCode,omitempty"`
}

// GeneralPlace is GeneralPlaceType: one of a structured place, free text,
// or "no place information" (e.g. no residence in Germany).
type GeneralPlace struct {
	Structured  *Place  `xml:"http://bsi.bund.de/eID/ StructuredPlace,omitempty"`
	Freetext    string  `xml:"http://bsi.bund.de/eID/ FreetextPlace,omitempty"`
	NoPlaceInfo *string `xml:"http://bsi.bund.de/eID/ NoPlaceInfo,omitempty"`
}

// RestrictedID is RestrictedIDType: the sector-specific pseudonym(s).
type RestrictedID struct {
	ID  string `xml:"http://bsi.bund.de/eID/ ID"`
	ID2 string `xml:"http://bsi.bund.de/eID/ ID2,omitempty"`
}

// PersonalData is PersonalDataType: what the card released.
type PersonalData struct {
	DocumentType     string        `xml:"http://bsi.bund.de/eID/ DocumentType,omitempty"`
	IssuingState     string        `xml:"http://bsi.bund.de/eID/ IssuingState,omitempty"`
	DateOfExpiry     string        `xml:"http://bsi.bund.de/eID/ DateOfExpiry,omitempty"`
	GivenNames       string        `xml:"http://bsi.bund.de/eID/ GivenNames,omitempty"`
	FamilyNames      string        `xml:"http://bsi.bund.de/eID/ FamilyNames,omitempty"`
	ArtisticName     string        `xml:"http://bsi.bund.de/eID/ ArtisticName,omitempty"`
	AcademicTitle    string        `xml:"http://bsi.bund.de/eID/ AcademicTitle,omitempty"`
	DateOfBirth      *GeneralDate  `xml:"http://bsi.bund.de/eID/ DateOfBirth,omitempty"`
	PlaceOfBirth     *GeneralPlace `xml:"http://bsi.bund.de/eID/ PlaceOfBirth,omitempty"`
	Nationality      string        `xml:"http://bsi.bund.de/eID/ Nationality,omitempty"`
	BirthName        string        `xml:"http://bsi.bund.de/eID/ BirthName,omitempty"`
	PlaceOfResidence *GeneralPlace `xml:"http://bsi.bund.de/eID/ PlaceOfResidence,omitempty"`
	CommunityID      string        `xml:"http://bsi.bund.de/eID/ CommunityID,omitempty"`
	ResidencePermitI string        `xml:"http://bsi.bund.de/eID/ ResidencePermitI,omitempty"`
	RestrictedID     *RestrictedID `xml:"http://bsi.bund.de/eID/ RestrictedID,omitempty"`
}

// Verification is VerificationResultType.
type Verification struct {
	FulfilsRequest bool `xml:"http://bsi.bund.de/eID/ FulfilsRequest"`
}

// GetResultResponse is eid:getResultResponse.
type GetResultResponse struct {
	XMLName                  xml.Name      `xml:"http://bsi.bund.de/eID/ getResultResponse"`
	PersonalData             *PersonalData `xml:"http://bsi.bund.de/eID/ PersonalData,omitempty"`
	FulfilsAgeVerification   *Verification `xml:"http://bsi.bund.de/eID/ FulfilsAgeVerification,omitempty"`
	FulfilsPlaceVerification *Verification `xml:"http://bsi.bund.de/eID/ FulfilsPlaceVerification,omitempty"`
	OperationsAllowedByUser  *Ops          `xml:"http://bsi.bund.de/eID/ OperationsAllowedByUser,omitempty"`
	LevelOfAssuranceResult   string        `xml:"http://bsi.bund.de/eID/ LevelOfAssuranceResult,omitempty"`
	EIDTypeResponse          *EIDTypes     `xml:"http://bsi.bund.de/eID/ EIDTypeResponse,omitempty"`
	Result                   Result        `xml:"urn:oasis:names:tc:dss:1.0:core:schema Result"`
}

// GetServerInfoRequest is eid:getServerInfoRequest (nullType).
type GetServerInfoRequest struct {
	XMLName xml.Name `xml:"http://bsi.bund.de/eID/ getServerInfoRequest"`
}

// ServerVersion is VersionType.
type ServerVersion struct {
	VersionString string `xml:"http://bsi.bund.de/eID/ VersionString"`
	Major         int    `xml:"http://bsi.bund.de/eID/ Major"`
	Minor         int    `xml:"http://bsi.bund.de/eID/ Minor"`
	Bugfix        int    `xml:"http://bsi.bund.de/eID/ Bugfix"`
}

// GetServerInfoResponse is eid:getServerInfoResponse.
type GetServerInfoResponse struct {
	XMLName                    xml.Name      `xml:"http://bsi.bund.de/eID/ getServerInfoResponse"`
	ServerVersion              ServerVersion `xml:"http://bsi.bund.de/eID/ ServerVersion"`
	DocumentVerificationRights Ops           `xml:"http://bsi.bund.de/eID/ DocumentVerificationRights"`
}

// Element serialises a message type of this file into an element for a
// SOAP Body.
func Element(v any) (*etree.Element, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, err
	}
	return doc.Root(), nil
}

// Decode reads a verified payload (its canonical bytes) into v, which must
// be one of this file's message types.
func Decode(canonical []byte, v any) error {
	if err := xml.Unmarshal(canonical, v); err != nil {
		return fmt.Errorf("eid: %w", err)
	}
	return nil
}

var (
	hexRE     = regexp.MustCompile(`^(?:[0-9A-Fa-f]{2})+$`)
	printable = regexp.MustCompile(`^[\x21-\x7e]+$`)
)

// ValidPSK checks a PSK: an ID of printable ASCII, a key of at least 256
// bits in hex (TR-03130-1: the eID-Server generates it randomly).
func ValidPSK(p *PSK) error {
	if p == nil {
		return errors.New("no PSK")
	}
	if len(p.ID) == 0 || len(p.ID) > 256 || !printable.MatchString(p.ID) {
		return errors.New("PSK ID is not a printable identifier")
	}
	if len(p.Key) < 64 || len(p.Key) > 1024 || !hexRE.MatchString(p.Key) {
		return errors.New("PSK key is not hex of 256 bits or more")
	}
	return nil
}

// ValidSessionID checks SessionType's ID: random, at least 32 hex
// characters (TR-03130-1 §3.2.1), at most 256 printable characters.
func ValidSessionID(id string) bool {
	return len(id) >= 32 && len(id) <= 256 && printable.MatchString(id)
}
