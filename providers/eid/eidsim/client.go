package eidsim

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/providers/eid"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/client.html"))

// flow is one visit of the eID client page, after the TC token was
// fetched.
type flow struct {
	created  time.Time
	id       string
	session  *session
	refresh  string
	lang     string
	selected string
}

// texts of the page.
var texts = map[string]map[string]string{
	"de": {
		"title": "Ausweis-App (Simulator)", "app": "Ausweis-App – Simulator", "switch": "English",
		"sim": "Simulator:", "simlabel": "Hinweis zum Simulator", "simtext": "Diese Seite ersetzt die AusweisApp für Demo und Tests. Es wird kein Ausweis gelesen; alle Karten sind Musterdaten.",
		"intro":     "Ein Dienst möchte Ihren Online-Ausweis nutzen. Wählen Sie eine Musterkarte und geben Sie die PIN ein.",
		"txinfo":    "Hinweis des Dienstes:",
		"requested": "Angefragte Daten", "required": "erforderlich", "optional": "freiwillig – abwählbar",
		"card": "Musterkarte", "pin": "PIN (6 Ziffern)", "pinhelp": "Die PIN aller Musterkarten ist 123456.",
		"identify": "Ausweisen", "cancel": "Abbrechen",
		"err.pin": "Die PIN ist falsch. Bitte versuchen Sie es erneut.", "err.card": "Bitte wählen Sie eine Musterkarte.",
		"err.token": "Der Dienst hat kein gültiges TC-Token geliefert. Bitte starten Sie die Anmeldung beim Dienst erneut.",
		"err.flow":  "Dieser Vorgang ist unbekannt oder abgelaufen. Bitte starten Sie die Anmeldung beim Dienst erneut.",
		"err.param": "Der Aufruf enthält keine tcTokenURL.",
	},
	"en": {
		"title": "ID app (simulator)", "app": "ID app – simulator", "switch": "Deutsch",
		"sim": "Simulator:", "simlabel": "About the simulator", "simtext": "This page stands in for the AusweisApp in the demo and the tests. No card is read; every card holds specimen data.",
		"intro":     "A service wants to use your online ID. Choose a specimen card and enter the PIN.",
		"txinfo":    "Note from the service:",
		"requested": "Requested data", "required": "required", "optional": "optional – you may deselect it",
		"card": "Specimen card", "pin": "PIN (6 digits)", "pinhelp": "The PIN of every specimen card is 123456.",
		"identify": "Identify", "cancel": "Cancel",
		"err.pin": "The PIN is wrong. Please try again.", "err.card": "Please choose a specimen card.",
		"err.token": "The service did not deliver a valid TC token. Please start the login at the service again.",
		"err.flow":  "This process is unknown or has expired. Please start the login at the service again.",
		"err.param": "The call carries no tcTokenURL.",
	},
}

// opLabels names the operations on the page (de, en).
var opLabels = map[string][2]string{
	"DocumentType": {"Dokumentart", "Document type"}, "IssuingState": {"Ausstellender Staat", "Issuing state"},
	"DateOfExpiry": {"Ablaufdatum", "Date of expiry"}, "GivenNames": {"Vornamen", "Given names"},
	"FamilyNames": {"Familienname", "Family name"}, "ArtisticName": {"Ordens- oder Künstlername", "Religious or artistic name"},
	"AcademicTitle": {"Doktorgrad", "Doctoral degree"}, "DateOfBirth": {"Geburtsdatum", "Date of birth"},
	"PlaceOfBirth": {"Geburtsort", "Place of birth"}, "Nationality": {"Staatsangehörigkeit", "Nationality"},
	"BirthName": {"Geburtsname", "Birth name"}, "PlaceOfResidence": {"Anschrift", "Address"},
	"CommunityID": {"Gemeindeschlüssel", "Community ID"}, "ResidencePermitI": {"Nebenbestimmungen zum Aufenthaltstitel", "Residence permit conditions"},
	"RestrictedID":    {"Dienste- und kartenspezifisches Kennzeichen (Pseudonym)", "Service- and card-specific identifier (pseudonym)"},
	"AgeVerification": {"Altersbestätigung", "Age confirmation"}, "PlaceVerification": {"Wohnortbestätigung", "Place of residence confirmation"},
}

type opView struct {
	Op, Label string
	Required  bool
}

type cardView struct{ Key, Label string }

type pageData struct {
	Lang, Other, SwitchURL, Action, Error, TransactionInfo, Selected string
	T                                                                map[string]string
	Flow                                                             bool
	Requested                                                        []opView
	Cards                                                            []cardView
}

func (s *Simulator) clientHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/eID-Client", s.handleClient)
	mux.HandleFunc("GET /eID-Client/flow/{id}", s.handleFlow)
	mux.HandleFunc("POST /eID-Client/flow/{id}", s.handleSubmit)
	mux.HandleFunc("GET /eID-Client/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		b, _ := assets.ReadFile("assets/style.css")
		_, _ = w.Write(b)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// param reads a query parameter case-insensitively, as AusweisApp does.
func param(q url.Values, name string) (string, bool) {
	for k, v := range q {
		if strings.EqualFold(k, name) {
			if len(v) == 0 {
				return "", true
			}
			return v[0], true
		}
	}
	return "", false
}

func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "de" || l == "en" {
		return l
	}
	al := strings.ToLower(r.Header.Get("Accept-Language"))
	if strings.HasPrefix(al, "en") {
		return "en"
	}
	return "de"
}

// handleClient is the activation address: ?Status answers like a local
// client, ?tcTokenURL starts a flow.
func (s *Simulator) handleClient(w http.ResponseWriter, r *http.Request) {
	// A page on another origin probes the client (TR-03124-1 ?Status).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Private-Network", "true")
		w.Header().Set("Access-Control-Allow-Methods", "GET")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if v, ok := param(q, "Status"); ok {
		if strings.EqualFold(v, "json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"name": "Trustbroker eID client simulator", "implementation-title": "eidsim",
				"implementation-vendor": "Trustbroker", "implementation-version": "2.4.0", "specification-title": "TR-03124-1",
				"specification-version": "1.4",
			})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Name: Trustbroker eID client simulator\nImplementation-Version: 2.4.0\nSpecification-Title: TR-03124-1\n")
		return
	}
	l := lang(r)
	tcURL, ok := param(q, "tcTokenURL")
	if !ok || tcURL == "" {
		s.render(w, r, http.StatusBadRequest, l, pageData{Error: texts[l]["err.param"]})
		return
	}
	f, err := s.startFlow(r, tcURL, l)
	if err != nil {
		s.render(w, r, http.StatusBadGateway, l, pageData{Error: texts[l]["err.token"]})
		return
	}
	http.Redirect(w, r, "/eID-Client/flow/"+f.id+"?lang="+l, http.StatusSeeOther)
}

// startFlow fetches the TC token as an eID client does and finds its
// session by the PSK identity.
func (s *Simulator) startFlow(r *http.Request, tcURL, l string) (*flow, error) {
	u, err := url.Parse(tcURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errBadToken
	}
	if !config.IsLoopbackHost(u.Hostname()) {
		// The simulator only ever talks to a broker on this machine.
		return nil, errBadToken
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, tcURL, nil)
	res, err := s.fetch.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return nil, errBadToken
	}
	tok, err := eid.ParseTCToken(body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byPSK[tok.SessionIdentifier]
	if ss == nil || tok.ServerAddress != s.PAOSURL || tok.PathSecurityParameters == nil ||
		!strings.EqualFold(tok.PathSecurityParameters.PSK, ss.psk.Key) {
		return nil, errBadToken
	}
	now := s.o.Now()
	for id, old := range s.flows {
		if now.Sub(old.created) > 30*time.Minute {
			delete(s.flows, id)
		}
	}
	f := &flow{id: randHex(16), session: ss, refresh: tok.RefreshAddress, lang: l, created: now}
	s.flows[f.id] = f
	return f, nil
}

type simError string

func (e simError) Error() string { return string(e) }

const errBadToken = simError("eidsim: no usable TC token")

func (s *Simulator) flow(id string) *flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flows[id]
}

func (s *Simulator) handleFlow(w http.ResponseWriter, r *http.Request) {
	l := lang(r)
	f := s.flow(r.PathValue("id"))
	if f == nil {
		s.render(w, r, http.StatusNotFound, l, pageData{Error: texts[l]["err.flow"]})
		return
	}
	s.renderFlow(w, r, http.StatusOK, l, f, "")
}

func (s *Simulator) renderFlow(w http.ResponseWriter, r *http.Request, status int, l string, f *flow, errText string) {
	s.mu.Lock()
	selected := f.selected
	s.mu.Unlock()
	d := pageData{Flow: true, Error: errText, Action: "/eID-Client/flow/" + f.id + "?lang=" + l,
		TransactionInfo: f.session.req.TransactionInfo, Selected: selected}
	i := 0
	if l == "en" {
		i = 1
	}
	for _, op := range eid.Operations {
		v := f.session.req.UseOperations.Get(op)
		if v != eid.Required && v != eid.Allowed {
			continue
		}
		label := opLabels[op][i]
		if op == "AgeVerification" && f.session.req.AgeRequest != nil {
			label += map[int]string{0: " (mindestens %d Jahre)", 1: " (at least %d years)"}[i]
			label = strings.Replace(label, "%d", strconv.Itoa(f.session.req.AgeRequest.Age), 1)
		}
		d.Requested = append(d.Requested, opView{Op: op, Label: label, Required: v == eid.Required})
	}
	for _, c := range Cards {
		d.Cards = append(d.Cards, cardView{Key: c.Key, Label: c.Label[i]})
	}
	s.render(w, r, status, l, d)
}

func (s *Simulator) render(w http.ResponseWriter, r *http.Request, status int, l string, d pageData) {
	d.Lang, d.T = l, texts[l]
	d.Other = "en"
	if l == "en" {
		d.Other = "de"
	}
	if d.Flow {
		d.SwitchURL = r.URL.Path + "?lang=" + d.Other
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, d); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", l)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// handleSubmit takes the card and PIN (or the cancellation) and returns
// the browser to the RefreshAddress.
func (s *Simulator) handleSubmit(w http.ResponseWriter, r *http.Request) {
	l := lang(r)
	f := s.flow(r.PathValue("id"))
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if f == nil || r.ParseForm() != nil {
		s.render(w, r, http.StatusNotFound, l, pageData{Error: texts[l]["err.flow"]})
		return
	}
	card := CardByKey(r.PostForm.Get("card"))
	cancel := r.PostForm.Get("action") == "cancel" || (card != nil && card.Cancels && r.PostForm.Get("pin") == PIN)
	if !cancel {
		if card == nil {
			s.renderFlow(w, r, http.StatusUnprocessableEntity, l, f, texts[l]["err.card"])
			return
		}
		s.mu.Lock()
		f.selected = card.Key
		s.mu.Unlock()
		if r.PostForm.Get("pin") != PIN {
			s.renderFlow(w, r, http.StatusUnprocessableEntity, l, f, texts[l]["err.pin"])
			return
		}
	}
	s.mu.Lock()
	delete(s.flows, f.id)
	ss := s.sessions[f.session.id]
	if ss != nil {
		ss.finished, ss.cancelled, ss.card = true, cancel, card
		released := r.PostForm["release"]
		for _, op := range eid.Operations {
			switch ss.req.UseOperations.Get(op) {
			case eid.Required:
				ss.released.Set(op, eid.Allowed)
			case eid.Allowed:
				ss.released.Set(op, eid.Prohibited)
				for _, x := range released {
					if x == op {
						ss.released.Set(op, eid.Allowed)
					}
				}
			}
		}
	}
	s.mu.Unlock()
	if ss == nil {
		s.render(w, r, http.StatusNotFound, l, pageData{Error: texts[l]["err.flow"]})
		return
	}
	params := url.Values{"ResultMajor": {"ok"}}
	if cancel {
		params = url.Values{"ResultMajor": {"error"}, "ResultMinor": {eid.ClientCancelled}}
	}
	http.Redirect(w, r, withQuery(f.refresh, params), http.StatusSeeOther)
}

// withQuery appends params to a URL that may already carry a query.
func withQuery(raw string, params url.Values) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}
