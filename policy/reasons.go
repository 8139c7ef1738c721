package policy

// Public reason codes: why a request was denied, in words safe to show the
// user. They never name a rule, a zone or an address.
const (
	ReasonNoAccess   = "no_access"   // no rule grants this service
	ReasonNetwork    = "network"     // not from a permitted network
	ReasonSite       = "site"        // not from a permitted location
	ReasonCountry    = "country"     // not from a permitted country
	ReasonHours      = "hours"       // outside the permitted hours
	ReasonCredential = "credential"  // the credential used is not accepted
	ReasonLoA        = "loa"         // a stronger login is needed
	ReasonUnknown    = "unavailable" // the decision point could not decide
)

var reasons = map[string][2]string{ // code: {de, en}
	ReasonNoAccess: {"Sie haben keinen Zugang zu diesem Dienst.",
		"You have no access to this service."},
	ReasonNetwork: {"Der Zugriff ist aus diesem Netzwerk nicht erlaubt.",
		"Access is not permitted from this network."},
	ReasonSite: {"Der Zugriff ist von diesem Standort aus nicht erlaubt.",
		"Access is not permitted from this location."},
	ReasonCountry: {"Der Zugriff ist aus diesem Land nicht erlaubt.",
		"Access is not permitted from this country."},
	ReasonHours: {"Der Zugriff ist außerhalb der erlaubten Zeiten nicht möglich.",
		"Access is not permitted outside the permitted hours."},
	ReasonCredential: {"Für diesen Dienst ist ein anderes Anmeldemittel nötig.",
		"This service needs a different credential."},
	ReasonLoA: {"Für diesen Dienst ist eine stärkere Anmeldung nötig.",
		"This service needs a stronger login."},
	ReasonUnknown: {"Der Zugriff kann gerade nicht geprüft werden.",
		"Access cannot be checked at the moment."},
}

// PublicReason returns the text of a public reason code in lang ("de" or
// "en", English otherwise); an unknown code reads as ReasonNoAccess.
func PublicReason(code, lang string) string {
	t, ok := reasons[code]
	if !ok {
		t = reasons[ReasonNoAccess]
	}
	if lang == "de" {
		return t[0]
	}
	return t[1]
}

// AuditDetails is what the audit trail keeps of a decision: the context it
// was taken in, the effect and the deciding rule.
func AuditDetails(d Decision, pc Context) map[string]any {
	m := map[string]any{
		"effect": string(d.Effect), "rule": d.Rule, "reason": d.Reason,
		"client_ip": pc.ClientIP, "zone": pc.Zone, "trust": pc.Trust, "site": pc.Site, "country": pc.Country,
		"time": pc.Time.UTC().Format("2006-01-02T15:04:05Z"), "loa": pc.LoA.String(),
		"credential": pc.CredentialKind, "hardware_token": pc.HardwareToken,
	}
	if d.Effect == StepUp {
		m["required_loa"] = d.RequiredLoA.String()
		if len(d.RequiredKinds) > 0 {
			m["required_kinds"] = d.RequiredKinds
		}
	}
	return m
}
