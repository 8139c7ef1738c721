package webauthn

// Self-registration: a user without an account registers a passkey on the
// login's ceremony page (user name, then navigator.credentials.create);
// the provider creates the account, links the credential's user handle
// and the login completes at level low. Only where the relying party
// allows it (relying_parties[].self_registration, passed as
// providers.Request.SelfRegistration) and the login needs no more than
// low: nobody proved who the user is, only that they hold the key.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers"
)

// selfRegistration is the part of loginState a self-registration keeps.
type selfRegistration struct {
	Handle   []byte `json:"handle"`
	UserName string `json:"username"`
}

// beginRegistration starts a registration ceremony for u with the
// provider's authenticator requirements.
func (p *Provider) beginRegistration(u *user) (*protocol.CredentialCreation, *gowebauthn.SessionData, error) {
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.WebAuthnCredentials() {
		exclude = append(exclude, c.Descriptor())
	}
	return p.wa.BeginRegistration(u,
		gowebauthn.WithExclusions(exclude),
		gowebauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      p.s.residentKey,
			UserVerification: p.s.uv,
		}),
		gowebauthn.WithResidentKeyRequirement(p.s.residentKey),
		gowebauthn.WithExtensions(gowebauthn.WithExtensionCredProps()),
		gowebauthn.WithCredentialParameters([]protocol.CredentialParameter{
			{Type: protocol.PublicKeyCredentialType, Algorithm: -7},   // ES256
			{Type: protocol.PublicKeyCredentialType, Algorithm: -8},   // EdDSA
			{Type: protocol.PublicKeyCredentialType, Algorithm: -257}, // RS256
		}),
	)
}

// selfRegistrationAllowed: the relying party allows it and the login needs
// no more than low.
func (p *Provider) selfRegistrationAllowed(req providers.Request) error {
	if !req.SelfRegistration {
		return p.fail(req.Lang, "self_registration_refused", errors.New("the relying party does not allow self-registration"))
	}
	if !loa.Low.Satisfies(req.MinLoA) {
		return p.fail(req.Lang, "self_registration_refused", fmt.Errorf("the login needs %s, self-registration gives low", req.MinLoA))
	}
	return nil
}

// selfRegisterOptions answers creation options for a new account.
func (p *Provider) selfRegisterOptions(ctx context.Context, req providers.Request, userName string) (json.RawMessage, []byte, error) {
	if err := p.selfRegistrationAllowed(req); err != nil {
		return nil, nil, err
	}
	name := strings.TrimSpace(userName)
	if name == "" || !utf8.ValidString(name) || len(name) > maxNameLen {
		return nil, nil, p.fail(req.Lang, "username_required", errors.New("no usable user name"))
	}
	taken, err := p.st.WebAuthn().ListByUserName(ctx, p.id, name)
	if err != nil {
		return nil, nil, err
	}
	if len(taken) > 0 {
		return nil, nil, p.fail(req.Lang, "username_taken", errors.New("user name registered already"))
	}
	u := &user{handle: make([]byte, 32), name: name}
	if _, err := rand.Read(u.handle); err != nil {
		return nil, nil, err
	}
	creation, sd, err := p.beginRegistration(u)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin registration: %w", err)
	}
	sd.Expires = time.Time{}
	state, err := json.Marshal(loginState{Session: *sd, IssuedAt: p.now(), Register: &selfRegistration{Handle: u.handle, UserName: name}})
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(creation)
	return out, state, err
}

// selfRegisterFinish verifies the attestation, creates the account with
// the credential and returns its identity at level low. The challenge has
// been used already (Finish).
func (p *Provider) selfRegisterFinish(ctx context.Context, req providers.Request, ls loginState, response json.RawMessage) (*providers.Identity, error) {
	// The relying party's configuration may have changed since Options.
	if err := p.selfRegistrationAllowed(req); err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, p.fail(req.Lang, "bad_response", err)
	}
	rs := ls.Register
	u := &user{handle: rs.Handle, name: rs.UserName}
	cred, attested, err := p.createCredential(u, ls.Session, parsed)
	if errors.Is(err, errMDSRefused) {
		return nil, p.fail(req.Lang, "authenticator_refused", err)
	}
	if err != nil {
		return nil, p.fail(req.Lang, "registration_invalid", protocolError(err))
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	idb := make([]byte, 16)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	accountID := base64.RawURLEncoding.EncodeToString(idb)
	now := p.now()
	rec := &store.WebAuthnCredential{
		ID: cred.ID, AccountID: accountID, ProviderID: p.id, UserHandle: rs.Handle, UserName: rs.UserName,
		PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, UserVerified: cred.Flags.UserVerified,
		Transports: transports, AttestationFormat: cred.AttestationFormat, AttestationType: cred.AttestationType,
		Attested:     attested,
		Discoverable: (cred.Extensions.RK != nil && *cred.Extensions.RK) || p.s.residentKey == protocol.ResidentKeyRequirementRequired,
		Name:         "Passkey", CreatedAt: now, LastUsedAt: now,
	}
	err = p.st.InTx(ctx, func(tx store.Store) error {
		// Checked again in the transaction: the name may have been taken
		// since Options.
		taken, err := tx.WebAuthn().ListByUserName(ctx, p.id, rs.UserName)
		if err != nil {
			return err
		}
		if len(taken) > 0 {
			return errUserNameTaken
		}
		if err := tx.Accounts().Create(ctx, &store.Account{ID: accountID, CreatedAt: now, UpdatedAt: now, DisplayName: rs.UserName}); err != nil {
			return err
		}
		if err := tx.Accounts().Link(ctx, store.LinkedIdentity{
			AccountID: accountID, ProviderID: p.id, Subject: subjectOf(rs.Handle), Kind: providers.KindWebAuthn,
			LinkedAt: now, LastUsedAt: now,
		}); err != nil {
			return err
		}
		return tx.WebAuthn().Create(ctx, rec)
	})
	switch {
	case errors.Is(err, errUserNameTaken):
		return nil, p.fail(req.Lang, "username_taken", err)
	case errors.Is(err, store.ErrConflict):
		return nil, p.fail(req.Lang, "already_registered", err)
	case err != nil:
		return nil, err
	}
	p.audit(ctx, accountID, "webauthn.self_register", credentialRef(rec.ID), store.OutcomeSuccess,
		fmt.Sprintf("rp %s, format %s, backup eligible %t, user verified %t", req.RPID, rec.AttestationFormat, rec.BackupEligible, rec.UserVerified))
	uv := cred.Flags.UserVerified
	return &providers.Identity{
		ProviderID: p.id, Kind: providers.KindWebAuthn, Subject: subjectOf(rs.Handle),
		LoA: loa.Low, AMR: amr(rec.BackupEligible, uv), AuthTime: now,
	}, nil
}

var errUserNameTaken = errors.New("webauthn: user name registered already")

// selfRegistered reports whether the account's only linked identity is
// at this provider (a self-registered account: nobody proved who its owner
// is, so its logins stay at level low whatever the authenticator).
func (p *Provider) selfRegistered(ctx context.Context, accountID string) (bool, error) {
	ids, err := p.st.Accounts().Identities(ctx, accountID)
	if err != nil {
		return false, err
	}
	for _, li := range ids {
		if li.ProviderID != p.id {
			return false, nil
		}
	}
	return len(ids) > 0, nil
}
