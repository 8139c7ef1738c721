package consent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
)

// Login is what the login flow asks the consent manager for one login.
type Login struct {
	AccountID string
	RPID      string
	Requested []Requested
	// Force asks even when a decision is remembered (OIDC prompt=consent,
	// OIDC Core §3.1.2.1).
	Force bool
}

// Grant is the user's answer on the consent page.
type Grant struct {
	AccountID string
	RPID      string
	// Offered are the consent-based attributes the page showed; Granted
	// the ones the user allowed (every required one among them).
	Offered []string
	Granted []string
	Lang    string
	// Method says where the consent was given ("login-page").
	Method string
}

// Asker is a Step that can ask: the login flow shows the consent page
// when its evaluation says Ask, and records the answer with Grant.
type Asker interface {
	Step
	EvaluateLogin(ctx context.Context, l Login) (Evaluation, error)
	Grant(ctx context.Context, g Grant) (*store.Consent, error)
}

// Discloser records what was released (the disclosure log).
type Discloser interface {
	Disclose(ctx context.Context, d *store.Disclosure) error
}

// Revoker ends what a relying party holds for an account when its consent
// is withdrawn: tokens, sessions, back-channel logout. The OpenID Provider
// is one.
type Revoker interface {
	RevokeGrants(ctx context.Context, accountID string, rp *config.RelyingParty) error
}

// ErrNoConsent: there is no consent in force to withdraw.
var ErrNoConsent = errors.New("consent: no consent in force")

// Manager is the consent step over the store: it remembers decisions for
// the configured validity, asks again when a consent-based attribute is
// new or a purpose changed, records grants, withdrawals and disclosures.
type Manager struct {
	Store          store.Store
	RelyingParties map[string]*config.RelyingParty
	// Validity of a grant; 0 means until withdrawn.
	Validity time.Duration
	Revokers []Revoker
	Now      func() time.Time
	Rand     io.Reader
}

var (
	_ Asker     = (*Manager)(nil)
	_ Discloser = (*Manager)(nil)
)

// MethodLoginPage names the consent page of the login flow.
const MethodLoginPage = "login-page"

// Evaluate implements Step (the gate's view: no page, nothing forced).
func (m *Manager) Evaluate(ctx context.Context, accountID, rpID string, requested []Requested) (Evaluation, error) {
	return m.EvaluateLogin(ctx, Login{AccountID: accountID, RPID: rpID, Requested: requested})
}

// EvaluateLogin decides what may leave. Attributes whose legal basis is not
// consent are released as information (Evaluation.Info). Consent-based
// attributes leave only under a consent in force that offered every one
// of them under the current purpose version; otherwise Ask is set and
// Offer lists what the page must ask for.
func (m *Manager) EvaluateLogin(ctx context.Context, l Login) (Evaluation, error) {
	rp, ok := m.RelyingParties[l.RPID]
	if !ok {
		return Evaluation{}, fmt.Errorf("consent: unknown relying party %q", l.RPID)
	}
	ev := Evaluation{Mechanism: "legal-basis"}
	var consentBased []string
	for _, r := range l.Requested {
		if !r.Available {
			continue
		}
		if basis(rp, r.Name) == config.BasisConsent {
			consentBased = append(consentBased, r.Name)
		} else {
			ev.Info = append(ev.Info, r.Name)
			ev.Granted = append(ev.Granted, r.Name)
		}
	}
	if len(consentBased) == 0 {
		return ev, nil
	}
	c, err := m.Store.Consents().Active(ctx, l.AccountID, l.RPID, m.Now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Evaluation{}, err
	}
	if c != nil {
		ev.Previous = c.Attributes
	}
	if c == nil || l.Force || c.PurposeVersion != PurposeVersion(rp) || !subset(consentBased, c.Offered) {
		ev.Ask, ev.Offer, ev.Mechanism = true, consentBased, "ask"
		return ev, nil
	}
	for _, name := range consentBased {
		if slices.Contains(c.Attributes, name) {
			ev.Granted = append(ev.Granted, name)
		}
	}
	ev.Mechanism, ev.ConsentID = "stored", c.ID
	return ev, nil
}

// Grant records the user's answer. Granted must lie within Offered and
// contain every required attribute offered.
func (m *Manager) Grant(ctx context.Context, g Grant) (*store.Consent, error) {
	rp, ok := m.RelyingParties[g.RPID]
	if !ok {
		return nil, fmt.Errorf("consent: unknown relying party %q", g.RPID)
	}
	if !subset(g.Granted, g.Offered) {
		return nil, errors.New("consent: granted attributes that were not offered")
	}
	var purposes []string
	for _, cl := range rp.Claims {
		if !slices.Contains(g.Offered, cl.Name) {
			continue
		}
		if cl.Required && !slices.Contains(g.Granted, cl.Name) {
			return nil, fmt.Errorf("consent: required attribute %q not granted", cl.Name)
		}
		purposes = append(purposes, cl.Name+": "+cl.Purpose.Get(g.Lang))
	}
	id, err := m.random()
	if err != nil {
		return nil, err
	}
	now := m.Now()
	c := &store.Consent{
		ID: id, AccountID: g.AccountID, RPID: g.RPID, Attributes: sorted(g.Granted), Offered: sorted(g.Offered),
		Purpose: strings.Join(purposes, "; "), PurposeVersion: PurposeVersion(rp), GrantedAt: now,
		Method: g.Method, Lang: g.Lang,
	}
	if m.Validity > 0 {
		c.ExpiresAt = now.Add(m.Validity)
	}
	err = m.Store.InTx(ctx, func(tx store.Store) error {
		if err := tx.Consents().Create(ctx, c); err != nil {
			return err
		}
		return m.auditIn(ctx, tx, g.AccountID, "consent.grant", g.RPID, store.OutcomeSuccess, c.ID,
			map[string]any{"granted": c.Attributes, "offered": c.Offered, "purpose_version": c.PurposeVersion, "lang": c.Lang})
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Withdraw withdraws every consent in force of the account for the
// relying party (the records stay, marked withdrawn), then lets each
// Revoker end what the relying party holds. ErrNoConsent when none was in
// force.
func (m *Manager) Withdraw(ctx context.Context, accountID, rpID string) error {
	rp, ok := m.RelyingParties[rpID]
	if !ok {
		return fmt.Errorf("consent: unknown relying party %q", rpID)
	}
	now := m.Now()
	var withdrawn []string
	err := m.Store.InTx(ctx, func(tx store.Store) error {
		withdrawn = nil
		for {
			c, err := tx.Consents().Active(ctx, accountID, rpID, now)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return err
			}
			if err := tx.Consents().Withdraw(ctx, c.ID, now); err != nil {
				return err
			}
			withdrawn = append(withdrawn, c.ID)
		}
		if len(withdrawn) == 0 {
			return ErrNoConsent
		}
		return m.auditIn(ctx, tx, accountID, "consent.withdraw", rpID, store.OutcomeSuccess, "",
			map[string]any{"consents": withdrawn})
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range m.Revokers {
		if err := r.RevokeGrants(ctx, accountID, rp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Disclose implements Discloser.
func (m *Manager) Disclose(ctx context.Context, d *store.Disclosure) error {
	if d.Time.IsZero() {
		d.Time = m.Now()
	}
	return m.Store.Disclosures().Append(ctx, d)
}

func (m *Manager) auditIn(ctx context.Context, tx store.Store, actor, action, target, outcome, reason string, details map[string]any) error {
	ev := &store.AuditEvent{Time: m.Now(), Actor: actor, Action: action, Target: target, Outcome: outcome, Reason: reason}
	ev.Details = mustJSON(details)
	return tx.Audit().Append(ctx, ev)
}

func (m *Manager) random() (string, error) {
	buf := make([]byte, 16)
	if _, err := io.ReadFull(m.Rand, buf); err != nil {
		return "", fmt.Errorf("consent: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// PurposeVersion identifies what a consent page of the relying party
// shows: each consent-based claim with its required flag and its purpose
// in every language. A new consent-based claim or a changed purpose
// changes it, and stored consents no longer cover the request.
func PurposeVersion(rp *config.RelyingParty) string {
	h := sha256.New()
	claims := slices.Clone(rp.Claims)
	sort.Slice(claims, func(i, j int) bool { return claims[i].Name < claims[j].Name })
	for _, cl := range claims {
		if cl.Basis() != config.BasisConsent {
			continue
		}
		langs := make([]string, 0, len(cl.Purpose))
		for lang := range cl.Purpose {
			langs = append(langs, lang)
		}
		sort.Strings(langs)
		fmt.Fprintf(h, "%s\x00%s\x00", strconv.Quote(cl.Name), strconv.FormatBool(cl.Required))
		for _, lang := range langs {
			fmt.Fprintf(h, "%s=%s\x00", lang, strconv.Quote(cl.Purpose[lang]))
		}
		h.Write([]byte{'\n'})
	}
	return "v1-" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

// basis is the legal basis of a registered claim; unregistered names are
// consent-based.
func basis(rp *config.RelyingParty, name string) string {
	for _, cl := range rp.Claims {
		if cl.Name == name {
			return cl.Basis()
		}
	}
	return config.BasisConsent
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}
