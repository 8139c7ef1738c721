// Package loa names the levels of assurance the broker works with: the
// eIDAS levels (Commission Implementing Regulation (EU) 2015/1502) and the
// URIs that carry them in OIDC acr values and SAML AuthnContextClassRef.
package loa

import "fmt"

// Level is an eIDAS level of assurance, ordered: a higher value satisfies a
// lower requirement.
type Level int

// The eIDAS levels. None is below low: no assurance was established.
const (
	None Level = iota
	Low
	Substantial
	High
)

// The eIDAS LoA URIs (eIDAS SAML Message Format §2.3), used directly as acr.
const (
	URILow         = "http://eidas.europa.eu/LoA/low"
	URISubstantial = "http://eidas.europa.eu/LoA/substantial"
	URIHigh        = "http://eidas.europa.eu/LoA/high"
)

// The German national levels of BSI TR-03107-1, as returned by an eID-Server
// (TR-03130 LevelOfAssuranceType; note the spelling "substantiell").
const (
	URIBSINormal       = "http://bsi.bund.de/eID/LoA/normal"
	URIBSISubstantiell = "http://bsi.bund.de/eID/LoA/substantiell"
	URIBSIHoch         = "http://bsi.bund.de/eID/LoA/hoch"
)

// String returns the short name used in configuration.
func (l Level) String() string {
	switch l {
	case Low:
		return "low"
	case Substantial:
		return "substantial"
	case High:
		return "high"
	default:
		return "none"
	}
}

// URI returns the eIDAS URI of the level, or "" for None.
func (l Level) URI() string {
	switch l {
	case Low:
		return URILow
	case Substantial:
		return URISubstantial
	case High:
		return URIHigh
	default:
		return ""
	}
}

// Satisfies reports whether l meets the requirement req.
func (l Level) Satisfies(req Level) bool { return l >= req }

// Parse accepts a short name (low, substantial, high), an eIDAS URI or a
// BSI national URI.
func Parse(s string) (Level, error) {
	switch s {
	case "low", URILow, URIBSINormal:
		return Low, nil
	case "substantial", URISubstantial, URIBSISubstantiell:
		return Substantial, nil
	case "high", URIHigh, URIBSIHoch:
		return High, nil
	}
	return None, fmt.Errorf("unknown level of assurance %q (use low, substantial or high)", s)
}
