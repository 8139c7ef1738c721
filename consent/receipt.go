package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
)

// Consent receipts follow the Kantara Initiative Consent Receipt
// Specification v1.1 (2018-02-20): the receipt is a JSON object with the
// fields of its §5, signed as a JWT (JWS compact serialisation) with the
// broker's signing key (ES256 unless only RS256 is configured), verifiable
// with the broker's /jwks.json. The fields Trustbroker has no data for
// (the controller's postal address, telephone, privacy-policy URL: a
// registration does not carry them) are present and empty, as the
// specification requires them. What the specification has no field for
// (withdrawal, expiry, the attributes left out, the purpose version) is in
// the extension object "trustbroker".

// ReceiptVersion is the "version" of a Kantara v1.1 consent receipt.
const ReceiptVersion = "KI-CR-v1.1.0"

// ReceiptSigner signs a JWT with the active key of alg (keys.Manager).
type ReceiptSigner interface {
	SignJWT(alg string, claims any) (string, error)
}

// Receipts issues signed consent receipts.
type Receipts struct {
	Manager *Manager
	Signer  ReceiptSigner
	// Alg is the JWS algorithm (ES256).
	Alg string
	// Issuer is the broker's issuer URL ("iss" of the receipt JWT).
	Issuer string
	// Jurisdiction of the controller ("DE" when empty).
	Jurisdiction string
}

// Receipt is a Kantara Consent Receipt v1.1 with the JWT claims iss, iat
// and jti.
type Receipt struct {
	Issuer   string `json:"iss"`
	IssuedAt int64  `json:"iat"`
	JTI      string `json:"jti"`

	Version          string            `json:"version"`
	Jurisdiction     string            `json:"jurisdiction"`
	ConsentTimestamp int64             `json:"consentTimestamp"`
	CollectionMethod string            `json:"collectionMethod"`
	ConsentReceiptID string            `json:"consentReceiptID"`
	Language         string            `json:"language"`
	PIIPrincipalID   string            `json:"piiPrincipalId"`
	PIIControllers   []ReceiptControl  `json:"piiControllers"`
	PolicyURL        string            `json:"policyUrl"`
	Services         []ReceiptService  `json:"services"`
	Sensitive        bool              `json:"sensitive"`
	SPICat           []string          `json:"spiCat"`
	Trustbroker      ReceiptExtensions `json:"trustbroker"`
}

// ReceiptControl is an entry of piiControllers.
type ReceiptControl struct {
	PIIController    string         `json:"piiController"`
	OnBehalf         bool           `json:"onBehalf"`
	Contact          string         `json:"contact"`
	Address          map[string]any `json:"address"`
	Email            string         `json:"email"`
	Phone            string         `json:"phone"`
	PIIControllerURL string         `json:"piiControllerUrl,omitempty"`
}

// ReceiptService is an entry of services.
type ReceiptService struct {
	Service  string           `json:"service"`
	Purposes []ReceiptPurpose `json:"purposes"`
}

// ReceiptPurpose is one purpose of a service: one per consent-based
// attribute offered, its purpose text in the consent's language.
type ReceiptPurpose struct {
	Purpose              string   `json:"purpose"`
	PurposeCategory      []string `json:"purposeCategory"`
	ConsentType          string   `json:"consentType"`
	PIICategory          []string `json:"piiCategory"`
	PrimaryPurpose       bool     `json:"primaryPurpose"`
	Termination          string   `json:"termination"`
	ThirdPartyDisclosure bool     `json:"thirdPartyDisclosure"`
	ThirdPartyName       string   `json:"thirdPartyName,omitempty"`
}

// ReceiptExtensions carries what Kantara v1.1 has no field for.
type ReceiptExtensions struct {
	RelyingParty      string   `json:"relying_party"`
	Status            string   `json:"status"` // active, expired, withdrawn
	AttributesGranted []string `json:"attributes_granted"`
	AttributesOffered []string `json:"attributes_offered"`
	PurposeVersion    string   `json:"purpose_version"`
	ExpiresAt         int64    `json:"expires_at,omitempty"`
	WithdrawnAt       int64    `json:"withdrawn_at,omitempty"`
}

// ErrNotOwner: the consent belongs to another account.
var ErrNotOwner = errors.New("consent: not the account's consent")

// Build assembles the receipt of a consent of the account.
func (rc *Receipts) Build(ctx context.Context, accountID, consentID string) (*Receipt, error) {
	c, err := rc.Manager.Store.Consents().Get(ctx, consentID)
	if err != nil {
		return nil, err
	}
	if c.AccountID != accountID {
		return nil, ErrNotOwner
	}
	now := rc.Manager.Now()
	jur := rc.Jurisdiction
	if jur == "" {
		jur = "DE"
	}
	lang := c.Lang
	if lang == "" {
		lang = "de"
	}
	name := c.RPID
	rp, known := rc.Manager.RelyingParties[c.RPID]
	if known {
		name = rp.Name.Get(lang)
	}
	termination := "until withdrawn"
	if !c.ExpiresAt.IsZero() {
		termination = "until withdrawn or until " + c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	status := "active"
	switch {
	case !c.WithdrawnAt.IsZero():
		status = "withdrawn"
	case !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now):
		status = "expired"
	}
	svc := ReceiptService{Service: name}
	for _, attr := range c.Offered {
		if !slices.Contains(c.Attributes, attr) {
			continue // left out: no consent for it
		}
		p := ReceiptPurpose{
			PurposeCategory: []string{}, ConsentType: "EXPLICIT", PIICategory: []string{attr},
			Termination: termination,
		}
		if known {
			for _, cl := range rp.Claims {
				if cl.Name == attr {
					p.Purpose, p.PrimaryPurpose = cl.Purpose.Get(lang), cl.Required
				}
			}
		}
		if p.Purpose == "" || (known && c.PurposeVersion != PurposeVersion(rp)) {
			p.Purpose = c.Purpose // the purposes as recorded
		}
		svc.Purposes = append(svc.Purposes, p)
	}
	if svc.Purposes == nil {
		svc.Purposes = []ReceiptPurpose{}
	}
	r := &Receipt{
		Issuer: rc.Issuer, IssuedAt: now.Unix(), JTI: c.ID + "." + fmt.Sprint(now.UnixNano()),
		Version: ReceiptVersion, Jurisdiction: jur, ConsentTimestamp: c.GrantedAt.Unix(),
		CollectionMethod: collectionMethod(c), ConsentReceiptID: c.ID, Language: lang,
		PIIPrincipalID: c.AccountID,
		PIIControllers: []ReceiptControl{{PIIController: name, Address: map[string]any{}}},
		Services:       []ReceiptService{svc}, SPICat: []string{},
		Trustbroker: ReceiptExtensions{
			RelyingParty: c.RPID, Status: status, AttributesGranted: nonNil(c.Attributes), AttributesOffered: nonNil(c.Offered),
			PurposeVersion: c.PurposeVersion,
		},
	}
	if !c.ExpiresAt.IsZero() {
		r.Trustbroker.ExpiresAt = c.ExpiresAt.Unix()
	}
	if !c.WithdrawnAt.IsZero() {
		r.Trustbroker.WithdrawnAt = c.WithdrawnAt.Unix()
	}
	return r, nil
}

// Sign builds the receipt and signs it; the JWS and the receipt.
func (rc *Receipts) Sign(ctx context.Context, accountID, consentID string) (string, *Receipt, error) {
	r, err := rc.Build(ctx, accountID, consentID)
	if err != nil {
		return "", nil, err
	}
	jws, err := rc.Signer.SignJWT(rc.Alg, r)
	if err != nil {
		return "", nil, err
	}
	return jws, r, nil
}

// ReceiptAlg picks ES256 when configured, else the first algorithm.
func ReceiptAlg(cfg *config.Config) string {
	if slices.Contains(cfg.Keys.Algorithms, "ES256") || len(cfg.Keys.Algorithms) == 0 {
		return "ES256"
	}
	return cfg.Keys.Algorithms[0]
}

func collectionMethod(c *store.Consent) string {
	if c.Method == MethodLoginPage {
		return "consent page of the login flow (" + c.Method + ")"
	}
	return c.Method
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
