package webauthn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers"
)

// registrationProtocol marks the short-lived transaction rows that keep a
// registration challenge between options and finish.
const registrationProtocol = "webauthn-register"

const maxNameLen = 64

// AccountHandler implements providers.AccountProvider: the page on which
// the signed-in owner registers, lists, renames and removes credentials.
func (p *Provider) AccountHandler(host providers.AccountHost) http.Handler {
	a := &accountPages{p: p, host: host, base: "/account/" + p.id}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+a.base, a.show)
	mux.HandleFunc("POST "+a.base+"/register/options", a.registerOptions)
	mux.HandleFunc("POST "+a.base+"/register/finish", a.registerFinish)
	mux.HandleFunc("POST "+a.base+"/rename", a.rename)
	mux.HandleFunc("POST "+a.base+"/remove", a.remove)
	return mux
}

type accountPages struct {
	p    *Provider
	host providers.AccountHost
	base string
}

// credentialView is one row of the credential table.
type credentialView struct {
	Ref, Name, Kind, Created, LastUsed string
	Synced, Cloned                     bool
}

// accountPage is the data of the webauthn_account template.
type accountPage struct {
	Base, CSRF, Error, Notice, UserName, MinLoA string
	Credentials                                 []credentialView
	CanRegister, NeedUserName                   bool
}

func (a *accountPages) session(w http.ResponseWriter, r *http.Request) (*store.Session, bool) {
	s, err := a.host.Session(r)
	if err != nil {
		lang := a.host.Lang(r)
		a.host.Render(w, r, http.StatusUnauthorized, "error", lang, struct{ Message, RequestID string }{
			a.host.Text(lang, "webauthn.account.login_first"), ""})
		return nil, false
	}
	return s, true
}

func (a *accountPages) canRegister(s *store.Session) bool {
	l, err := loa.Parse(s.LoA)
	return err == nil && l.Satisfies(a.p.s.registrationMin)
}

func (a *accountPages) show(w http.ResponseWriter, r *http.Request) {
	s, ok := a.session(w, r)
	if !ok {
		return
	}
	a.render(w, r, s, http.StatusOK, r.URL.Query().Get("error"), r.URL.Query().Get("notice"))
}

func (a *accountPages) render(w http.ResponseWriter, r *http.Request, s *store.Session, status int, errKey, noticeKey string) {
	ctx, lang := r.Context(), a.host.Lang(r)
	creds, err := a.p.st.WebAuthn().ListByAccount(ctx, s.AccountID)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	page := accountPage{
		Base: a.base, CSRF: a.host.CSRFToken(s), CanRegister: a.canRegister(s), MinLoA: a.p.s.registrationMin.String(),
	}
	if errKey != "" && strings.HasPrefix(errKey, "webauthn.") {
		page.Error = a.host.Text(lang, errKey)
	}
	if noticeKey != "" && strings.HasPrefix(noticeKey, "webauthn.") {
		page.Notice = a.host.Text(lang, noticeKey)
	}
	for _, c := range creds {
		if c.ProviderID != a.p.id {
			continue
		}
		if page.UserName == "" {
			page.UserName = c.UserName
		}
		kind := "webauthn.account.kind_key"
		if c.Discoverable {
			kind = "webauthn.account.kind_passkey"
		}
		v := credentialView{Ref: credentialRef(c.ID), Name: c.Name, Kind: a.host.Text(lang, kind),
			Created: formatTime(c.CreatedAt, lang), LastUsed: formatTime(c.LastUsedAt, lang),
			Synced: c.BackupEligible, Cloned: c.Cloned}
		if v.LastUsed == "" {
			v.LastUsed = a.host.Text(lang, "webauthn.account.never")
		}
		page.Credentials = append(page.Credentials, v)
	}
	page.NeedUserName = page.UserName == ""
	a.host.Render(w, r, status, "webauthn_account", lang, page)
}

func formatTime(t time.Time, lang string) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(time.UTC)
	if lang == "en" {
		return t.Format("2006-01-02 15:04 UTC")
	}
	return t.Format("02.01.2006 15:04 UTC")
}

// jsonError answers a script's request with a message in the page's
// language.
func (a *accountPages) jsonError(w http.ResponseWriter, r *http.Request, status int, key string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": a.host.Text(a.host.Lang(r), key)})
}

// checkScript checks the session and the X-CSRF-Token header of a script's
// request and reads its JSON body into v.
func (a *accountPages) checkScript(w http.ResponseWriter, r *http.Request, v any) (*store.Session, bool) {
	s, err := a.host.Session(r)
	if err != nil {
		a.jsonError(w, r, http.StatusUnauthorized, "webauthn.account.login_first")
		return nil, false
	}
	if !a.host.CSRFValid(s, r.Header.Get("X-CSRF-Token")) {
		a.jsonError(w, r, http.StatusForbidden, "webauthn.account.failed")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil || json.Unmarshal(body, v) != nil {
		a.jsonError(w, r, http.StatusBadRequest, "webauthn.account.failed")
		return nil, false
	}
	return s, true
}

// checkForm checks the session and the form's CSRF token.
func (a *accountPages) checkForm(w http.ResponseWriter, r *http.Request) (*store.Session, bool) {
	s, ok := a.session(w, r)
	if !ok {
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !a.host.CSRFValid(s, r.PostForm.Get("csrf")) {
		lang := a.host.Lang(r)
		a.host.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{
			a.host.Text(lang, "webauthn.account.failed"), ""})
		return nil, false
	}
	return s, true
}

// accountUser is the go-webauthn user of an account at this provider: its
// user handle (the subject of its linked identity here, or a new random
// one) and credentials.
func (a *accountPages) accountUser(ctx context.Context, accountID string) (*user, bool, error) {
	ids, err := a.p.st.Accounts().Identities(ctx, accountID)
	if err != nil {
		return nil, false, err
	}
	u := &user{}
	linked := false
	for _, li := range ids {
		if li.ProviderID == a.p.id {
			if u.handle, err = base64.RawURLEncoding.DecodeString(li.Subject); err != nil {
				return nil, false, err
			}
			linked = true
		}
	}
	if !linked {
		u.handle = make([]byte, 32)
		if _, err := rand.Read(u.handle); err != nil {
			return nil, false, err
		}
	}
	creds, err := a.p.st.WebAuthn().ListByAccount(ctx, accountID)
	if err != nil {
		return nil, false, err
	}
	for _, c := range creds {
		if c.ProviderID == a.p.id {
			u.creds = append(u.creds, c)
			if u.name == "" {
				u.name = c.UserName
			}
		}
	}
	return u, linked, nil
}

type registerOptionsInput struct {
	UserName string `json:"username"`
}

// registrationState is kept in a short-lived transaction row.
type registrationState struct {
	Session  gowebauthn.SessionData `json:"session"`
	Handle   []byte                 `json:"handle"`
	UserName string                 `json:"username"`
	IssuedAt time.Time              `json:"issued_at"`
}

func (a *accountPages) registerOptions(w http.ResponseWriter, r *http.Request) {
	var in registerOptionsInput
	s, ok := a.checkScript(w, r, &in)
	if !ok {
		return
	}
	ctx := r.Context()
	if !a.canRegister(s) {
		a.host.Audit(ctx, s.AccountID, "webauthn.register", a.p.id, store.OutcomeDenied, "session level "+s.LoA+" too low", nil)
		a.jsonError(w, r, http.StatusForbidden, "webauthn.account.loa_too_low")
		return
	}
	u, _, err := a.accountUser(ctx, s.AccountID)
	if err != nil {
		a.jsonError(w, r, http.StatusInternalServerError, "webauthn.account.failed")
		return
	}
	if u.name == "" {
		name := strings.TrimSpace(in.UserName)
		if name == "" || !utf8.ValidString(name) || len(name) > maxNameLen {
			a.jsonError(w, r, http.StatusBadRequest, "webauthn.account.username_required")
			return
		}
		taken, err := a.p.st.WebAuthn().ListByUserName(ctx, a.p.id, name)
		if err != nil || len(taken) > 0 {
			a.jsonError(w, r, http.StatusConflict, "webauthn.account.username_taken")
			return
		}
		u.name = name
	}
	creation, sd, err := a.p.beginRegistration(u)
	if err != nil {
		a.jsonError(w, r, http.StatusInternalServerError, "webauthn.account.failed")
		return
	}
	sd.Expires = time.Time{}
	now := a.p.now()
	state, _ := json.Marshal(registrationState{Session: *sd, Handle: u.handle, UserName: u.name, IssuedAt: now})
	idb := make([]byte, 24)
	_, _ = rand.Read(idb)
	regID := base64.RawURLEncoding.EncodeToString(idb)
	err = a.p.st.Transactions().Create(ctx, &store.Transaction{
		ID: regID, Protocol: registrationProtocol, ProviderID: a.p.id, State: store.TxStateProvider,
		ExpiresAt: now.Add(a.p.s.ttl), ProviderState: state, AccountID: s.AccountID, SessionID: s.ID,
	})
	if err != nil {
		a.jsonError(w, r, http.StatusInternalServerError, "webauthn.account.failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"registration": regID, "options": creation})
}

type registerFinishInput struct {
	Registration string          `json:"registration"`
	Name         string          `json:"name"`
	Credential   json.RawMessage `json:"credential"`
}

func (a *accountPages) registerFinish(w http.ResponseWriter, r *http.Request) {
	var in registerFinishInput
	s, ok := a.checkScript(w, r, &in)
	if !ok {
		return
	}
	ctx := r.Context()
	deny := func(status int, key, reason string) {
		a.host.Audit(ctx, s.AccountID, "webauthn.register", a.p.id, store.OutcomeFailure, reason, nil)
		a.jsonError(w, r, status, key)
	}
	if in.Registration == "" {
		deny(http.StatusBadRequest, "webauthn.account.failed", "no registration id")
		return
	}
	tx, err := a.p.st.Transactions().Get(ctx, in.Registration)
	if err != nil || tx.Protocol != registrationProtocol || tx.SessionID != s.ID || tx.ProviderID != a.p.id {
		deny(http.StatusBadRequest, "webauthn.account.expired", "unknown or foreign registration")
		return
	}
	// Single use: of two finishes with the same challenge one deletes it.
	if err := a.p.st.Transactions().Delete(ctx, tx.ID); err != nil {
		deny(http.StatusBadRequest, "webauthn.account.expired", "registration used before")
		return
	}
	var rs registrationState
	if err := json.Unmarshal(tx.ProviderState, &rs); err != nil || a.p.now().Sub(rs.IssuedAt) > a.p.s.ttl {
		deny(http.StatusBadRequest, "webauthn.account.expired", "registration expired")
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(in.Credential)
	if err != nil {
		deny(http.StatusBadRequest, "webauthn.account.failed", "unreadable attestation: "+err.Error())
		return
	}
	u, linked, err := a.accountUser(ctx, s.AccountID)
	if err != nil || (linked && !bytes.Equal(u.handle, rs.Handle)) {
		deny(http.StatusConflict, "webauthn.account.failed", "user handle changed")
		return
	}
	u.handle, u.name = rs.Handle, rs.UserName
	cred, attested, err := a.p.createCredential(u, rs.Session, parsed)
	if errors.Is(err, errMDSRefused) {
		deny(http.StatusBadRequest, "webauthn.account.authenticator_refused", err.Error())
		return
	}
	if err != nil {
		deny(http.StatusBadRequest, "webauthn.account.failed", protocolError(err).Error())
		return
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || !utf8.ValidString(name) || len(name) > maxNameLen {
		name = a.host.Text(a.host.Lang(r), "webauthn.account.default_name")
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	now := a.p.now()
	rec := &store.WebAuthnCredential{
		ID: cred.ID, AccountID: s.AccountID, ProviderID: a.p.id, UserHandle: rs.Handle, UserName: rs.UserName,
		PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, UserVerified: cred.Flags.UserVerified,
		Transports: transports, AttestationFormat: cred.AttestationFormat, AttestationType: cred.AttestationType,
		Attested:     attested,
		Discoverable: (cred.Extensions.RK != nil && *cred.Extensions.RK) || a.p.s.residentKey == protocol.ResidentKeyRequirementRequired,
		Name:         name, CreatedAt: now,
	}
	err = a.p.st.InTx(ctx, func(tx store.Store) error {
		if err := tx.WebAuthn().Create(ctx, rec); err != nil {
			return err
		}
		if linked {
			return nil
		}
		return tx.Accounts().Link(ctx, store.LinkedIdentity{
			AccountID: s.AccountID, ProviderID: a.p.id, Subject: subjectOf(rs.Handle), Kind: providers.KindWebAuthn,
			LinkedAt: now,
		})
	})
	if errors.Is(err, store.ErrConflict) {
		deny(http.StatusConflict, "webauthn.account.already_registered", "credential id registered already")
		return
	}
	if err != nil {
		deny(http.StatusInternalServerError, "webauthn.account.failed", err.Error())
		return
	}
	a.host.Audit(ctx, s.AccountID, "webauthn.register", credentialRef(rec.ID), store.OutcomeSuccess, "",
		map[string]any{"provider": a.p.id, "format": rec.AttestationFormat, "backup_eligible": rec.BackupEligible,
			"user_verified": rec.UserVerified, "discoverable": rec.Discoverable, "attested": rec.Attested})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"next": a.base + "?notice=webauthn.account.registered"})
}

// ownCredential loads the credential named by the form's id, which must
// belong to the session's account at this provider.
func (a *accountPages) ownCredential(ctx context.Context, s *store.Session, ref string) (*store.WebAuthnCredential, bool) {
	id, err := base64.RawURLEncoding.DecodeString(ref)
	if err != nil || len(id) == 0 {
		return nil, false
	}
	c, err := a.p.st.WebAuthn().Get(ctx, id)
	if err != nil || c.AccountID != s.AccountID || c.ProviderID != a.p.id {
		return nil, false
	}
	return c, true
}

func (a *accountPages) back(w http.ResponseWriter, r *http.Request, param, key string) {
	target := a.base + "?" + param + "=" + key
	if l := r.URL.Query().Get("lang"); l == "de" || l == "en" {
		target += "&lang=" + l
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (a *accountPages) rename(w http.ResponseWriter, r *http.Request) {
	s, ok := a.checkForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	c, ok := a.ownCredential(ctx, s, r.PostForm.Get("id"))
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if !ok || name == "" || !utf8.ValidString(name) || len(name) > maxNameLen {
		a.host.Audit(ctx, s.AccountID, "webauthn.rename", r.PostForm.Get("id"), store.OutcomeFailure, "bad credential or name", nil)
		a.back(w, r, "error", "webauthn.account.rename_failed")
		return
	}
	if err := a.p.st.WebAuthn().Rename(ctx, c.ID, name); err != nil {
		a.back(w, r, "error", "webauthn.account.rename_failed")
		return
	}
	a.host.Audit(ctx, s.AccountID, "webauthn.rename", credentialRef(c.ID), store.OutcomeSuccess, "", map[string]string{"name": name})
	a.back(w, r, "notice", "webauthn.account.renamed")
}

// remove deletes a credential unless it is the account's last way to log
// in: at least one credential or a card (another linked identity) must
// remain.
func (a *accountPages) remove(w http.ResponseWriter, r *http.Request) {
	s, ok := a.checkForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	c, ok := a.ownCredential(ctx, s, r.PostForm.Get("id"))
	if !ok {
		a.host.Audit(ctx, s.AccountID, "webauthn.remove", r.PostForm.Get("id"), store.OutcomeFailure, "unknown credential", nil)
		a.back(w, r, "error", "webauthn.account.remove_failed")
		return
	}
	errLast := errors.New("last credential")
	err := a.p.st.InTx(ctx, func(tx store.Store) error {
		creds, err := tx.WebAuthn().ListByAccount(ctx, s.AccountID)
		if err != nil {
			return err
		}
		ids, err := tx.Accounts().Identities(ctx, s.AccountID)
		if err != nil {
			return err
		}
		others, sameHandle := 0, 0
		for _, o := range creds {
			if !bytes.Equal(o.ID, c.ID) && !o.Cloned {
				others++
				if o.ProviderID == c.ProviderID && bytes.Equal(o.UserHandle, c.UserHandle) {
					sameHandle++
				}
			}
		}
		for _, li := range ids {
			if li.Kind != providers.KindWebAuthn {
				others++
			}
		}
		if others == 0 {
			return errLast
		}
		if err := tx.WebAuthn().Delete(ctx, c.ID); err != nil {
			return err
		}
		if sameHandle == 0 {
			if err := tx.Accounts().Unlink(ctx, a.p.id, subjectOf(c.UserHandle)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errLast) {
		a.host.Audit(ctx, s.AccountID, "webauthn.remove", credentialRef(c.ID), store.OutcomeDenied, "last credential", nil)
		a.back(w, r, "error", "webauthn.account.last_credential")
		return
	}
	if err != nil {
		a.back(w, r, "error", "webauthn.account.remove_failed")
		return
	}
	a.host.Audit(ctx, s.AccountID, "webauthn.remove", credentialRef(c.ID), store.OutcomeSuccess, "", nil)
	a.back(w, r, "notice", "webauthn.account.removed")
}

// createCredential verifies a registration (go-webauthn checks the
// attestation statement and, with an MDS, the chain to the roots of the
// authenticator's entry and its status) and decides whether the
// credential counts as attested hardware.
func (p *Provider) createCredential(u *user, sd gowebauthn.SessionData, parsed *protocol.ParsedCredentialCreationData) (*gowebauthn.Credential, bool, error) {
	cred, err := p.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		var pe *protocol.Error
		if p.s.mds != nil && errors.As(err, &pe) && strings.Contains(pe.Details+" "+pe.DevInfo, "undesired status") {
			return nil, false, fmt.Errorf("%w: %s", errMDSRefused, pe.DevInfo)
		}
		return nil, false, err
	}
	now := p.now()
	if err := p.s.mds.check(context.Background(), cred.Authenticator.AAGUID, now); err != nil {
		return nil, false, err
	}
	return cred, p.s.mds.attested(cred.AttestationFormat, cred.AttestationType, cred.Authenticator.AAGUID, now), nil
}
