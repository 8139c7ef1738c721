package eidas

import "github.com/trustbroker/trustbroker/providers"

const codeNodeUnavailable = "node_unavailable"

// messages are the user-facing texts of refusals, German and English. The
// security checks share one text: the user cannot act on the difference,
// and an attacker should not learn which check failed.
var messages = map[string][2]string{
	"invalid": {"Die Antwort des eIDAS-Knotens war ungültig; die Anmeldung wurde abgelehnt.",
		"The answer of the eIDAS node was not valid; the login was refused."},
	CodeLoATooLow: {"Das Vertrauensniveau Ihrer Anmeldung im Heimatland ist für diesen Dienst zu niedrig.",
		"The level of assurance of your login in your home country is too low for this service."},
	CodeNotNotified: {"Ihr elektronisches Identifizierungsmittel ist nicht nach eIDAS notifiziert.",
		"Your electronic identification means is not notified under eIDAS."},
	CodeCancelled: {"Die Anmeldung im Heimatland wurde abgebrochen oder ist fehlgeschlagen.",
		"The login in your home country was cancelled or failed."},
	CodeStatus: {"Der eIDAS-Knoten meldet einen Fehler.", "The eIDAS node reports an error."},
	codeNodeUnavailable: {"Der eIDAS-Knoten ist zurzeit nicht erreichbar.",
		"The eIDAS node cannot be reached at the moment."},
	CodeAttributes: {"Der eIDAS-Knoten hat die nötigen Angaben zur Person nicht oder fehlerhaft übermittelt.",
		"The eIDAS node did not send the required personal data, or sent it malformed."},
}

func publicError(code, lang string, cause error) *providers.Error {
	m, ok := messages[code]
	if !ok {
		m = messages["invalid"]
	}
	text := m[1]
	if lang == "de" {
		text = m[0]
	}
	return &providers.Error{Code: code, Public: text, Err: cause}
}
