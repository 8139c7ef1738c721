// Package webauthn is the provider for FIDO2 security keys and passkeys,
// built on github.com/go-webauthn/webauthn. It is a
// providers.CeremonyProvider (login: options out, assertion in) and a
// providers.AccountProvider (the signed-in owner registers, lists, renames
// and removes credentials on /account/{id}).
//
// What go-webauthn checks (W3C WebAuthn L3 §7.2): type, challenge, origin,
// rpIdHash, UP, UV when required, signature, BE unchanged and BS without
// BE. What this package adds: the challenge is used once and expires
// (the broker's Replay store, the injected clock), the credential belongs
// to this provider and account, a signature counter that does not grow
// refuses the login and marks the credential cloned (go-webauthn only sets
// CloneWarning), and the counter update is a compare-and-swap so two
// racing assertions cannot both win.
package webauthn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/go-webauthn/webauthn/protocol"
	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers"
)

// Type is the configuration `type` of this provider.
const Type = "webauthn"

// replayNamespace keeps used challenges in the Replay store.
const replayNamespace = "webauthn-challenge"

// Provider is a configured WebAuthn provider.
type Provider struct {
	id  string
	s   *settings
	wa  *gowebauthn.WebAuthn
	st  store.Store
	now func() time.Time
}

var (
	_ providers.CeremonyProvider = (*Provider)(nil)
	_ providers.AccountProvider  = (*Provider)(nil)
)

// Factory builds the provider from its `config` block.
func Factory(id string, node *yaml.Node, path string, deps providers.Deps) (providers.Provider, error) {
	var c Config
	if err := config.DecodeStrict(node, &c, path); err != nil {
		return nil, err
	}
	s, err := c.settings(deps.Issuer, path)
	if err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("webauthn: the provider needs the broker's store")
	}
	return New(id, s, deps.Store, deps.Now)
}

// New builds a provider from validated settings.
func New(id string, s *settings, st store.Store, now func() time.Time) (*Provider, error) {
	if now == nil {
		now = time.Now
	}
	cfg := &gowebauthn.Config{
		RPID: s.rpID, RPDisplayName: s.rpName, RPOrigins: s.origins,
		AttestationPreference: s.attestation,
	}
	if s.mds != nil {
		cfg.MDS = s.mds.Provider()
	}
	wa, err := gowebauthn.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &Provider{id: id, s: s, wa: wa, st: st, now: now}, nil
}

// ID implements providers.Provider.
func (p *Provider) ID() string { return p.id }

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return providers.KindWebAuthn }

// MaxLoA implements providers.Provider.
func (p *Provider) MaxLoA() loa.Level { return p.s.maxLoA() }

// loginState is what the broker keeps in the transaction between Options
// and Finish.
type loginState struct {
	Session  gowebauthn.SessionData `json:"session"`
	IssuedAt time.Time              `json:"issued_at"`
	// Register is set for a self-registration: Finish expects an
	// attestation and creates the account.
	Register *selfRegistration `json:"register,omitempty"`
}

// loginInput is what the page's script may send with the options request.
type loginInput struct {
	// UserName selects the credentials of a user for authenticators
	// without resident keys; empty for a passkey (discoverable) login.
	UserName string `json:"username"`
	// Mediation "conditional" asks for passkey autofill.
	Mediation string `json:"mediation"`
	// Register asks for a self-registration under UserName (only where
	// the relying party allows it, see selfregister.go).
	Register bool `json:"register"`
}

// user adapts an account's credentials to go-webauthn.
type user struct {
	handle []byte
	name   string
	creds  []store.WebAuthnCredential
}

func (u *user) WebAuthnID() []byte          { return u.handle }
func (u *user) WebAuthnName() string        { return u.name }
func (u *user) WebAuthnDisplayName() string { return u.name }
func (u *user) WebAuthnCredentials() []gowebauthn.Credential {
	out := make([]gowebauthn.Credential, 0, len(u.creds))
	for _, c := range u.creds {
		out = append(out, libCredential(c))
	}
	return out
}

// libCredential is the go-webauthn view of a stored credential.
func libCredential(c store.WebAuthnCredential) gowebauthn.Credential {
	ts := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return gowebauthn.Credential{
		ID: c.ID, PublicKey: c.PublicKey, AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
		Transport: ts,
		Flags: gowebauthn.CredentialFlags{
			UserPresent: true, UserVerified: c.UserVerified, BackupEligible: c.BackupEligible, BackupState: c.BackupState,
		},
		Authenticator: gowebauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
	}
}

// Options implements providers.CeremonyProvider: a discoverable request
// (passkeys) unless the script sent a user name.
func (p *Provider) Options(ctx context.Context, req providers.Request) (json.RawMessage, []byte, error) {
	var in loginInput
	if len(req.Input) > 0 {
		if err := json.Unmarshal(req.Input, &in); err != nil {
			return nil, nil, p.fail(req.Lang, "bad_request", err)
		}
	}
	if in.Register {
		return p.selfRegisterOptions(ctx, req, in.UserName)
	}
	opts := []gowebauthn.LoginOption{gowebauthn.WithUserVerification(p.s.uv)}
	var (
		assertion *protocol.CredentialAssertion
		sd        *gowebauthn.SessionData
		err       error
	)
	if in.UserName != "" {
		creds, lerr := p.st.WebAuthn().ListByUserName(ctx, p.id, in.UserName)
		if lerr != nil {
			return nil, nil, lerr
		}
		creds = usable(creds)
		if len(creds) == 0 {
			// An unknown user name gets a plausible request with a random
			// credential id rather than an error.
			fake := make([]byte, 32)
			_, _ = rand.Read(fake)
			creds = []store.WebAuthnCredential{{ID: fake, UserHandle: fake, PublicKey: []byte{0}}}
		}
		u := &user{handle: creds[0].UserHandle, name: in.UserName}
		for _, c := range creds {
			if bytes.Equal(c.UserHandle, u.handle) {
				u.creds = append(u.creds, c)
			}
		}
		assertion, sd, err = p.wa.BeginLogin(u, opts...)
	} else if in.Mediation == string(protocol.MediationConditional) {
		assertion, sd, err = p.wa.BeginDiscoverableMediatedLogin(protocol.MediationConditional, opts...)
	} else {
		assertion, sd, err = p.wa.BeginDiscoverableLogin(opts...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin login: %w", err)
	}
	sd.Expires = time.Time{} // checked against the injected clock in Finish
	state, err := json.Marshal(loginState{Session: *sd, IssuedAt: p.now()})
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(assertion)
	return out, state, err
}

// useChallenge refuses an expired challenge and uses it once, whatever
// the outcome.
func (p *Provider) useChallenge(ctx context.Context, req providers.Request, ls loginState) error {
	now := p.now()
	if now.Sub(ls.IssuedAt) > p.s.ttl || now.Before(ls.IssuedAt.Add(-time.Minute)) {
		return p.fail(req.Lang, "expired", errors.New("challenge expired"))
	}
	if err := p.st.Replay().Use(ctx, replayNamespace, ls.Session.Challenge, ls.IssuedAt.Add(p.s.ttl)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return p.fail(req.Lang, "replayed", errors.New("challenge used before"))
		}
		return err
	}
	return nil
}

// usable drops credentials marked cloned.
func usable(cs []store.WebAuthnCredential) []store.WebAuthnCredential {
	out := cs[:0:0]
	for _, c := range cs {
		if !c.Cloned {
			out = append(out, c)
		}
	}
	return out
}

// Finish implements providers.CeremonyProvider: it verifies the assertion
// and returns the identity of the credential's account.
func (p *Provider) Finish(ctx context.Context, req providers.Request, state []byte, response json.RawMessage) (*providers.Identity, error) {
	var ls loginState
	if err := json.Unmarshal(state, &ls); err != nil || ls.Session.Challenge == "" {
		return nil, p.fail(req.Lang, "no_challenge", errors.New("no login challenge in the transaction"))
	}
	if err := p.useChallenge(ctx, req, ls); err != nil {
		return nil, err
	}
	if ls.Register != nil {
		return p.selfRegisterFinish(ctx, req, ls, response)
	}
	now := p.now()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, p.fail(req.Lang, "bad_response", err)
	}
	cred, err := p.st.WebAuthn().Get(ctx, parsed.RawID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && cred.ProviderID != p.id) {
		return nil, p.fail(req.Lang, "unknown_credential", errors.New("credential not registered here"))
	}
	if err != nil {
		return nil, err
	}
	if cred.Cloned {
		return nil, p.fail(req.Lang, "cloned", errors.New("credential marked as possibly cloned"))
	}
	if err := p.s.mds.check(ctx, cred.AAGUID, now); err != nil {
		p.audit(ctx, cred.AccountID, "webauthn.login", credentialRef(cred.ID), store.OutcomeDenied, err.Error())
		return nil, p.fail(req.Lang, "authenticator_refused", err)
	}
	all, err := p.st.WebAuthn().ListByAccount(ctx, cred.AccountID)
	if err != nil {
		return nil, err
	}
	u := &user{handle: cred.UserHandle, name: cred.UserName}
	for _, c := range usable(all) {
		if c.ProviderID == p.id && bytes.Equal(c.UserHandle, cred.UserHandle) {
			u.creds = append(u.creds, c)
		}
	}
	var verified *gowebauthn.Credential
	if len(ls.Session.UserID) == 0 {
		verified, err = p.wa.ValidateDiscoverableLogin(func(rawID, userHandle []byte) (gowebauthn.User, error) {
			if !bytes.Equal(rawID, cred.ID) || !bytes.Equal(userHandle, cred.UserHandle) {
				return nil, errors.New("user handle does not own the credential")
			}
			return u, nil
		}, ls.Session, parsed)
	} else {
		verified, err = p.wa.ValidateLogin(u, ls.Session, parsed)
	}
	if err != nil {
		return nil, p.fail(req.Lang, "assertion_invalid", protocolError(err))
	}
	// Signature counter (W3C WebAuthn L3 §7.2 step 22): a counter that does
	// not grow, where either value is non-zero, means a cloned key.
	newCount := parsed.Response.AuthenticatorData.Counter
	if verified.Authenticator.CloneWarning || ((newCount != 0 || cred.SignCount != 0) && newCount <= cred.SignCount) {
		if err := p.st.WebAuthn().MarkCloned(ctx, cred.ID); err != nil {
			return nil, err
		}
		p.audit(ctx, cred.AccountID, "webauthn.cloned", credentialRef(cred.ID), store.OutcomeDenied,
			fmt.Sprintf("signature counter %d after %d", newCount, cred.SignCount))
		return nil, p.fail(req.Lang, "cloned", fmt.Errorf("signature counter went from %d to %d", cred.SignCount, newCount))
	}
	flags := parsed.Response.AuthenticatorData.Flags
	if err := p.st.WebAuthn().UseCounter(ctx, cred.ID, cred.SignCount, newCount, flags.HasBackupState(), now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, p.fail(req.Lang, "concurrent_use", errors.New("another assertion of this credential won"))
		}
		return nil, err
	}
	uv := flags.HasUserVerified()
	// Attestation trust is decided again with the BLOB loaded now: a
	// newer BLOB that withdraws the certification lowers the level.
	level := p.s.levelFor(cred.BackupEligible, cred.Attested && p.s.mds.attested(cred.AttestationFormat, cred.AttestationType, cred.AAGUID, now), uv)
	if level > loa.Low {
		self, err := p.selfRegistered(ctx, cred.AccountID)
		if err != nil {
			return nil, err
		}
		if self {
			level = loa.Low
		}
	}
	return &providers.Identity{
		ProviderID: p.id, Kind: providers.KindWebAuthn,
		Subject:  subjectOf(cred.UserHandle),
		LoA:      level,
		AMR:      amr(cred.BackupEligible, uv),
		AuthTime: now,
	}, nil
}

// subjectOf is the provider subject of a user handle: the account's
// linked identity at this provider.
func subjectOf(handle []byte) string { return base64.RawURLEncoding.EncodeToString(handle) }

// credentialRef names a credential in audit events and pages.
func credentialRef(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// protocolError keeps go-webauthn's developer detail in the private part.
func protocolError(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %s (%s): %w", pe.Type, pe.Details, pe.DevInfo, err)
	}
	return err
}

func (p *Provider) audit(ctx context.Context, actor, action, target, outcome, reason string) {
	_ = p.st.Audit().Append(ctx, &store.AuditEvent{
		Time: p.now(), Actor: actor, Action: action, Target: target, Outcome: outcome, Reason: reason,
	})
}

// publicTexts are the messages the login page may show, per language.
var publicTexts = map[string][2]string{
	"bad_request":               {"Die Anfrage war ungültig.", "The request was invalid."},
	"no_challenge":              {"Bitte starten Sie die Anmeldung mit dem Sicherheitsschlüssel neu.", "Please start the security key login again."},
	"expired":                   {"Die Anmeldung hat zu lange gedauert. Bitte versuchen Sie es erneut.", "The login took too long. Please try again."},
	"replayed":                  {"Diese Anmeldung wurde bereits verwendet. Bitte versuchen Sie es erneut.", "This login was used already. Please try again."},
	"bad_response":              {"Die Antwort des Sicherheitsschlüssels war unlesbar.", "The security key's answer could not be read."},
	"unknown_credential":        {"Dieser Sicherheitsschlüssel ist nicht registriert.", "This security key is not registered."},
	"cloned":                    {"Dieser Sicherheitsschlüssel wurde gesperrt, weil er kopiert worden sein könnte.", "This security key has been blocked because it may have been copied."},
	"assertion_invalid":         {"Der Sicherheitsschlüssel konnte nicht geprüft werden.", "The security key could not be verified."},
	"authenticator_refused":     {"Dieser Sicherheitsschlüssel-Typ wird nicht mehr akzeptiert (gesperrt oder kompromittiert).", "This type of security key is no longer accepted (revoked or compromised)."},
	"concurrent_use":            {"Der Sicherheitsschlüssel wurde gleichzeitig anderweitig verwendet.", "The security key was used elsewhere at the same time."},
	"self_registration_refused": {"Für diesen Dienst können Sie kein neues Konto mit einem Passkey anlegen.", "You cannot create a new account with a passkey for this service."},
	"username_required":         {"Bitte geben Sie einen Benutzernamen an.", "Please enter a user name."},
	"username_taken":            {"Dieser Benutzername ist bereits vergeben.", "This user name is taken."},
	"registration_invalid":      {"Der Passkey konnte nicht registriert werden.", "The passkey could not be registered."},
	"already_registered":        {"Dieser Passkey ist bereits registriert.", "This passkey is registered already."},
}

// fail is a providers.Error with the public text in the user's language.
func (p *Provider) fail(lang, code string, err error) error {
	t := publicTexts[code]
	msg := t[0]
	if lang == "en" {
		msg = t[1]
	}
	return &providers.Error{Code: code, Public: msg, Err: err}
}
