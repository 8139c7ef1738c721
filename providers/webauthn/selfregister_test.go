package webauthn

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers"
)

// create answers creation options like navigator.credentials.create
// would, with a "none" attestation; a.handle becomes the user handle the
// options name.
func (a *authenticator) create(t *testing.T, options json.RawMessage) json.RawMessage {
	t.Helper()
	var opts protocol.CredentialCreation
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatal(err)
	}
	h, err := base64.RawURLEncoding.DecodeString(opts.Response.User.ID.(string))
	if err != nil {
		t.Fatal(err)
	}
	a.handle = h
	cd, _ := json.Marshal(map[string]any{
		"type": "webauthn.create", "challenge": base64.RawURLEncoding.EncodeToString(opts.Response.Challenge),
		"origin": testOrigin, "crossOrigin": false,
	})
	rpHash := sha256.Sum256([]byte(testRPID))
	ad := append(rpHash[:], byte(a.flags|protocol.FlagAttestedCredentialData))
	ad = binary.BigEndian.AppendUint32(ad, a.counter)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(a.id)))
	ad = append(ad, a.id...)
	ad = append(ad, a.coseKey(t)...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{
		"id": base64.RawURLEncoding.EncodeToString(a.id), "rawId": base64.RawURLEncoding.EncodeToString(a.id),
		"type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
			"attestationObject": base64.RawURLEncoding.EncodeToString(att),
		},
	})
	return out
}

func selfReq(allowed bool, min loa.Level, input string) providers.Request {
	return providers.Request{TransactionID: "tx", RPID: "rp", Lang: "en", MinLoA: min, SelfRegistration: allowed, Input: json.RawMessage(input)}
}

// TestSelfRegistration: a new user registers a passkey on the ceremony
// page, which creates an account at level low; later logins with it stay
// low even where the mapping would give more; a relying party that does
// not allow it, or needs more than low, is refused.
func TestSelfRegistration(t *testing.T) {
	// The mapping gives unattested keys substantial, to show the cap.
	f := setup(t, Config{UserVerification: "required", LoA: LoAConfig{Unattested: "substantial"}})
	ctx := t.Context()

	for _, tc := range []struct {
		name    string
		allowed bool
		min     loa.Level
	}{{"not allowed", false, loa.Low}, {"level too high", true, loa.Substantial}} {
		_, _, err := f.p.Options(ctx, selfReq(tc.allowed, tc.min, `{"register":true,"username":"max"}`))
		wantCode(t, err, "self_registration_refused")
	}
	_, _, err := f.p.Options(ctx, selfReq(true, loa.Low, `{"register":true,"username":"erika"}`))
	wantCode(t, err, "username_taken")
	_, _, err = f.p.Options(ctx, selfReq(true, loa.Low, `{"register":true,"username":"  "}`))
	wantCode(t, err, "username_required")

	a := newAuthenticator(t)
	a.id = []byte("credential-self-0001")
	opts, state, err := f.p.Options(ctx, selfReq(true, loa.Low, `{"register":true,"username":"max"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp := a.create(t, opts)
	// A relying party whose configuration no longer allows it is refused
	// at Finish too (the challenge is spent).
	_, err = f.p.Finish(ctx, selfReq(false, loa.Low, ""), state, resp)
	wantCode(t, err, "self_registration_refused")
	opts, state, err = f.p.Options(ctx, selfReq(true, loa.Low, `{"register":true,"username":"max"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp = a.create(t, opts)
	id, err := f.p.Finish(ctx, selfReq(true, loa.Low, ""), state, resp)
	if err != nil {
		t.Fatal(err)
	}
	if id.LoA != loa.Low || id.Subject != subjectOf(a.handle) || len(id.AMR) != 4 || id.AMR[0] != "hwk" || id.AMR[2] != "pin" {
		t.Errorf("identity after self-registration: %+v", id)
	}
	// Replaying the registration is refused.
	_, err = f.p.Finish(ctx, selfReq(true, loa.Low, ""), state, resp)
	wantCode(t, err, "replayed")
	acc, err := f.st.Accounts().FindByIdentity(ctx, "webauthn", id.Subject)
	if err != nil || acc.DisplayName != "max" {
		t.Fatalf("account of the new identity: %+v, %v", acc, err)
	}
	c, err := f.st.WebAuthn().Get(ctx, a.id)
	if err != nil || c.AccountID != acc.ID || c.UserName != "max" || !c.UserVerified {
		t.Fatalf("stored credential: %+v, %v", c, err)
	}
	evs, err := f.st.Audit().List(ctx, store.AuditFilter{Action: "webauthn.self_register"})
	if err != nil || len(evs) != 1 || evs[0].Actor != acc.ID {
		t.Errorf("audit: %+v, %v", evs, err)
	}

	// A passkey login with it: low, although the mapping says substantial.
	opts, state = f.options(t, "tx-2", "")
	id, err = f.finish(t, state, a.assert(t, opts, tamper{}))
	if err != nil || id.LoA != loa.Low {
		t.Fatalf("login of the self-registered account: %+v, %v", id, err)
	}
	// The credential of an account proven otherwise reaches substantial.
	opts, state = f.options(t, "tx-3", "")
	if id, err := f.finish(t, state, f.auth.assert(t, opts, tamper{})); err != nil || id.LoA != loa.Substantial {
		t.Fatalf("login of the fixture account: %+v, %v", id, err)
	}
	// By user name as well.
	opts, state = f.options(t, "tx-4", `{"username":"max"}`)
	if _, err := f.finish(t, state, a.assert(t, opts, tamper{noHandle: true})); err != nil {
		t.Fatal(err)
	}
	// The name is taken now.
	_, _, err = f.p.Options(ctx, selfReq(true, loa.Low, `{"register":true,"username":"max"}`))
	wantCode(t, err, "username_taken")
}
