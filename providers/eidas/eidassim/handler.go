package eidassim

import (
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

//go:embed templates/page.html
var pageFS embed.FS

var pages = template.Must(template.ParseFS(pageFS, "templates/page.html"))

// texts of the simulator's pages: German first, English second.
var texts = map[string][2]string{
	"title":         {"eIDAS-Knoten (Simulator): Anmeldung im Heimatland", "eIDAS node (simulator): log in in your home country"},
	"brand":         {"eIDAS-Knoten – Simulator", "eIDAS node – simulator"},
	"sim":           {"Simulator", "Simulator"},
	"banner":        {"Dieser eIDAS-Knoten ist simuliert. Er bestätigt die gewählte Musterperson ohne echte eID.", "This eIDAS node is simulated. It confirms the chosen specimen person without a real eID."},
	"skip":          {"Zum Inhalt springen", "Skip to content"},
	"switch":        {"English", "Deutsch"},
	"footer":        {"Nur für Demonstration und Tests.", "For demonstration and tests only."},
	"intro":         {"Dieser Dienst bittet um Ihre Anmeldung mit der eID Ihres Heimatlandes:", "This service asks you to log in with the eID of your home country:"},
	"loa":           {"Mindestens verlangtes Vertrauensniveau:", "Minimum level of assurance asked for:"},
	"requested":     {"Verlangte Angaben", "Requested data"},
	"required":      {"erforderlich", "required"},
	"person":        {"Musterperson (Mitgliedstaat und eID-System)", "Specimen person (member state and eID scheme)"},
	"behaviour":     {"Verhalten des Knotens (für Tests)", "Behaviour of the node (for tests)"},
	"submit":        {"Anmelden und Angaben übermitteln", "Log in and send the data"},
	"back":          {"Sie werden zum Dienst zurückgeleitet.", "You are being taken back to the service."},
	"continue":      {"Weiter", "Continue"},
	"error_title":   {"Anfrage abgelehnt", "Request refused"},
	"b.normal":      {"Normal: Antwort signiert und verschlüsselt", "Normal: answer signed and encrypted"},
	"b.lower_loa":   {"Niedrigeres Vertrauensniveau als verlangt", "A lower level of assurance than asked for"},
	"b.tampered":    {"Antwort nach der Signatur verfälscht", "Answer tampered with after signing"},
	"b.unencrypted": {"Zusicherung unverschlüsselt", "Assertion not encrypted"},
	"b.cancel":      {"Anmeldung abbrechen", "Cancel the login"},
}

func textsFor(lang string) map[string]string {
	i := 1
	if lang == "de" {
		i = 0
	}
	m := make(map[string]string, len(texts))
	for k, v := range texts {
		m[k] = v[i]
	}
	return m
}

// session is a verified AuthnRequest waiting for the tester's choice.
type session struct {
	req     *Request
	relay   string
	expires time.Time
}

// Handler serves the node under base: POST {base}/sso (the AuthnRequest,
// HTTP-POST binding), GET {base}/pick/{session} (the tester's page), POST
// {base}/answer, GET {base}/metadata.
type Handler struct {
	Node *Node
	Base string
	// Fixed, when set, is the only behaviour (no choice on the page).
	Fixed Behaviour

	once     sync.Once
	mux      *http.ServeMux
	mu       sync.Mutex
	sessions map[string]*session
}

func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+h.Base+"/sso", h.sso)
	mux.HandleFunc("GET "+h.Base+"/pick/{session}", h.pick)
	mux.HandleFunc("POST "+h.Base+"/answer", h.answer)
	mux.HandleFunc("GET "+h.Base+"/metadata", h.metadata)
	return mux
}

// ServeHTTP serves the node's endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	h.once.Do(func() { h.mux = h.routes() })
	h.mux.ServeHTTP(w, r)
}

type pageData struct {
	Lang, Other, Switch string
	T                   map[string]string
	// pick
	SP, LoA, Action, Session string
	Requested                []requested
	Persons                  []choice
	Behaviours               []choice
	// post
	Fields []field
	// error
	Message string
}

type requested struct {
	Name     string
	Required bool
}
type choice struct{ Key, Label string }
type field struct{ Name, Value string }

func lang(r *http.Request) string {
	if l := r.FormValue("lang"); l == "de" || l == "en" {
		return l
	}
	if strings.HasPrefix(r.Header.Get("Accept-Language"), "de") {
		return "de"
	}
	return "en"
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.T = textsFor(d.Lang)
	d.Other = "de"
	if d.Lang == "de" {
		d.Other = "en"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", d.Lang)
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, d)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, status, "error", pageData{Lang: lang(r), Message: msg})
}

func (h *Handler) sso(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "bad form")
		return
	}
	req, err := h.Node.ReadRequest(r.PostForm.Get("SAMLRequest"))
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, "AuthnRequest refused: "+err.Error())
		return
	}
	relay := r.PostForm.Get("RelayState")
	if len(relay) > 80 {
		h.fail(w, r, http.StatusBadRequest, "RelayState longer than 80 bytes")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	sid := hex.EncodeToString(b)
	now := h.Node.Now()
	h.mu.Lock()
	if h.sessions == nil {
		h.sessions = map[string]*session{}
	}
	for k, s := range h.sessions {
		if now.After(s.expires) {
			delete(h.sessions, k)
		}
	}
	h.sessions[sid] = &session{req: req, relay: relay, expires: now.Add(10 * time.Minute)}
	h.mu.Unlock()
	http.Redirect(w, r, h.Base+"/pick/"+sid+"?lang="+lang(r), http.StatusSeeOther)
}

func (h *Handler) session(id string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || h.Node.Now().After(s.expires) {
		return nil
	}
	return s
}

func (h *Handler) pick(w http.ResponseWriter, r *http.Request) {
	sid := r.PathValue("session")
	s := h.session(sid)
	l := lang(r)
	if s == nil {
		h.fail(w, r, http.StatusNotFound, "unknown or expired request")
		return
	}
	li := 1
	if l == "de" {
		li = 0
	}
	d := pageData{Lang: l, SP: s.req.Issuer, LoA: s.req.LoA.URI(), Action: h.Base + "/answer", Session: sid}
	other := "de"
	if l == "de" {
		other = "en"
	}
	d.Switch = h.Base + "/pick/" + sid + "?lang=" + other
	for _, a := range eidas.Attributes {
		if req, ok := s.req.Attributes[a.Name]; ok {
			d.Requested = append(d.Requested, requested{a.FriendlyName, req})
		}
	}
	for _, p := range Persons {
		d.Persons = append(d.Persons, choice{p.Key, p.Label[li]})
	}
	if h.Fixed == "" {
		t := textsFor(l)
		for _, b := range Behaviours {
			d.Behaviours = append(d.Behaviours, choice{string(b), t["b."+string(b)]})
		}
	}
	h.render(w, http.StatusOK, "pick", d)
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "bad form")
		return
	}
	sid := r.PostForm.Get("session")
	h.mu.Lock()
	s := h.sessions[sid]
	delete(h.sessions, sid)
	h.mu.Unlock()
	if s == nil || h.Node.Now().After(s.expires) {
		h.fail(w, r, http.StatusNotFound, "unknown or expired request")
		return
	}
	p := PersonByKey(r.PostForm.Get("person"))
	if p == nil {
		h.fail(w, r, http.StatusBadRequest, "unknown person")
		return
	}
	b := h.Fixed
	if b == "" {
		b = Behaviour(r.PostForm.Get("behaviour"))
	}
	resp, err := h.Node.Answer(s.req, p, b)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	h.render(w, http.StatusOK, "post", pageData{Lang: lang(r), Action: h.Node.SP.ACSURL,
		Fields: []field{{"SAMLResponse", base64.StdEncoding.EncodeToString(resp)}, {"RelayState", s.relay}}})
}

func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	md, err := h.Node.Metadata(24 * time.Hour)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(md)
}
