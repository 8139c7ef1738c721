package eidas

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// Person is what the assertion's attribute statement says about the user.
type Person struct {
	PersonIdentifier string
	// SendingCountry is the first part of PersonIdentifier (ISO 3166-1
	// alpha-2, "EL" for Greece as eIDAS writes it).
	SendingCountry string
	FamilyName     string
	FirstName      string
	DateOfBirth    string // YYYY-MM-DD
	BirthName      string
	PlaceOfBirth   string
	Gender         string // Male | Female | Unspecified
	Address        *Address
}

// Address is the eIDAS CurrentAddress (Core Location vocabulary, eIDAS
// SAML Attribute Profile 1.2 §2.2.8).
type Address struct {
	PoBox, LocatorDesignator, LocatorName, CvaddressArea, Thoroughfare string
	PostName, AdminunitFirstline, AdminunitSecondline, PostCode        string
	FullCvaddress                                                      string
}

var (
	personIDRe = regexp.MustCompile(`^([A-Z]{2})/([A-Z]{2})/(.{1,256})$`)
	dateRe     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// maxAttributeValue bounds one attribute value (a base64 CurrentAddress
// included).
const maxAttributeValue = 4096

// readPerson reads the natural-person attributes of an (already verified
// and decrypted) Assertion. Unknown attributes are ignored; a known one
// given twice, or with a malformed value, is an error.
func readPerson(assertion *etree.Element) (*Person, error) {
	p := &Person{}
	seen := map[string]bool{}
	for _, st := range xmlsig.Children(assertion, NSSAML, "AttributeStatement") {
		for _, a := range xmlsig.Children(st, NSSAML, "Attribute") {
			name := a.SelectAttrValue("Name", "")
			if seen[name] {
				return nil, fmt.Errorf("attribute %s given twice", name)
			}
			seen[name] = true
			vals := xmlsig.Children(a, NSSAML, "AttributeValue")
			if len(vals) == 0 {
				continue
			}
			v := latinValue(vals)
			text := xmlsig.Text(v)
			if len(text) > maxAttributeValue {
				return nil, fmt.Errorf("attribute %s too long", name)
			}
			switch name {
			case AttrPersonIdentifier:
				m := personIDRe.FindStringSubmatch(text)
				if m == nil {
					return nil, errors.New("PersonIdentifier is not of the form XX/YY/id")
				}
				p.PersonIdentifier, p.SendingCountry = text, m[1]
			case AttrFamilyName:
				p.FamilyName = text
			case AttrFirstName:
				p.FirstName = text
			case AttrDateOfBirth:
				if !dateRe.MatchString(text) {
					return nil, errors.New("DateOfBirth is not YYYY-MM-DD")
				}
				if _, err := time.Parse("2006-01-02", text); err != nil {
					return nil, fmt.Errorf("DateOfBirth: %w", err)
				}
				p.DateOfBirth = text
			case AttrBirthName:
				p.BirthName = text
			case AttrPlaceOfBirth:
				p.PlaceOfBirth = text
			case AttrGender:
				switch text {
				case "Male", "Female", "Unspecified":
					p.Gender = text
				default:
					return nil, fmt.Errorf("Gender %q is not Male, Female or Unspecified", text)
				}
			case AttrCurrentAddress:
				addr, err := addressValue(v)
				if err != nil {
					return nil, err
				}
				p.Address = addr
			}
		}
	}
	if p.PersonIdentifier == "" {
		return nil, errors.New("no PersonIdentifier")
	}
	if p.FamilyName == "" || p.FirstName == "" || p.DateOfBirth == "" {
		return nil, errors.New("minimum data set incomplete (FamilyName, FirstName, DateOfBirth)")
	}
	return p, nil
}

// latinValue picks the Latin-script value: eIDAS sends a transliteration
// beside a value marked LatinScript="false".
func latinValue(vals []*etree.Element) *etree.Element {
	for _, v := range vals {
		if ls := v.SelectAttr("LatinScript"); ls == nil || ls.Value != "false" {
			return v
		}
	}
	return vals[0]
}

// addressValue reads a CurrentAddress value: base64 of the address
// elements (the profile's form), or, as some nodes send it, the elements
// themselves.
func addressValue(v *etree.Element) (*Address, error) {
	if kids := v.ChildElements(); len(kids) > 0 {
		return addressFrom(kids)
	}
	return DecodeCurrentAddress(xmlsig.Text(v))
}

// DecodeCurrentAddress decodes the base64 form of an eIDAS CurrentAddress:
// a sequence of eidas-natural:* elements without a root, usually without
// their namespace declaration. Elements are matched by local name.
func DecodeCurrentAddress(b64 string) (*Address, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, fmt.Errorf("CurrentAddress: %w", err)
	}
	if len(raw) > maxAttributeValue {
		return nil, errors.New("CurrentAddress too long")
	}
	doc, err := xmlsig.Parse([]byte(`<CurrentAddress xmlns:eidas-natural="` + NSEIDASNP + `" xmlns:eidas="` + NSEIDASNP + `">` +
		string(raw) + `</CurrentAddress>`))
	if err != nil {
		return nil, fmt.Errorf("CurrentAddress: %w", err)
	}
	for _, t := range doc.Root().Child {
		if cd, ok := t.(*etree.CharData); ok && !cd.IsWhitespace() {
			return nil, errors.New("CurrentAddress: text outside the address elements")
		}
	}
	return addressFrom(doc.Root().ChildElements())
}

func addressFrom(els []*etree.Element) (*Address, error) {
	a := &Address{}
	fields := map[string]*string{
		"poBox": &a.PoBox, "locatorDesignator": &a.LocatorDesignator, "locatorName": &a.LocatorName,
		"cvaddressArea": &a.CvaddressArea, "thoroughfare": &a.Thoroughfare, "postName": &a.PostName,
		"adminunitFirstline": &a.AdminunitFirstline, "adminunitSecondline": &a.AdminunitSecondline,
		"postCode": &a.PostCode, "fullCvaddress": &a.FullCvaddress,
	}
	any := false
	for _, el := range els {
		if len(el.ChildElements()) > 0 {
			return nil, fmt.Errorf("CurrentAddress: %s has child elements", el.Tag)
		}
		key := strings.ToLower(el.Tag[:1]) + el.Tag[1:]
		// AdminUnitFirstline and FullAddress are spellings seen in the wild.
		switch key {
		case "adminUnitFirstline":
			key = "adminunitFirstline"
		case "adminUnitSecondline":
			key = "adminunitSecondline"
		case "fullAddress", "fullCVAddress":
			key = "fullCvaddress"
		}
		f, ok := fields[key]
		if !ok {
			continue
		}
		if *f != "" {
			return nil, fmt.Errorf("CurrentAddress: %s given twice", el.Tag)
		}
		*f = xmlsig.Text(el)
		any = any || *f != ""
	}
	if !any {
		return nil, errors.New("CurrentAddress is empty")
	}
	return a, nil
}

// Claim returns the address as an OIDC address claim (OpenID Connect Core
// §5.1.1).
func (a *Address) Claim() map[string]any {
	c := map[string]any{}
	street := strings.TrimSpace(strings.Join(nonEmpty(a.Thoroughfare, a.LocatorDesignator, a.LocatorName), " "))
	if a.PoBox != "" {
		street = strings.TrimSpace(street + "\n" + "PO Box " + a.PoBox)
	}
	set := func(k, v string) {
		if v != "" {
			c[k] = v
		}
	}
	set("street_address", street)
	locality := a.PostName
	if locality == "" {
		locality = a.CvaddressArea
	}
	set("locality", locality)
	set("postal_code", a.PostCode)
	set("region", a.AdminunitSecondline)
	set("country", a.AdminunitFirstline)
	formatted := a.FullCvaddress
	if formatted == "" {
		formatted = strings.Join(nonEmpty(street, strings.TrimSpace(a.PostCode+" "+locality), a.AdminunitSecondline, a.AdminunitFirstline), "\n")
	}
	set("formatted", formatted)
	return c
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// EncodeCurrentAddress is the inverse of DecodeCurrentAddress (the
// simulator's form): the elements with the eidas-natural prefix, base64.
func EncodeCurrentAddress(a *Address) string {
	var b strings.Builder
	for _, f := range []struct{ tag, v string }{
		{"PoBox", a.PoBox}, {"LocatorDesignator", a.LocatorDesignator}, {"LocatorName", a.LocatorName},
		{"CvaddressArea", a.CvaddressArea}, {"Thoroughfare", a.Thoroughfare}, {"PostName", a.PostName},
		{"AdminunitFirstline", a.AdminunitFirstline}, {"AdminunitSecondline", a.AdminunitSecondline},
		{"PostCode", a.PostCode}, {"FullCvaddress", a.FullCvaddress},
	} {
		if f.v == "" {
			continue
		}
		var esc strings.Builder
		_ = xmlEscape(&esc, f.v)
		b.WriteString("<eidas-natural:" + f.tag + ">" + esc.String() + "</eidas-natural:" + f.tag + ">")
	}
	return base64.StdEncoding.EncodeToString([]byte(b.String()))
}
