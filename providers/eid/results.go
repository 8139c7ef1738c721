package eid

import (
	"fmt"
	"strings"

	"github.com/trustbroker/trustbroker/providers"
)

// ResultMajor values (BSI TR-03112-1).
const (
	MajorOK      = "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#ok"
	MajorError   = "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#error"
	MajorWarning = "http://www.bsi.bund.de/ecard/api/1.1/resultmajor#warning"
)

// MinorPrefix starts every ResultMinor of the eID-Server (TR-03130-1 §3).
const MinorPrefix = "http://www.bsi.bund.de/eid/server/2.0/resultminor/"

// ResultMinor codes of the eID-Interface.
const (
	MinorInternalError        = MinorPrefix + "common#internalError"
	MinorSchemaViolation      = MinorPrefix + "common#schemaViolation"
	MinorInvalidPSK           = MinorPrefix + "useID#invalidPSK"
	MinorTooManyOpenSessions  = MinorPrefix + "useID#tooManyOpenSessions"
	MinorMissingArgument      = MinorPrefix + "useID#missingArgument"
	MinorMissingTerminalRight = MinorPrefix + "useID#missingTerminalRights"
	MinorNoResultYet          = MinorPrefix + "getResult#noResultYet"
	MinorInvalidSession       = MinorPrefix + "getResult#invalidSession"
	MinorInvalidCounter       = MinorPrefix + "getResult#invalidCounter"
	MinorDeniedDocument       = MinorPrefix + "getResult#deniedDocument"
	MinorInvalidDocument      = MinorPrefix + "getResult#invalidDocument"
)

// ServerMinors lists every ResultMinor of the eID-Interface.
var ServerMinors = []string{
	MinorInternalError, MinorSchemaViolation, MinorInvalidPSK, MinorTooManyOpenSessions,
	MinorMissingArgument, MinorMissingTerminalRight, MinorNoResultYet, MinorInvalidSession,
	MinorInvalidCounter, MinorDeniedDocument, MinorInvalidDocument,
}

// ResultMinor values the eID client appends to the RefreshAddress after a
// failed PAOS dialogue (TR-03124-1 §2.5.4.2; AusweisApp's UrlUtil).
const (
	ClientCommunicationError = "communicationError"
	ClientTrustedChannel     = "trustedChannelEstablishmentFailed"
	ClientCancelled          = "cancellationByUser"
	ClientServerError        = "serverError"
	ClientError              = "clientError"
)

// ClientMinors lists them.
var ClientMinors = []string{ClientCommunicationError, ClientTrustedChannel, ClientCancelled, ClientServerError, ClientError}

// message is a user message in both languages with its stable code.
type message struct{ code, de, en string }

// minorMessages maps every result code to what the user reads. The texts
// say what happened and what to do, without protocol words.
var minorMessages = map[string]message{
	MinorInternalError: {"eid_server_error",
		"Der Ausweis-Server hat einen internen Fehler gemeldet. Bitte versuchen Sie es später erneut.",
		"The ID card server reported an internal error. Please try again later."},
	MinorSchemaViolation: {"eid_server_error",
		"Der Ausweis-Server hat die Anfrage nicht verstanden. Bitte wenden Sie sich an den Betreiber.",
		"The ID card server did not understand the request. Please contact the operator."},
	MinorInvalidPSK: {"eid_server_error",
		"Die Verbindung zum Ausweis-Server konnte nicht vorbereitet werden. Bitte versuchen Sie es erneut.",
		"The connection to the ID card server could not be prepared. Please try again."},
	MinorTooManyOpenSessions: {"eid_busy",
		"Der Ausweis-Server ist gerade ausgelastet. Bitte versuchen Sie es in einigen Minuten erneut.",
		"The ID card server is busy at the moment. Please try again in a few minutes."},
	MinorMissingArgument: {"eid_server_error",
		"Die Anfrage an den Ausweis-Server war unvollständig. Bitte wenden Sie sich an den Betreiber.",
		"The request to the ID card server was incomplete. Please contact the operator."},
	MinorMissingTerminalRight: {"eid_not_authorized",
		"Dieser Dienst darf die angefragten Daten nicht aus dem Ausweis lesen. Bitte wenden Sie sich an den Betreiber.",
		"This service is not authorised to read the requested data from the ID card. Please contact the operator."},
	MinorNoResultYet: {"eid_timeout",
		"Der Ausweis wurde nicht rechtzeitig gelesen. Bitte starten Sie den Vorgang erneut.",
		"The ID card was not read in time. Please start again."},
	MinorInvalidSession: {"eid_session",
		"Der Vorgang ist abgelaufen oder wurde bereits abgeschlossen. Bitte starten Sie die Anmeldung erneut.",
		"The process has expired or was already completed. Please start the login again."},
	MinorInvalidCounter: {"eid_replay",
		"Das Ergebnis wurde bereits abgeholt. Bitte starten Sie die Anmeldung erneut.",
		"The result has already been collected. Please start the login again."},
	MinorDeniedDocument: {"card_blocked",
		"Dieser Ausweis ist gesperrt und kann nicht verwendet werden. Bitte wenden Sie sich an Ihre Ausweisbehörde.",
		"This ID card is blocked and cannot be used. Please contact your ID card authority."},
	MinorInvalidDocument: {"card_invalid",
		"Dieser Ausweis ist nicht gültig, zum Beispiel abgelaufen. Bitte verwenden Sie einen gültigen Ausweis.",
		"This ID card is not valid, for example expired. Please use a valid ID card."},
	ClientCommunicationError: {"eid_client_communication",
		"Die Ausweis-App konnte nicht mit dem Ausweis-Server sprechen. Bitte prüfen Sie Ihre Internetverbindung und versuchen Sie es erneut.",
		"The ID app could not reach the ID card server. Please check your internet connection and try again."},
	ClientTrustedChannel: {"eid_client_channel",
		"Die Ausweis-App konnte keine sichere Verbindung zum Ausweis-Server aufbauen. Bitte versuchen Sie es erneut.",
		"The ID app could not establish a secure connection to the ID card server. Please try again."},
	ClientCancelled: {"cancelled",
		"Sie haben den Vorgang in der Ausweis-App abgebrochen.",
		"You cancelled the process in the ID app."},
	ClientServerError: {"eid_server_error",
		"Der Ausweis-Server hat den Vorgang mit einem Fehler beendet. Bitte versuchen Sie es erneut.",
		"The ID card server ended the process with an error. Please try again."},
	ClientError: {"eid_client_error",
		"In der Ausweis-App ist ein Fehler aufgetreten, zum Beispiel beim Lesen des Ausweises. Bitte versuchen Sie es erneut.",
		"An error occurred in the ID app, for example while reading the ID card. Please try again."},
}

var unknownMessage = message{"eid_error",
	"Die Anmeldung mit dem Ausweis ist fehlgeschlagen. Bitte versuchen Sie es erneut.",
	"The login with the ID card failed. Please try again."}

// text picks the language of m.
func (m message) text(lang string) string {
	if lang == "en" {
		return m.en
	}
	return m.de
}

// MinorError maps a ResultMinor (of the eID-Server, or of the eID client at
// the RefreshAddress) to a provider error with the user's message. A
// client's minor may also come as a full URI ending in #code.
func MinorError(minor, lang string, cause error) *providers.Error {
	m, ok := minorMessages[minor]
	if !ok {
		if i := strings.LastIndexAny(minor, "#/"); i >= 0 {
			m, ok = minorMessages[minor[i+1:]]
			if ok && !isClientMinor(minor[i+1:]) {
				ok = false
			}
		}
	}
	if !ok {
		m = unknownMessage
	}
	if cause == nil {
		cause = fmt.Errorf("eid: result minor %q", minor)
	}
	return &providers.Error{Code: m.code, Public: m.text(lang), Err: cause}
}

func isClientMinor(s string) bool {
	for _, c := range ClientMinors {
		if c == s {
			return true
		}
	}
	return false
}

// publicError is a provider error with a message of this package.
func publicError(code, lang, de, en string, cause error) *providers.Error {
	return &providers.Error{Code: code, Public: message{code, de, en}.text(lang), Err: cause}
}
