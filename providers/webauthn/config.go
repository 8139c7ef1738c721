package webauthn

import (
	"fmt"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
)

// Config is the `config` block of a provider of type "webauthn".
//
//	config:
//	  rp_id: login.example.org          # default: the issuer's host
//	  rp_name: Trustbroker              # shown by the authenticator
//	  origins: [https://login.example.org]  # default: the issuer's origin
//	  user_verification: required       # required | preferred | discouraged
//	  resident_key: preferred           # registration: required | preferred | discouraged
//	  attestation: none                 # none | indirect | direct
//	  mds_file: /etc/trustbroker/mds.jwt  # FIDO MDS3 BLOB, a local file (offline)
//	  mds_root_file: mds-root.pem       # root of the BLOB's chain; default the FIDO root
//	  challenge_ttl: 5m                 # at most 5m
//	  registration_min_loa: substantial # the SSO session must reach it to register a key
//	  loa: {unattested: low, backup_eligible: low, attested: low, attested_uv: substantial}
type Config struct {
	RPID               string    `yaml:"rp_id"`
	RPName             string    `yaml:"rp_name"`
	Origins            []string  `yaml:"origins"`
	UserVerification   string    `yaml:"user_verification"`
	ResidentKey        string    `yaml:"resident_key"`
	Attestation        string    `yaml:"attestation"`
	MDSFile            string    `yaml:"mds_file"`
	MDSRootFile        string    `yaml:"mds_root_file"`
	ChallengeTTL       string    `yaml:"challenge_ttl"`
	RegistrationMinLoA string    `yaml:"registration_min_loa"`
	LoA                LoAConfig `yaml:"loa"`
}

// LoAConfig maps what an assertion proved to a level of assurance
// (DOMAIN.md §6.2). The first matching row wins, in this order:
// backup-eligible (a synced passkey, its key can leave the device),
// unattested, attested with user verification, attested without.
type LoAConfig struct {
	BackupEligible string `yaml:"backup_eligible"` // default low
	Unattested     string `yaml:"unattested"`      // default low
	AttestedUV     string `yaml:"attested_uv"`     // default substantial
	Attested       string `yaml:"attested"`        // default low
}

// settings is Config validated and defaulted.
type settings struct {
	rpID, rpName     string
	origins          []string
	uv               protocol.UserVerificationRequirement
	residentKey      protocol.ResidentKeyRequirement
	attestation      protocol.ConveyancePreference
	ttl              time.Duration
	registrationMin  loa.Level
	loaBE, loaUnatt  loa.Level
	loaAttUV, loaAtt loa.Level
	mds              *MDS // nil: no metadata, every credential is unattested
}

// maxChallengeTTL bounds the challenge lifetime (SECURITY.md §5).
const maxChallengeTTL = 5 * time.Minute

func (c Config) settings(issuer, path string) (*settings, error) {
	var es config.Errors
	bad := func(field, msg string) { es = append(es, config.Error{Path: path + "." + field, Msg: msg}) }
	s := &settings{rpID: c.RPID, rpName: c.RPName, origins: c.Origins}
	iu, err := url.Parse(issuer)
	if s.rpID == "" {
		if err != nil || iu.Hostname() == "" {
			bad("rp_id", "required when the issuer has no host")
		} else {
			s.rpID = iu.Hostname()
		}
	}
	if s.rpName == "" {
		s.rpName = "Trustbroker"
	}
	if len(s.origins) == 0 && err == nil && iu.Host != "" {
		s.origins = []string{iu.Scheme + "://" + iu.Host}
	}
	for i, o := range s.origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"))) || u.Path != "" {
			bad(fmt.Sprintf("origins[%d]", i), "must be an https origin (http only for localhost)")
		}
	}
	switch c.UserVerification {
	case "", "preferred":
		s.uv = protocol.VerificationPreferred
	case "required":
		s.uv = protocol.VerificationRequired
	case "discouraged":
		s.uv = protocol.VerificationDiscouraged
	default:
		bad("user_verification", "must be required, preferred or discouraged")
	}
	switch c.ResidentKey {
	case "", "preferred":
		s.residentKey = protocol.ResidentKeyRequirementPreferred
	case "required":
		s.residentKey = protocol.ResidentKeyRequirementRequired
	case "discouraged":
		s.residentKey = protocol.ResidentKeyRequirementDiscouraged
	default:
		bad("resident_key", "must be required, preferred or discouraged")
	}
	switch c.Attestation {
	case "", "none":
		s.attestation = protocol.PreferNoAttestation
	case "indirect":
		s.attestation = protocol.PreferIndirectAttestation
	case "direct":
		s.attestation = protocol.PreferDirectAttestation
	default:
		bad("attestation", "must be none, indirect or direct")
	}
	if c.MDSFile != "" {
		if s.attestation == protocol.PreferNoAttestation {
			bad("mds_file", "needs attestation: indirect or direct")
		} else if m, err := LoadMDSFile(c.MDSFile, c.MDSRootFile); err != nil {
			bad("mds_file", err.Error())
		} else {
			s.mds = m
		}
	} else if c.MDSRootFile != "" {
		bad("mds_root_file", "only with mds_file")
	}
	s.ttl = maxChallengeTTL
	if c.ChallengeTTL != "" {
		d, err := time.ParseDuration(c.ChallengeTTL)
		if err != nil || d <= 0 || d > maxChallengeTTL {
			bad("challenge_ttl", "must be a duration up to 5m")
		} else {
			s.ttl = d
		}
	}
	level := func(field, v string, def loa.Level) loa.Level {
		if v == "" {
			return def
		}
		l, err := loa.Parse(v)
		if err != nil {
			bad(field, err.Error())
		}
		return l
	}
	s.registrationMin = level("registration_min_loa", c.RegistrationMinLoA, loa.Substantial)
	s.loaBE = level("loa.backup_eligible", c.LoA.BackupEligible, loa.Low)
	s.loaUnatt = level("loa.unattested", c.LoA.Unattested, loa.Low)
	s.loaAttUV = level("loa.attested_uv", c.LoA.AttestedUV, loa.Substantial)
	s.loaAtt = level("loa.attested", c.LoA.Attested, loa.Low)
	if len(es) > 0 {
		return nil, es
	}
	return s, nil
}

// maxLoA is the highest level the mapping can give.
func (s *settings) maxLoA() loa.Level {
	return max(s.loaBE, s.loaUnatt, s.loaAttUV, s.loaAtt)
}

// levelFor maps what was proven to a level of assurance.
func (s *settings) levelFor(backupEligible, attested, userVerified bool) loa.Level {
	switch {
	case backupEligible:
		return s.loaBE
	case !attested:
		return s.loaUnatt
	case userVerified:
		return s.loaAttUV
	default:
		return s.loaAtt
	}
}

// amr lists the RFC 8176 methods an assertion proved: hwk for a
// device-bound key, swk for a synced (backup-eligible) one; user for the
// presence test every assertion carries; pin and mfa when the
// authenticator verified the user (WebAuthn does not say whether by PIN or
// biometrics).
func amr(backupEligible, userVerified bool) []string {
	out := []string{"hwk"}
	if backupEligible {
		out[0] = "swk"
	}
	out = append(out, "user")
	if userVerified {
		out = append(out, "pin", "mfa")
	}
	return out
}
