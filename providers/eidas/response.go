package eidas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// Result is a validated eIDAS answer.
type Result struct {
	AssertionID  string
	Issuer       string
	NameID       string
	LoA          loa.Level
	LoAURI       string
	Notified     bool
	AuthnInstant time.Time
	Person       *Person
	// Encrypted: the assertion arrived as an EncryptedAssertion.
	Encrypted bool
}

// refusal is a validation failure: Code for the audit log and the error
// page's provider message, the cause for the log.
type refusal struct {
	code string
	err  error
}

func (r *refusal) Error() string { return r.code + ": " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(code, format string, args ...any) error {
	return &refusal{code: code, err: fmt.Errorf(format, args...)}
}

// Refusal codes (the audit reason of a failed eIDAS login).
const (
	CodeMalformed   = "response_malformed"
	CodeSignature   = "bad_signature"
	CodeWrapped     = "signature_wrapping"
	CodeDecrypt     = "decryption_failed"
	CodeUnencrypted = "unencrypted_assertion"
	CodeInResponse  = "wrong_in_response_to"
	CodeDestination = "wrong_destination"
	CodeRecipient   = "wrong_recipient"
	CodeAudience    = "wrong_audience"
	CodeIssuer      = "wrong_issuer"
	CodeExpired     = "expired"
	CodeNotYetValid = "not_yet_valid"
	CodeReplayed    = "replayed"
	CodeLoATooLow   = "loa_too_low"
	CodeNotNotified = "loa_not_notified"
	CodeStatus      = "node_status"
	CodeCancelled   = "cancelled"
	CodeAttributes  = "attributes_invalid"
)

// expect is what a response must match.
type expect struct {
	RequestID string
	Node      *Node
	LoA       loa.Level
	Now       time.Time
}

// validate checks an eIDAS SAML Response (the raw XML, base64-decoded)
// against the AuthnRequest it answers. Every check of SECURITY.md §2 for
// the SP side: signature of the Response or the Assertion (both when
// present) with the node's certificates only, only the signed bytes used,
// exactly one assertion, decryption, status, issuer, InResponseTo,
// Destination, Recipient, Audience, bearer confirmation, validity window
// with skew, one-time use of the assertion ID and of the request, LoA.
func (p *Provider) validate(ctx context.Context, raw []byte, e expect) (*Result, error) {
	doc, err := xmlsig.Parse(raw)
	if err != nil {
		return nil, refuse(CodeMalformed, "%v", err)
	}
	resp := doc.Root()
	if resp.Tag != "Response" || resp.NamespaceURI() != NSSAMLP {
		return nil, refuse(CodeMalformed, "not a samlp:Response")
	}
	vo := xmlsig.VerifyOptions{Certificates: e.Node.Certificates, Now: e.Now, Algorithms: eidasSignatureAlgorithms}
	responseSigned := false
	switch v, err := xmlsig.Verify(resp, vo); {
	case err == nil:
		resp, responseSigned = v.Element, true
	case errors.Is(err, xmlsig.ErrNoSignature):
	default:
		return nil, refuse(CodeSignature, "response: %v", err)
	}
	if resp.SelectAttrValue("Version", "") != "2.0" {
		return nil, refuse(CodeMalformed, "Version %q", resp.SelectAttrValue("Version", ""))
	}
	if err := p.checkIssuer(resp, e.Node, !responseSigned); err != nil {
		return nil, err
	}
	if got := resp.SelectAttrValue("InResponseTo", ""); got != e.RequestID {
		return nil, refuse(CodeInResponse, "response InResponseTo %q, want %q", got, e.RequestID)
	}
	if got := resp.SelectAttrValue("Destination", ""); got != p.acsURL {
		return nil, refuse(CodeDestination, "Destination %q, want %q", got, p.acsURL)
	}
	// The response is posted as soon as it is made: its IssueInstant lies
	// within the last ten minutes (the EUMW's window), with the skew.
	ii, err := parseTime(resp.SelectAttrValue("IssueInstant", ""))
	if err != nil {
		return nil, refuse(CodeMalformed, "IssueInstant: %v", err)
	}
	if ii.After(e.Now.Add(p.s.ClockSkew)) {
		return nil, refuse(CodeNotYetValid, "response issued in the future (%s)", ii)
	}
	if ii.Before(e.Now.Add(-maxResponseAge - p.s.ClockSkew)) {
		return nil, refuse(CodeExpired, "response issued at %s, too long ago", ii)
	}
	if err := checkStatus(resp); err != nil {
		return nil, err
	}

	plain := xmlsig.Children(resp, NSSAML, "Assertion")
	enc := xmlsig.Children(resp, NSSAML, "EncryptedAssertion")
	if len(plain)+len(enc) != 1 {
		return nil, refuse(CodeWrapped, "%d assertions and %d encrypted assertions, want exactly one", len(plain), len(enc))
	}
	if n := len(resp.FindElements("//Assertion")) + len(resp.FindElements("//EncryptedAssertion")); n != 1 {
		return nil, refuse(CodeWrapped, "assertion elements nested elsewhere in the response")
	}
	var assertion *etree.Element
	encrypted := len(enc) == 1
	if encrypted {
		assertion, err = p.decryptAssertion(enc[0])
		if err != nil {
			return nil, err
		}
	} else {
		if p.s.RequireEncryption {
			return nil, refuse(CodeUnencrypted, "the assertion was not encrypted")
		}
		assertion = plain[0]
	}
	switch v, err := xmlsig.Verify(assertion, vo); {
	case err == nil:
		assertion = v.Element
	case errors.Is(err, xmlsig.ErrNoSignature):
		if !responseSigned {
			return nil, refuse(CodeSignature, "neither the response nor the assertion is signed")
		}
	default:
		return nil, refuse(CodeSignature, "assertion: %v", err)
	}
	if xmlsig.HasSignature(assertion) {
		return nil, refuse(CodeWrapped, "signature left in the assertion")
	}
	res, err := p.checkAssertion(assertion, e)
	if err != nil {
		return nil, err
	}
	res.Encrypted = encrypted
	// One-time use: the assertion ID, and the request (one answer each),
	// across replicas, until the assertion would expire anyway.
	until := e.Now.Add(24 * time.Hour)
	if p.replay == nil {
		return nil, errors.New("eidas: no replay cache (the provider was built without the store)")
	}
	if err := p.replay.Use(ctx, "eidas.assertion", p.id+"|"+e.Node.EntityID+"|"+res.AssertionID, until); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, refuse(CodeReplayed, "assertion %s was used before", res.AssertionID)
		}
		return nil, err
	}
	if err := p.replay.Use(ctx, "eidas.request", p.id+"|"+e.RequestID, until); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, refuse(CodeReplayed, "request %s was answered before", e.RequestID)
		}
		return nil, err
	}
	return res, nil
}

// maxResponseAge bounds how old a response may be when it arrives.
const maxResponseAge = 10 * time.Minute

// eidasSignatureAlgorithms: eIDAS Cryptographic Requirements 1.2 §2.2,
// RSA PKCS#1 v1.5 is not accepted.
var eidasSignatureAlgorithms = []string{xmlsig.AlgECDSASHA256, xmlsig.AlgECDSASHA384, xmlsig.AlgECDSASHA512, xmlsig.AlgRSAPSSSHA256}

func (p *Provider) checkIssuer(el *etree.Element, node *Node, required bool) error {
	iss, err := xmlsig.Child(el, NSSAML, "Issuer")
	if err != nil {
		return refuse(CodeMalformed, "%v", err)
	}
	if iss == nil {
		if required {
			return refuse(CodeIssuer, "%s without Issuer", el.Tag)
		}
		return nil
	}
	if f := iss.SelectAttrValue("Format", NameIDEntity); f != NameIDEntity {
		return refuse(CodeIssuer, "Issuer format %q", f)
	}
	if got := xmlsig.Text(iss); got != node.EntityID {
		return refuse(CodeIssuer, "%s Issuer %q, want %q", el.Tag, got, node.EntityID)
	}
	return nil
}

func checkStatus(resp *etree.Element) error {
	st, _ := xmlsig.Child(resp, NSSAMLP, "Status")
	if st == nil {
		return refuse(CodeMalformed, "no Status")
	}
	sc, _ := xmlsig.Child(st, NSSAMLP, "StatusCode")
	if sc == nil {
		return refuse(CodeMalformed, "no StatusCode")
	}
	top := sc.SelectAttrValue("Value", "")
	if top == StatusSuccess {
		return nil
	}
	second := ""
	if sub, _ := xmlsig.Child(sc, NSSAMLP, "StatusCode"); sub != nil {
		second = sub.SelectAttrValue("Value", "")
	}
	msg := ""
	if m, _ := xmlsig.Child(st, NSSAMLP, "StatusMessage"); m != nil {
		msg = xmlsig.Text(m)
	}
	switch second {
	case "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed", "urn:oasis:names:tc:SAML:2.0:status:RequestDenied",
		"urn:oasis:names:tc:SAML:2.0:status:NoPassive":
		return refuse(CodeCancelled, "node status %s / %s: %q", top, second, msg)
	}
	return refuse(CodeStatus, "node status %s / %s: %q", top, second, msg)
}

func (p *Provider) decryptAssertion(ea *etree.Element) (*etree.Element, error) {
	eds := xmlsig.Children(ea, xmlsig.NSXMLEnc, "EncryptedData")
	if len(eds) != 1 {
		return nil, refuse(CodeMalformed, "EncryptedAssertion needs one EncryptedData")
	}
	var keys []*etree.Element
	for _, c := range ea.ChildElements() {
		if c != eds[0] {
			keys = append(keys, c)
		}
	}
	pt, err := xmlsig.Decrypt(eds[0], keys, p.s.EncryptionKey)
	if err != nil {
		return nil, refuse(CodeDecrypt, "%v", err)
	}
	d, err := xmlsig.Parse(pt)
	if err != nil {
		return nil, refuse(CodeMalformed, "decrypted assertion: %v", err)
	}
	a := d.Root()
	if a.Tag != "Assertion" || a.NamespaceURI() != NSSAML {
		return nil, refuse(CodeMalformed, "decrypted element is not a saml:Assertion")
	}
	return a, nil
}

func (p *Provider) checkAssertion(a *etree.Element, e expect) (*Result, error) {
	skew := p.s.ClockSkew
	res := &Result{AssertionID: a.SelectAttrValue("ID", ""), Issuer: e.Node.EntityID}
	if res.AssertionID == "" || a.SelectAttrValue("Version", "") != "2.0" {
		return nil, refuse(CodeMalformed, "assertion without ID or of another version")
	}
	if err := p.checkIssuer(a, e.Node, true); err != nil {
		return nil, err
	}
	// Subject: NameID and a bearer confirmation for us.
	subj, err := xmlsig.Child(a, NSSAML, "Subject")
	if err != nil || subj == nil {
		return nil, refuse(CodeMalformed, "assertion needs one Subject")
	}
	nid, err := xmlsig.Child(subj, NSSAML, "NameID")
	if err != nil || nid == nil || xmlsig.Text(nid) == "" {
		return nil, refuse(CodeMalformed, "Subject needs one NameID")
	}
	res.NameID = xmlsig.Text(nid)
	confirmed := false
	var lastErr error
	for _, sc := range xmlsig.Children(subj, NSSAML, "SubjectConfirmation") {
		if sc.SelectAttrValue("Method", "") != CMBearer {
			continue
		}
		scd, _ := xmlsig.Child(sc, NSSAML, "SubjectConfirmationData")
		if scd == nil {
			lastErr = refuse(CodeMalformed, "bearer confirmation without data")
			continue
		}
		if got := scd.SelectAttrValue("Recipient", ""); got != p.acsURL {
			lastErr = refuse(CodeRecipient, "Recipient %q, want %q", got, p.acsURL)
			continue
		}
		if got := scd.SelectAttrValue("InResponseTo", ""); got != e.RequestID {
			lastErr = refuse(CodeInResponse, "confirmation InResponseTo %q, want %q", got, e.RequestID)
			continue
		}
		if err := window(scd, e.Now, skew, true); err != nil {
			lastErr = err
			continue
		}
		confirmed = true
		break
	}
	if !confirmed {
		if lastErr == nil {
			lastErr = refuse(CodeMalformed, "no bearer SubjectConfirmation")
		}
		return nil, lastErr
	}
	// Conditions: window and audience.
	cond, err := xmlsig.Child(a, NSSAML, "Conditions")
	if err != nil || cond == nil {
		return nil, refuse(CodeMalformed, "assertion needs one Conditions")
	}
	if err := window(cond, e.Now, skew, true); err != nil {
		return nil, err
	}
	ars := xmlsig.Children(cond, NSSAML, "AudienceRestriction")
	if len(ars) == 0 {
		return nil, refuse(CodeAudience, "no AudienceRestriction")
	}
	for _, ar := range ars {
		var auds []string
		for _, au := range xmlsig.Children(ar, NSSAML, "Audience") {
			auds = append(auds, xmlsig.Text(au))
		}
		if !slices.Contains(auds, p.entityID) {
			return nil, refuse(CodeAudience, "audience %v does not name %s", auds, p.entityID)
		}
	}
	// AuthnStatement: instant and the level reached.
	as, err := xmlsig.Child(a, NSSAML, "AuthnStatement")
	if err != nil || as == nil {
		return nil, refuse(CodeMalformed, "assertion needs one AuthnStatement")
	}
	if res.AuthnInstant, err = parseTime(as.SelectAttrValue("AuthnInstant", "")); err != nil {
		return nil, refuse(CodeMalformed, "AuthnInstant: %v", err)
	}
	if res.AuthnInstant.After(e.Now.Add(skew)) {
		return nil, refuse(CodeNotYetValid, "AuthnInstant %s lies in the future", res.AuthnInstant)
	}
	ref := as.FindElement("./AuthnContext/AuthnContextClassRef")
	if ref == nil || ref.NamespaceURI() != NSSAML {
		return nil, refuse(CodeMalformed, "no AuthnContextClassRef")
	}
	res.LoAURI = xmlsig.Text(ref)
	level, notified, ok := ParseLoA(res.LoAURI)
	if !ok {
		return nil, refuse(CodeLoATooLow, "AuthnContextClassRef %q is not an eIDAS level", res.LoAURI)
	}
	if !notified && !p.s.AcceptNotNotified {
		return nil, refuse(CodeNotNotified, "level %q of a not-notified scheme", res.LoAURI)
	}
	if !level.Satisfies(e.LoA) {
		return nil, refuse(CodeLoATooLow, "level %s reached, %s requested", level, e.LoA)
	}
	res.LoA, res.Notified = level, notified
	person, err := readPerson(a)
	if err != nil {
		return nil, refuse(CodeAttributes, "%v", err)
	}
	res.Person = person
	return res, nil
}

// window checks NotBefore / NotOnOrAfter of el with skew; NotOnOrAfter is
// required when mustEnd.
func window(el *etree.Element, now time.Time, skew time.Duration, mustEnd bool) error {
	if nb := el.SelectAttrValue("NotBefore", ""); nb != "" {
		t, err := parseTime(nb)
		if err != nil {
			return refuse(CodeMalformed, "%s NotBefore: %v", el.Tag, err)
		}
		if now.Add(skew).Before(t) {
			return refuse(CodeNotYetValid, "%s not valid before %s", el.Tag, nb)
		}
	}
	na := el.SelectAttrValue("NotOnOrAfter", "")
	if na == "" {
		if mustEnd {
			return refuse(CodeMalformed, "%s without NotOnOrAfter", el.Tag)
		}
		return nil
	}
	t, err := parseTime(na)
	if err != nil {
		return refuse(CodeMalformed, "%s NotOnOrAfter: %v", el.Tag, err)
	}
	if !now.Add(-skew).Before(t) {
		return refuse(CodeExpired, "%s expired at %s", el.Tag, na)
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	return time.Parse(time.RFC3339Nano, s)
}
