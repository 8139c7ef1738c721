// Package eidsim simulates the outside parties of a German eID login for
// the demo and the tests: an eID-Server speaking the SOAP eID-Interface of
// BSI TR-03130-1 (useID, getResult, getServerInfo) on its own loopback
// listener with mutually authenticated TLS and WS-Security signatures in
// both directions, and a page standing in for the eID client (AusweisApp)
// that fetches the TC token, shows the requested data, lets the tester
// pick a specimen card and type the PIN, and returns the browser to the
// RefreshAddress. Its certificates are made at start and are TEST-ONLY.
//
// It is not an eID-Server: no card is read, no PAOS is spoken, and every
// answer comes from the specimen cards in Cards.
package eidsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/providers/eid"
	"github.com/trustbroker/trustbroker/providers/eid/wsse"
)

// Options tune Start.
type Options struct {
	// Listen is the address of the SOAP (mTLS) listener; ClientListen that
	// of the eID client page (plain HTTP, like a local AusweisApp). Both
	// default to 127.0.0.1:0 and must be loopback addresses.
	Listen, ClientListen string
	// ClientHost is the host name of ClientURL (default 127.0.0.1, like
	// a local AusweisApp; "localhost" for a broker reached as localhost).
	ClientHost string
	Now        func() time.Time
	// RSABits of the signing keys (default 3072).
	RSABits int
	// Rights are the operations the simulated authorization certificate
	// permits (DocumentVerificationRights); nil permits all.
	Rights *eid.Ops
	// PendingPolls is how many getResult calls answer noResultYet after
	// the user finished, before the result (exercises polling).
	PendingPolls int
	// MaxSessions bounds open sessions (useID#tooManyOpenSessions).
	MaxSessions int
}

// Simulator is a running simulator.
type Simulator struct {
	// SOAPURL is the eID-Interface endpoint; PAOSURL the
	// eCardServerAddress it names; ClientURL the eID client page.
	SOAPURL, PAOSURL, ClientURL string
	// CAPool verifies the SOAP listener's TLS certificate.
	CAPool *x509.CertPool
	// ServerSigningCert verifies the simulator's WS-Security signatures.
	ServerSigningCert *x509.Certificate
	// ClientTLS is the eService's certificate and key (TLS client
	// authentication and WS-Security signatures).
	ClientTLS tls.Certificate

	o        Options
	pki      *pki
	signer   *wsse.Signer
	verifier *wsse.Verifier
	fetch    *http.Client

	mu       sync.Mutex
	filter   func(action string, answer []byte) []byte
	sessions map[string]*session // by session id
	byPSK    map[string]*session // by PSK id
	flows    map[string]*flow    // eID client page flows by id

	soapSrv, clientSrv *http.Server
	done               chan struct{}
}

// session is one useID session.
type session struct {
	id      string
	psk     eid.PSK
	req     eid.UseIDRequest
	created time.Time
	counter int
	// after the user finished in the client:
	finished  bool
	cancelled bool
	card      *Card
	released  eid.Ops
	polls     int
}

// Start makes the certificates and starts both listeners.
func Start(o Options) (*Simulator, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RSABits == 0 {
		o.RSABits = 3072
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 1000
	}
	for _, a := range []*string{&o.Listen, &o.ClientListen} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
		if err := loopback(*a); err != nil {
			return nil, err
		}
	}
	p, err := newPKI(o.RSABits)
	if err != nil {
		return nil, err
	}
	signer, err := wsse.NewSigner(p.serverKey, p.serverSig, o.Now)
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		o: o, pki: p, signer: signer,
		verifier:          &wsse.Verifier{Certs: []*x509.Certificate{p.clientCert}, Now: o.Now, RequireTimestamp: true},
		CAPool:            x509.NewCertPool(),
		ServerSigningCert: p.serverSig, ClientTLS: p.clientTLS,
		sessions: map[string]*session{}, byPSK: map[string]*session{}, flows: map[string]*flow{},
		fetch: &http.Client{Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		done: make(chan struct{}),
	}
	s.CAPool.AddCert(p.ca)
	soapLn, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	clientLn, err := net.Listen("tcp", o.ClientListen)
	if err != nil {
		soapLn.Close()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	s.SOAPURL = "https://" + soapLn.Addr().String() + "/eID"
	s.PAOSURL = "https://" + soapLn.Addr().String() + "/paos"
	host, port, _ := net.SplitHostPort(clientLn.Addr().String())
	if o.ClientHost != "" {
		host = o.ClientHost
	}
	s.ClientURL = "http://" + net.JoinHostPort(host, port) + "/eID-Client"
	soapMux := http.NewServeMux()
	soapMux.HandleFunc("POST /eID", s.handleSOAP)
	quiet := log.New(io.Discard, "", 0)
	s.soapSrv = &http.Server{Handler: soapMux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, ErrorLog: quiet,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{p.serverTLS},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}}
	s.clientSrv = &http.Server{Handler: s.clientHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, ErrorLog: quiet}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.soapSrv.ServeTLS(soapLn, "", "") }()
	go func() { defer wg.Done(); _ = s.clientSrv.Serve(clientLn) }()
	go func() { wg.Wait(); close(s.done) }()
	return s, nil
}

// SetFilter installs f to change each signed SOAP answer before it is
// sent (tests: tampering, stripping the signature, replaying); nil removes
// it.
func (s *Simulator) SetFilter(f func(action string, answer []byte) []byte) {
	s.mu.Lock()
	s.filter = f
	s.mu.Unlock()
}

// Close stops both listeners.
func (s *Simulator) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(s.soapSrv.Shutdown(ctx), s.clientSrv.Shutdown(ctx))
	<-s.done
	return err
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if !config.IsLoopbackHost(host) {
		return errors.New("eidsim: the simulator listens on loopback addresses only, not " + addr)
	}
	return nil
}

// handleSOAP serves the eID-Interface.
func (s *Simulator) handleSOAP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, wsse.MaxMessage+1))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	action, _ := strconv.Unquote(r.Header.Get("SOAPAction"))
	v, err := s.verifier.Verify(raw)
	if err != nil {
		// TR-03130-1 §3: a request whose signature does not verify gets
		// nothing but common#internalError.
		s.answer(w, action, s.errorFor(action, eid.MinorInternalError, "request signature: "+err.Error()))
		return
	}
	switch v.Payload.Tag {
	case "useIDRequest":
		var req eid.UseIDRequest
		if err := eid.Decode(v.Canonical, &req); err != nil {
			s.answer(w, action, &eid.UseIDResponse{Result: errResult(eid.MinorSchemaViolation, err.Error())})
			return
		}
		s.answer(w, eid.ActionUseID, s.useID(&req))
	case "getResultRequest":
		var req eid.GetResultRequest
		if err := eid.Decode(v.Canonical, &req); err != nil {
			s.answer(w, action, &eid.GetResultResponse{Result: errResult(eid.MinorSchemaViolation, err.Error())})
			return
		}
		s.answer(w, eid.ActionGetResult, s.getResult(&req))
	case "getServerInfoRequest":
		s.answer(w, eid.ActionGetServerInfo, s.serverInfo())
	default:
		http.Error(w, "unknown operation", http.StatusBadRequest)
	}
}

// errorFor is the error answer of the operation named by the SOAPAction.
func (s *Simulator) errorFor(action, minor, msg string) any {
	if action == eid.ActionGetResult {
		return &eid.GetResultResponse{Result: errResult(minor, msg)}
	}
	return &eid.UseIDResponse{Result: errResult(minor, msg)}
}

func errResult(minor, msg string) eid.Result {
	return eid.Result{Major: eid.MajorError, Minor: minor, Message: msg}
}

// answer signs and writes a message.
func (s *Simulator) answer(w http.ResponseWriter, action string, msg any) {
	el, err := eid.Element(msg)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	out, err := s.signer.Envelope(el)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	f := s.filter
	s.mu.Unlock()
	if f != nil {
		out = f(action, out)
	}
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	_, _ = w.Write(out)
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// useID opens a session (TR-03130-1 §3.2.1).
func (s *Simulator) useID(req *eid.UseIDRequest) *eid.UseIDResponse {
	ops := &req.UseOperations
	for _, op := range eid.Operations {
		switch v := ops.Get(op); v {
		case "", eid.Prohibited:
		case eid.Required, eid.Allowed:
			if s.o.Rights != nil && s.o.Rights.Get(op) != eid.Allowed {
				return &eid.UseIDResponse{Result: errResult(eid.MinorMissingTerminalRight, op+" is not permitted by the authorization certificate")}
			}
		default:
			return &eid.UseIDResponse{Result: errResult(eid.MinorSchemaViolation, op+": "+v)}
		}
	}
	asked := false
	for _, op := range eid.Operations {
		if v := ops.Get(op); v == eid.Required || v == eid.Allowed {
			asked = true
		}
	}
	if !asked {
		return &eid.UseIDResponse{Result: errResult(eid.MinorMissingArgument, "UseOperations requests nothing")}
	}
	if (ops.AgeVerification == eid.Required || ops.AgeVerification == eid.Allowed) && (req.AgeRequest == nil || req.AgeRequest.Age <= 0) {
		return &eid.UseIDResponse{Result: errResult(eid.MinorMissingArgument, "AgeVerificationRequest missing")}
	}
	if (ops.PlaceVerification == eid.Required || ops.PlaceVerification == eid.Allowed) && (req.PlaceRequest == nil || req.PlaceRequest.CommunityID == "") {
		return &eid.UseIDResponse{Result: errResult(eid.MinorMissingArgument, "PlaceVerificationRequest missing")}
	}
	psk := eid.PSK{ID: randHex(16), Key: randHex(32)}
	if req.PSK != nil {
		if eid.ValidPSK(req.PSK) != nil {
			return &eid.UseIDResponse{Result: errResult(eid.MinorInvalidPSK, "the PSK is not valid")}
		}
		psk = *req.PSK
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	if len(s.sessions) >= s.o.MaxSessions {
		return &eid.UseIDResponse{Result: errResult(eid.MinorTooManyOpenSessions, "")}
	}
	if _, dup := s.byPSK[psk.ID]; dup {
		return &eid.UseIDResponse{Result: errResult(eid.MinorInvalidPSK, "PSK ID in use")}
	}
	ss := &session{id: randHex(32), psk: psk, req: *req, created: s.o.Now()}
	s.sessions[ss.id], s.byPSK[psk.ID] = ss, ss
	return &eid.UseIDResponse{Session: &eid.Session{ID: ss.id}, ECardServerAddress: s.PAOSURL, PSK: &psk,
		Result: eid.Result{Major: eid.MajorOK}}
}

// expire drops sessions older than 30 minutes (s.mu held).
func (s *Simulator) expire() {
	for id, ss := range s.sessions {
		if s.o.Now().Sub(ss.created) > 30*time.Minute {
			s.drop(ss)
			delete(s.sessions, id)
		}
	}
}

func (s *Simulator) drop(ss *session) {
	delete(s.sessions, ss.id)
	delete(s.byPSK, ss.psk.ID)
}

// getResult answers a poll (TR-03130-1 §3.2.2).
func (s *Simulator) getResult(req *eid.GetResultRequest) *eid.GetResultResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[req.Session.ID]
	if !ok {
		return &eid.GetResultResponse{Result: errResult(eid.MinorInvalidSession, "")}
	}
	if req.RequestCounter <= ss.counter {
		// A replayed or reordered request ends the session.
		s.drop(ss)
		return &eid.GetResultResponse{Result: errResult(eid.MinorInvalidCounter, "RequestCounter did not increase")}
	}
	ss.counter = req.RequestCounter
	if !ss.finished || ss.polls < s.o.PendingPolls {
		if ss.finished {
			ss.polls++
		}
		return &eid.GetResultResponse{Result: errResult(eid.MinorNoResultYet, "")}
	}
	// Any answer but noResultYet ends the session and deletes its data.
	s.drop(ss)
	switch {
	case ss.cancelled:
		return &eid.GetResultResponse{Result: errResult(eid.MinorInternalError, "the user cancelled")}
	case ss.card.Blocked:
		return &eid.GetResultResponse{Result: errResult(eid.MinorDeniedDocument, "the card is on the black list")}
	case ss.card.Expired(s.o.Now()):
		return &eid.GetResultResponse{Result: errResult(eid.MinorInvalidDocument, "the document has expired")}
	}
	return s.result(ss)
}

// result builds the successful answer from the card and the user's choice.
func (s *Simulator) result(ss *session) *eid.GetResultResponse {
	res := &eid.GetResultResponse{OperationsAllowedByUser: &eid.Ops{}, Result: eid.Result{Major: eid.MajorOK}}
	oabu := res.OperationsAllowedByUser
	for _, op := range eid.Operations {
		switch want := ss.req.UseOperations.Get(op); {
		case op == "CommunityID" && want == "":
		case (want == eid.Required || want == eid.Allowed) && ss.released.Get(op) != eid.Prohibited:
			if ss.card.has(op) {
				oabu.Set(op, eid.Allowed)
			} else {
				oabu.Set(op, eid.NotOnChip)
			}
		default:
			oabu.Set(op, eid.Prohibited)
		}
	}
	res.PersonalData = ss.card.release(oabu)
	if oabu.AgeVerification == eid.Allowed && ss.req.AgeRequest != nil {
		res.FulfilsAgeVerification = &eid.Verification{FulfilsRequest: ss.card.OldEnough(ss.req.AgeRequest.Age, s.o.Now())}
	}
	if oabu.PlaceVerification == eid.Allowed && ss.req.PlaceRequest != nil {
		res.FulfilsPlaceVerification = &eid.Verification{FulfilsRequest: strings.HasPrefix(ss.card.Data.CommunityID, ss.req.PlaceRequest.CommunityID)}
	}
	if ss.req.LevelOfAssurance != "" {
		res.LevelOfAssuranceResult = "http://bsi.bund.de/eID/LoA/hoch"
	}
	if ss.req.EIDTypeRequest != nil {
		res.EIDTypeResponse = &eid.EIDTypes{CardCertified: "USED"}
	}
	return res
}

func (s *Simulator) serverInfo() *eid.GetServerInfoResponse {
	rights := eid.Ops{}
	rights.Fill(eid.Allowed)
	if s.o.Rights != nil {
		rights = *s.o.Rights
		rights.Fill(eid.Prohibited)
	}
	rights.CommunityID = ""
	return &eid.GetServerInfoResponse{
		ServerVersion:              eid.ServerVersion{VersionString: "Trustbroker eID-Server simulator 2.4.0", Major: 2, Minor: 4, Bugfix: 0},
		DocumentVerificationRights: rights,
	}
}
