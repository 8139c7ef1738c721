package smartcard

import (
	"encoding/asn1"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Extension OIDs.
var (
	// OIDAdmission is id-isismtt-at-admission (Common PKI Part 1 §3.2, gemSpec_PKI).
	OIDAdmission = asn1.ObjectIdentifier{1, 3, 36, 8, 3, 3}
	// OIDQCStatements is id-pe-qcStatements (RFC 3739 §3.2.6).
	OIDQCStatements = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}

	oidQcCompliance    = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1} // ETSI EN 319 412-5 §4.2.1
	oidQcSSCD          = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4} // §4.2.2
	oidQcType          = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6} // §4.2.3
	oidQcCClegislation = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 7} // §4.2.4
)

// maxItems bounds every SEQUENCE OF in the parsers below.
const maxItems = 32

// ProfessionInfo is one ProfessionInfo of an Admission (Common PKI).
type ProfessionInfo struct {
	Items []string // professionItems, human text ("Ärztin/Arzt")
	OIDs  []asn1.ObjectIdentifier
	// RegistrationNumber is the Telematik-ID on HBA and SMC-B.
	RegistrationNumber string
}

// Admission is the decoded Admission extension: the ProfessionInfos of
// every Admissions entry, in order.
type Admission struct {
	Admissions [][]ProfessionInfo
}

// First is the first ProfessionInfo of the first Admissions entry, the one
// gematik's rules use (gemSpec_PKI: exactly one admission).
func (a *Admission) First() (ProfessionInfo, bool) {
	if a == nil || len(a.Admissions) == 0 || len(a.Admissions[0]) == 0 {
		return ProfessionInfo{}, false
	}
	return a.Admissions[0][0], true
}

var errAdmission = errors.New("malformed Admission extension")

// ParseAdmission decodes the Admission extension value (1.3.36.8.3.3):
//
//	AdmissionSyntax ::= SEQUENCE { admissionAuthority GeneralName OPTIONAL,
//	                               contentsOfAdmissions SEQUENCE OF Admissions }
//	Admissions ::= SEQUENCE { admissionAuthority [0] EXPLICIT GeneralName OPTIONAL,
//	                          namingAuthority [1] EXPLICIT NamingAuthority OPTIONAL,
//	                          professionInfos SEQUENCE OF ProfessionInfo }
func ParseAdmission(der []byte) (*Admission, error) {
	in := cryptobyte.String(der)
	var syn cryptobyte.String
	if !in.ReadASN1(&syn, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errAdmission
	}
	if !syn.PeekASN1Tag(cbasn1.SEQUENCE) {
		// admissionAuthority: a GeneralName, always context-tagged.
		if !syn.SkipASN1(peekTag(syn)) {
			return nil, errAdmission
		}
	}
	var contents cryptobyte.String
	if !syn.ReadASN1(&contents, cbasn1.SEQUENCE) || !syn.Empty() {
		return nil, errAdmission
	}
	out := &Admission{}
	for !contents.Empty() {
		if len(out.Admissions) == maxItems {
			return nil, errAdmission
		}
		var adm cryptobyte.String
		if !contents.ReadASN1(&adm, cbasn1.SEQUENCE) ||
			!adm.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!adm.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) {
			return nil, errAdmission
		}
		var infos cryptobyte.String
		if !adm.ReadASN1(&infos, cbasn1.SEQUENCE) || !adm.Empty() {
			return nil, errAdmission
		}
		var pis []ProfessionInfo
		for !infos.Empty() {
			if len(pis) == maxItems {
				return nil, errAdmission
			}
			pi, err := parseProfessionInfo(&infos)
			if err != nil {
				return nil, err
			}
			pis = append(pis, pi)
		}
		out.Admissions = append(out.Admissions, pis)
	}
	return out, nil
}

func peekTag(s cryptobyte.String) cbasn1.Tag {
	if len(s) == 0 {
		return 0
	}
	return cbasn1.Tag(s[0])
}

// ProfessionInfo ::= SEQUENCE { namingAuthority [0] EXPLICIT NamingAuthority OPTIONAL,
//
//	professionItems SEQUENCE OF DirectoryString,
//	professionOIDs SEQUENCE OF OBJECT IDENTIFIER OPTIONAL,
//	registrationNumber PrintableString OPTIONAL,
//	addProfessionInfo OCTET STRING OPTIONAL }
func parseProfessionInfo(s *cryptobyte.String) (ProfessionInfo, error) {
	var pi ProfessionInfo
	var body, items cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!body.ReadASN1(&items, cbasn1.SEQUENCE) {
		return pi, errAdmission
	}
	for !items.Empty() {
		if len(pi.Items) == maxItems {
			return pi, errAdmission
		}
		str, err := readDirectoryString(&items)
		if err != nil {
			return pi, err
		}
		pi.Items = append(pi.Items, str)
	}
	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		var oids cryptobyte.String
		if !body.ReadASN1(&oids, cbasn1.SEQUENCE) {
			return pi, errAdmission
		}
		for !oids.Empty() {
			var oid asn1.ObjectIdentifier
			if len(pi.OIDs) == maxItems || !oids.ReadASN1ObjectIdentifier(&oid) {
				return pi, errAdmission
			}
			pi.OIDs = append(pi.OIDs, oid)
		}
	}
	if body.PeekASN1Tag(cbasn1.PrintableString) {
		var reg cryptobyte.String
		if !body.ReadASN1(&reg, cbasn1.PrintableString) || !utf8.Valid(reg) {
			return pi, errAdmission
		}
		pi.RegistrationNumber = string(reg)
	}
	if !body.SkipOptionalASN1(cbasn1.OCTET_STRING) || !body.Empty() {
		return pi, errAdmission
	}
	return pi, nil
}

// ASN.1 string tags of DirectoryString (RFC 5280 §4.1.2.4).
const (
	tagTeletex   = cbasn1.Tag(20)
	tagUniversal = cbasn1.Tag(28)
	tagBMP       = cbasn1.Tag(30)
)

func readDirectoryString(s *cryptobyte.String) (string, error) {
	var v cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&v, &tag) {
		return "", errAdmission
	}
	switch tag {
	case cbasn1.UTF8String, cbasn1.PrintableString, cbasn1.IA5String:
		if !utf8.Valid(v) {
			return "", errAdmission
		}
		return string(v), nil
	case tagTeletex: // treated as Latin-1, as most decoders do
		var sb strings.Builder
		for _, c := range v {
			sb.WriteRune(rune(c))
		}
		return sb.String(), nil
	case tagBMP:
		if len(v)%2 != 0 {
			return "", errAdmission
		}
		u := make([]uint16, len(v)/2)
		for i := range u {
			u[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
		}
		return string(utf16.Decode(u)), nil
	case tagUniversal:
		if len(v)%4 != 0 {
			return "", errAdmission
		}
		var sb strings.Builder
		for i := 0; i < len(v); i += 4 {
			r := rune(v[i])<<24 | rune(v[i+1])<<16 | rune(v[i+2])<<8 | rune(v[i+3])
			if !utf8.ValidRune(r) {
				return "", errAdmission
			}
			sb.WriteRune(r)
		}
		return sb.String(), nil
	}
	return "", errAdmission
}

// QCStatements is the decoded qcStatements extension (RFC 3739 §3.2.6,
// ETSI EN 319 412-5).
type QCStatements struct {
	// Compliance: QcCompliance, the certificate is an EU qualified certificate.
	Compliance bool
	// SSCD: the private key is in a qualified signature creation device.
	SSCD bool
	// Types are the QcType values (esign, eseal, web).
	Types []asn1.ObjectIdentifier
	// Legislation are the QcCClegislation country codes.
	Legislation []string
	// IDs lists every statementId present, in order.
	IDs []asn1.ObjectIdentifier
}

var errQC = errors.New("malformed qcStatements extension")

// ParseQCStatements decodes
//
//	QCStatements ::= SEQUENCE OF QCStatement
//	QCStatement ::= SEQUENCE { statementId OBJECT IDENTIFIER, statementInfo ANY OPTIONAL }
func ParseQCStatements(der []byte) (*QCStatements, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errQC
	}
	out := &QCStatements{}
	for !seq.Empty() {
		var st cryptobyte.String
		var id asn1.ObjectIdentifier
		if len(out.IDs) == maxItems || !seq.ReadASN1(&st, cbasn1.SEQUENCE) || !st.ReadASN1ObjectIdentifier(&id) {
			return nil, errQC
		}
		out.IDs = append(out.IDs, id)
		switch {
		case id.Equal(oidQcCompliance):
			out.Compliance = true
		case id.Equal(oidQcSSCD):
			out.SSCD = true
		case id.Equal(oidQcType):
			var types cryptobyte.String
			if !st.ReadASN1(&types, cbasn1.SEQUENCE) {
				return nil, errQC
			}
			for !types.Empty() {
				var t asn1.ObjectIdentifier
				if len(out.Types) == maxItems || !types.ReadASN1ObjectIdentifier(&t) {
					return nil, errQC
				}
				out.Types = append(out.Types, t)
			}
		case id.Equal(oidQcCClegislation):
			var cs cryptobyte.String
			if !st.ReadASN1(&cs, cbasn1.SEQUENCE) {
				return nil, errQC
			}
			for !cs.Empty() {
				var c cryptobyte.String
				if len(out.Legislation) == maxItems || !cs.ReadASN1(&c, cbasn1.PrintableString) || len(c) != 2 {
					return nil, errQC
				}
				out.Legislation = append(out.Legislation, string(c))
			}
		default:
			// statementInfo of other statements is skipped.
			var info cryptobyte.String
			var tag cbasn1.Tag
			if !st.Empty() && !st.ReadAnyASN1Element(&info, &tag) {
				return nil, errQC
			}
		}
		if !st.Empty() {
			return nil, errQC
		}
	}
	return out, nil
}
