package webauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
)

var (
	goodAAGUID    = []byte{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x41, 0x11, 0x81, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
	revokedAAGUID = []byte{0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x42, 0x22, 0x82, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22}
	unknownAAGUID = []byte{0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x43, 0x33, 0x83, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33}
)

func uuidString(b []byte) string {
	h := strings.ToLower(base16(b))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func base16(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

var serial int64 = 100

// issue makes a certificate for a new key, self-signed when ca is nil.
func issue(t *testing.T, ca *testCA, subject pkix.Name, isCA bool) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	parent, signer := tmpl, k
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: k, cert: c}
}

func b64(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

// mdsFixture is a test MDS: its root, a BLOB signed under it, and the
// attestation root the BLOB names for both test authenticator models.
type mdsFixture struct {
	root, attRoot   *testCA
	blob, rootPEM   string // file paths
	blobBytes, pemB []byte
}

func entryJSON(aaguid []byte, attRoot *testCA, statuses ...string) map[string]any {
	var reports []map[string]any
	for _, s := range statuses {
		reports = append(reports, map[string]any{"status": s, "effectiveDate": "2024-01-01"})
	}
	return map[string]any{
		"aaguid": uuidString(aaguid), "timeOfLastStatusChange": "2024-01-01", "statusReports": reports,
		"metadataStatement": map[string]any{
			"aaguid": uuidString(aaguid), "description": "Test key " + uuidString(aaguid)[:4],
			"authenticatorVersion": 1, "protocolFamily": "fido2", "schema": 3,
			"upv":                         []map[string]any{{"major": 1, "minor": 0}},
			"authenticationAlgorithms":    []string{"secp256r1_ecdsa_sha256_raw"},
			"publicKeyAlgAndEncodings":    []string{"cose"},
			"attestationTypes":            []string{"basic_full"},
			"userVerificationDetails":     [][]map[string]any{{{"userVerificationMethod": "passcode_internal"}}},
			"keyProtection":               []string{"hardware", "secure_element"},
			"matcherProtection":           []string{"on_chip"},
			"attachmentHint":              []string{"external", "wired"},
			"tcDisplay":                   []string{},
			"attestationRootCertificates": []string{b64(attRoot.cert)},
		},
	}
}

func newMDS(t *testing.T) *mdsFixture {
	t.Helper()
	root := issue(t, nil, pkix.Name{CommonName: "Test MDS Root"}, true)
	signer := issue(t, root, pkix.Name{CommonName: "Test MDS BLOB signer"}, false)
	attRoot := issue(t, nil, pkix.Name{CommonName: "Test Authenticator Attestation Root", Organization: []string{"Test Vendor"}}, true)
	payload := map[string]any{
		"legalHeader": "test only", "no": 7, "nextUpdate": "2031-01-01",
		"entries": []any{
			entryJSON(goodAAGUID, attRoot, "FIDO_CERTIFIED", "FIDO_CERTIFIED_L1"),
			entryJSON(revokedAAGUID, attRoot, "FIDO_CERTIFIED_L1", "REVOKED"),
		},
	}
	blob := signJWS(t, signer, root, payload)
	dir := t.TempDir()
	f := &mdsFixture{root: root, attRoot: attRoot, blob: filepath.Join(dir, "mds.jwt"), rootPEM: filepath.Join(dir, "root.pem"),
		blobBytes: blob, pemB: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.cert.Raw})}
	if err := os.WriteFile(f.blob, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.rootPEM, f.pemB, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// signJWS makes the BLOB: an ES256 JWS with the signer and root in x5c.
func signJWS(t *testing.T, signer, root *testCA, payload any) []byte {
	t.Helper()
	hdr, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{b64(signer.cert), b64(root.cert)}})
	body, _ := json.Marshal(payload)
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, signer.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return []byte(in + "." + base64.RawURLEncoding.EncodeToString(sig))
}

func TestParseMDS(t *testing.T) {
	f := newMDS(t)
	m, err := ParseMDS(f.blobBytes, f.pemB)
	if err != nil {
		t.Fatal(err)
	}
	if m.Number != 7 || m.Entries != 2 || m.Unparsed != 0 || m.NextUpdate.Year() != 2031 {
		t.Errorf("parsed BLOB %+v", m)
	}
	now := time.Now()
	if tr := m.Trust(goodAAGUID, now); !tr.Known || !tr.Certified || tr.Undesired || tr.Status != "FIDO_CERTIFIED_L1" {
		t.Errorf("good authenticator: %+v", tr)
	}
	if tr := m.Trust(revokedAAGUID, now); !tr.Known || tr.Certified || !tr.Undesired {
		t.Errorf("revoked authenticator: %+v", tr)
	}
	// Another root (the FIDO production root by default) refuses the BLOB.
	if _, err := ParseMDS(f.blobBytes, nil); err == nil {
		t.Error("BLOB accepted under the production root")
	}
	other := issue(t, nil, pkix.Name{CommonName: "Other root"}, true)
	if _, err := ParseMDS(f.blobBytes, other.cert.Raw); err == nil {
		t.Error("BLOB accepted under another root")
	}
	// A tampered payload fails the signature.
	parts := strings.Split(string(f.blobBytes), ".")
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	body = []byte(strings.Replace(string(body), "REVOKED", "FIDO_CERTIFIED_L3", 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	if _, err := ParseMDS([]byte(strings.Join(parts, ".")), f.pemB); err == nil {
		t.Error("tampered BLOB accepted")
	}
	// Configuration: mds_file needs attestation, and a bad file is an error.
	if _, err := (Config{MDSFile: f.blob, MDSRootFile: f.rootPEM}).settings("https://login.example.org", "p"); err == nil {
		t.Error("mds_file accepted with attestation none")
	}
	if _, err := (Config{Attestation: "direct", MDSFile: f.blob}).settings("https://login.example.org", "p"); err == nil {
		t.Error("BLOB accepted without its root")
	}
}

// packedKey is an authenticator model with a packed, basic_full
// attestation certificate under the test attestation root.
type packedKey struct {
	*authenticator
	aaguid []byte
	att    *testCA
}

func newPackedKey(t *testing.T, f *mdsFixture, aaguid []byte) *packedKey {
	att := issue(t, f.attRoot, pkix.Name{Country: []string{"DE"}, Organization: []string{"Test Vendor"},
		OrganizationalUnit: []string{"Authenticator Attestation"}, CommonName: "Test Key Batch 1"}, false)
	a := newAuthenticator(t)
	a.id = append([]byte("cred-"), aaguid[:4]...)
	return &packedKey{authenticator: a, aaguid: aaguid, att: att}
}

// register answers creation options with a packed attestation.
func (k *packedKey) register(t *testing.T, creation *protocol.CredentialCreation) *protocol.ParsedCredentialCreationData {
	t.Helper()
	cd, _ := json.Marshal(map[string]any{"type": "webauthn.create", "origin": testOrigin,
		"challenge": base64.RawURLEncoding.EncodeToString(creation.Response.Challenge)})
	rpHash := sha256.Sum256([]byte(testRPID))
	ad := append(rpHash[:], byte(k.flags|protocol.FlagAttestedCredentialData))
	ad = binary.BigEndian.AppendUint32(ad, 0)
	ad = append(ad, k.aaguid...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(ad, k.id...)
	ad = append(ad, k.coseKey(t)...)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.att.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	ao, err := webauthncbor.Marshal(map[string]any{
		"fmt": "packed", "authData": ad,
		"attStmt": map[string]any{"alg": -7, "sig": sig, "x5c": [][]byte{k.att.cert.Raw}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := json.Marshal(map[string]any{
		"id": base64.RawURLEncoding.EncodeToString(k.id), "rawId": base64.RawURLEncoding.EncodeToString(k.id),
		"type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
			"attestationObject": base64.RawURLEncoding.EncodeToString(ao),
		},
	})
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// registerWith runs a registration of k on f's provider and stores the
// credential as the account pages do.
func registerWith(t *testing.T, fx *fixture, k *packedKey) (*gowebauthn.Credential, bool, error) {
	t.Helper()
	u := &user{handle: k.handle, name: "max"}
	creation, sd, err := fx.p.wa.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	cred, attested, err := fx.p.createCredential(u, *sd, k.register(t, creation))
	if err != nil {
		return nil, false, err
	}
	if err := fx.st.WebAuthn().Create(t.Context(), &store.WebAuthnCredential{
		ID: cred.ID, AccountID: "acc-1", ProviderID: "webauthn", UserHandle: k.handle, UserName: "max",
		PublicKey: cred.PublicKey, AAGUID: cred.Authenticator.AAGUID, UserVerified: cred.Flags.UserVerified,
		AttestationFormat: cred.AttestationFormat, AttestationType: cred.AttestationType, Attested: attested, Name: "key",
	}); err != nil {
		t.Fatal(err)
	}
	return cred, attested, nil
}

// TestMDSAttestation: an attested, certified key with user verification
// reaches substantial; one the BLOB marks REVOKED is refused; an
// authenticator the BLOB does not know stays unattested (low).
func TestMDSAttestation(t *testing.T) {
	m := newMDS(t)
	fx := setup(t, Config{UserVerification: "required", Attestation: "direct", MDSFile: m.blob, MDSRootFile: m.rootPEM})

	good := newPackedKey(t, m, goodAAGUID)
	cred, attested, err := registerWith(t, fx, good)
	if err != nil {
		t.Fatal(err)
	}
	if !attested || cred.AttestationType != "basic_full" || cred.AttestationFormat != "packed" {
		t.Fatalf("good key: attested=%v type=%q format=%q", attested, cred.AttestationType, cred.AttestationFormat)
	}
	opts, state := fx.options(t, "tx-good", "")
	id, err := fx.finish(t, state, good.assert(t, opts, tamper{}))
	if err != nil {
		t.Fatal(err)
	}
	if id.LoA != loa.Substantial {
		t.Errorf("attested certified key with UV: level %v; want substantial", id.LoA)
	}

	revoked := newPackedKey(t, m, revokedAAGUID)
	_, _, err = registerWith(t, fx, revoked)
	if !errors.Is(err, errMDSRefused) {
		t.Fatalf("revoked authenticator: %v; want refused by the MDS", err)
	}

	// An authenticator without an entry: registered, but unattested.
	unknown := newPackedKey(t, m, unknownAAGUID)
	_, attested, err = registerWith(t, fx, unknown)
	if err != nil || attested {
		t.Fatalf("unknown authenticator: attested=%v err=%v", attested, err)
	}
	opts, state = fx.options(t, "tx-unknown", "")
	id, err = fx.finish(t, state, unknown.assert(t, opts, tamper{}))
	if err != nil || id.LoA != loa.Low {
		t.Errorf("unknown authenticator login: %+v, %v; want low", id, err)
	}

	// A credential registered before its model was revoked is refused at
	// login once the newer BLOB is loaded.
	if err := fx.st.WebAuthn().Create(t.Context(), &store.WebAuthnCredential{
		ID: revoked.id, AccountID: "acc-1", ProviderID: "webauthn", UserHandle: revoked.handle, UserName: "max",
		PublicKey: revoked.coseKey(t), AAGUID: revokedAAGUID, UserVerified: true,
		AttestationFormat: "packed", AttestationType: "basic_full", Attested: true, Name: "old key",
	}); err != nil {
		t.Fatal(err)
	}
	opts, state = fx.options(t, "tx-revoked", "")
	_, err = fx.finish(t, state, revoked.assert(t, opts, tamper{}))
	wantCode(t, err, "authenticator_refused")
}
