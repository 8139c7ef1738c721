package webauthn

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/metadata/providers/memory"
	"github.com/google/uuid"
)

// MDS is a FIDO Metadata Service (MDS3) BLOB read from a local file: the
// broker never fetches it (offline operation). The BLOB is a JWS whose
// x5c chain must lead to the configured root (by default the FIDO
// Alliance's production root, metadata.ProductionMDSRoot); its entries
// give the attestation roots, attestation types and status reports of
// each authenticator model by AAGUID.
//
// A newer BLOB is loaded by replacing the file and restarting the broker;
// `trustbroker webauthn mds-check FILE` validates a file before.
type MDS struct {
	// Number and NextUpdate are the BLOB's serial number and the date by
	// which the FIDO Alliance promises a newer one.
	Number     int
	NextUpdate time.Time
	// Entries counts the entries usable by AAGUID; Unparsed those the
	// library could not read (they are skipped).
	Entries, Unparsed int

	entries  map[uuid.UUID]*metadata.Entry
	provider metadata.Provider
}

// LoadMDSFile reads and verifies a BLOB file against the root in
// rootFile (PEM or DER); an empty rootFile means the FIDO production root.
func LoadMDSFile(blobFile, rootFile string) (*MDS, error) {
	blob, err := os.ReadFile(blobFile)
	if err != nil {
		return nil, err
	}
	var root []byte
	if rootFile != "" {
		if root, err = os.ReadFile(rootFile); err != nil {
			return nil, err
		}
	}
	return ParseMDS(blob, root)
}

// ParseMDS verifies the BLOB's signature chain against root (a PEM or
// DER certificate; nil for the FIDO production root) and indexes its
// entries.
func ParseMDS(blob, root []byte) (*MDS, error) {
	rootB64 := metadata.ProductionMDSRoot
	if len(root) > 0 {
		der := root
		if b, _ := pem.Decode(root); b != nil {
			der = b.Bytes
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("mds: root certificate: %w", err)
		}
		rootB64 = base64.StdEncoding.EncodeToString(der)
	}
	dec, err := metadata.NewDecoder(metadata.WithRootCertificate(rootB64), metadata.WithIgnoreEntryParsingErrors())
	if err != nil {
		return nil, fmt.Errorf("mds: %w", err)
	}
	payload, err := dec.DecodeBytes(bytes.TrimSpace(blob))
	if err != nil {
		return nil, fmt.Errorf("mds: the BLOB's signature or chain does not verify: %w", err)
	}
	md, err := dec.Parse(payload)
	if err != nil {
		return nil, fmt.Errorf("mds: %w", err)
	}
	m := &MDS{Number: md.Parsed.Number, NextUpdate: md.Parsed.NextUpdate, Unparsed: len(md.Unparsed),
		entries: map[uuid.UUID]*metadata.Entry{}}
	for i := range md.Parsed.Entries {
		e := &md.Parsed.Entries[i]
		if e.AaGUID != uuid.Nil {
			m.entries[e.AaGUID] = e
		}
	}
	m.Entries = len(m.entries)
	// go-webauthn refuses, at registration and at every login, an
	// authenticator whose entry lists an undesired status (revoked,
	// compromised keys, user verification bypass), whose attestation
	// chain does not lead to the entry's roots, or whose attestation type
	// the entry does not list. Authenticators without an entry are
	// accepted as unattested: the level of assurance, not admission,
	// depends on the MDS.
	m.provider, err = memory.New(
		memory.WithMetadata(m.entries),
		memory.WithValidateEntry(false),
		memory.WithValidateEntryPermitZeroAAGUID(true),
		memory.WithValidateTrustAnchor(true),
		memory.WithValidateStatus(true),
		memory.WithValidateAttestationTypes(true),
		memory.WithStatusUndesired(metadata.DefaultUndesiredAuthenticatorStatuses()),
	)
	if err != nil {
		return nil, fmt.Errorf("mds: %w", err)
	}
	return m, nil
}

// Provider is the go-webauthn view of the BLOB.
func (m *MDS) Provider() metadata.Provider { return m.provider }

// certified reports whether a status counts as a certification.
func certified(s metadata.AuthenticatorStatus) bool {
	return strings.HasPrefix(string(s), "FIDO_CERTIFIED") || strings.HasPrefix(string(s), "FIPS140_CERTIFIED")
}

// Trust is what the BLOB says about a credential's authenticator.
type Trust struct {
	Known       bool   // the AAGUID has an entry
	Status      string // the current status report, "" if none
	Certified   bool   // the current status is a FIDO or FIPS certification
	Undesired   bool   // a report in effect is revoked, compromised, …
	Description string
}

// Trust looks an AAGUID up at time at.
func (m *MDS) Trust(aaguid []byte, at time.Time) Trust {
	if m == nil || len(aaguid) != 16 {
		return Trust{}
	}
	id, err := uuid.FromBytes(aaguid)
	if err != nil {
		return Trust{}
	}
	e := m.entries[id]
	if e == nil {
		return Trust{}
	}
	t := Trust{Known: true, Description: e.MetadataStatement.Description}
	if cur := metadata.CurrentStatusReportAt(e.StatusReports, at); cur != nil {
		t.Status = string(cur.Status)
		t.Certified = certified(cur.Status)
	}
	t.Undesired = metadata.ValidateStatusReportsAt(e.StatusReports, nil, metadata.DefaultUndesiredAuthenticatorStatuses(), at) != nil
	return t
}

// attestedTypes are the attestation types that name the authenticator
// model through a certificate chain (DOMAIN.md §6.2): self attestation
// and none prove nothing about the hardware.
var attestedTypes = map[string]bool{string(metadata.BasicFull): true, string(metadata.AttCA): true}

// attested decides whether a credential counts as attested hardware: an
// attestation with a certificate chain (which go-webauthn verified to the
// roots of the authenticator's MDS entry), an entry for the AAGUID, a
// current certification and no undesired status.
func (m *MDS) attested(format, attType string, aaguid []byte, at time.Time) bool {
	if m == nil || format == "" || format == "none" || !attestedTypes[attType] {
		return false
	}
	t := m.Trust(aaguid, at)
	return t.Known && t.Certified && !t.Undesired
}

// errMDSRefused marks an authenticator the BLOB refuses.
var errMDSRefused = errors.New("the metadata service refuses this authenticator")

// check refuses an authenticator with an undesired status (also when
// go-webauthn did not look, e.g. for attestation none).
func (m *MDS) check(_ context.Context, aaguid []byte, at time.Time) error {
	if m == nil {
		return nil
	}
	if t := m.Trust(aaguid, at); t.Undesired {
		return fmt.Errorf("%w: status %s", errMDSRefused, t.Status)
	}
	return nil
}
