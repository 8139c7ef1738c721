// Package store is the persistence contract of the broker: per-entity
// repositories composed into one Store with an explicit InTx. It holds
// interfaces and plain data types only; broker/store/sqlstore is the one
// implementation (SQLite and PostgreSQL), and conformance/storetest is the
// suite every backend runs.
//
// Conventions:
//   - Missing rows, and rows whose expiry has passed, are reported as
//     ErrNotFound; a unique key taken already is ErrConflict. Check both with
//     errors.Is.
//   - Updates go through an updater function that receives the current value
//     and mutates it; the implementation retries or fails with ErrConflict
//     when a concurrent writer got there first.
//   - Times are stored with microsecond precision in UTC.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Implementations wrap them with %w.
var (
	// ErrNotFound: no such row, or the row has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique key is already taken, a one-time value was
	// used before, or an optimistic update lost a race.
	ErrConflict = errors.New("store: conflict")
)

// Store composes the repositories. A Store handed to the InTx callback runs
// every call inside that one database transaction; calling InTx on it again
// joins the running transaction.
type Store interface {
	Accounts() Accounts
	Sessions() Sessions
	Transactions() Transactions
	RelyingParties() RelyingParties
	Consents() Consents
	Disclosures() Disclosures
	Audit() Audit
	Keys() Keys
	OAuth() OAuth
	Replay() Replay
	WebAuthn() WebAuthnCredentials
	Revocations() RevocationCache

	// InTx runs fn in one transaction: committed when fn returns nil,
	// rolled back when it returns an error or panics.
	InTx(ctx context.Context, fn func(tx Store) error) error
	// GC deletes rows whose expiry lies before now.
	GC(ctx context.Context, now time.Time) (GCResult, error)
	// Ping checks that the database answers (for /readyz).
	Ping(ctx context.Context) error
	// Dialect names the backend: "sqlite" or "postgres".
	Dialect() string
	Close() error
}

// GCResult counts what one GC pass removed, per table.
type GCResult map[string]int64

// Total is the number of rows removed over all tables.
func (r GCResult) Total() int64 {
	var n int64
	for _, v := range r {
		n += v
	}
	return n
}

// Account is a broker account. Each account has one or more linked
// provider identities; relying parties see a pairwise subject derived from
// the account ID unless their registration says public.
type Account struct {
	ID        string
	CreatedAt time.Time
	UpdatedAt time.Time
	Disabled  bool
	// DisplayName is what the account dashboard greets the user with.
	DisplayName string
}

// LinkedIdentity ties a subject at a provider to an account. Verified
// attributes are not kept here: they travel with the login and leave only
// with consent.
type LinkedIdentity struct {
	AccountID  string
	ProviderID string
	Subject    string
	Kind       string // credential kind, e.g. "eid", "webauthn"
	LinkedAt   time.Time
	LastUsedAt time.Time
	// MatchKey is the broker's keyed hash of the provider's match key
	// (providers.Identity.MatchKey), never the match key itself; empty
	// when the provider gives none.
	MatchKey string
}

// Accounts stores accounts and their linked identities.
type Accounts interface {
	Create(ctx context.Context, a *Account) error
	Get(ctx context.Context, id string) (*Account, error)
	Update(ctx context.Context, id string, fn func(*Account) error) (*Account, error)
	// Delete removes the account with its identities, sessions and consents.
	Delete(ctx context.Context, id string) error

	// Link adds an identity; ErrConflict when provider and subject are
	// linked to an account already.
	Link(ctx context.Context, li LinkedIdentity) error
	Unlink(ctx context.Context, providerID, subject string) error
	FindByIdentity(ctx context.Context, providerID, subject string) (*Account, error)
	Identities(ctx context.Context, accountID string) ([]LinkedIdentity, error)
	TouchIdentity(ctx context.Context, providerID, subject string, at time.Time) error
	// SetMatchKey replaces the match key hash of a linked identity (empty
	// clears it); ErrNotFound when the identity is not linked.
	SetMatchKey(ctx context.Context, providerID, subject, matchKey string) error
	// FindByMatchKey returns the linked identities of credential kind
	// whose match key hash is matchKey, oldest link first; none for an
	// empty matchKey. Matching is per kind, not per provider: the same
	// person's cards read through different providers of one kind (an
	// eID-Server and its simulator) match.
	FindByMatchKey(ctx context.Context, kind, matchKey string) ([]LinkedIdentity, error)
}

// Session is a browser SSO session. ID is what the store keys on; the
// broker keeps only a hash of the cookie value here.
type Session struct {
	ID             string
	AccountID      string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	LastSeenAt     time.Time
	AuthTime       time.Time
	LoA            string   // eIDAS LoA URI reached
	AMR            []string // RFC 8176 values
	ProviderID     string
	CredentialKind string
	// RelyingParties lists the RPs that received an answer in this
	// session, for logout propagation.
	RelyingParties []string
	// Identity is the identity proven at login (JSON of
	// providers.Identity), kept for the session's lifetime so that single
	// sign-on can answer another RP without a new login.
	Identity json.RawMessage
}

// Sessions stores SSO sessions.
type Sessions interface {
	Create(ctx context.Context, s *Session) error
	Get(ctx context.Context, id string) (*Session, error)
	Update(ctx context.Context, id string, fn func(*Session) error) (*Session, error)
	Delete(ctx context.Context, id string) error
	ListByAccount(ctx context.Context, accountID string) ([]Session, error)
	DeleteByAccount(ctx context.Context, accountID string) (int64, error)
}

// Transaction states.
const (
	TxStateMethod   = "method"   // waiting for the user to choose a credential
	TxStateProvider = "provider" // a provider exchange is running
	TxStateConsent  = "consent"  // identity known, consent page shown
	TxStateLink     = "link"     // unknown identity matches an account: link offer shown
	TxStateDone     = "done"     // the adapter may answer the RP
	TxStateFailed   = "failed"
)

// Transaction is a login transaction, created by an adapter from a protocol
// request and completed by the flow. It expires; an expired transaction is
// not found.
type Transaction struct {
	ID        string
	Protocol  string // adapter that owns it: "oidc", "saml", "demo"
	RPID      string
	State     string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Request is the adapter's serialized protocol request, enough to
	// answer the RP later.
	Request json.RawMessage
	// Params is the broker-level view of what was asked for
	// (LoA, claims, prompt, max_age...), JSON of broker.LoginRequest.
	Params json.RawMessage
	// ProviderID is the provider chosen by the user.
	ProviderID string
	// ProviderState is the chosen provider's own state between begin and
	// complete.
	ProviderState json.RawMessage
	// Result is the outcome (identity, account, session, decision) once
	// known, JSON of the flow's result type.
	Result    json.RawMessage
	AccountID string
	SessionID string
	// Version increases on every update (optimistic concurrency).
	Version int64
}

// Transactions stores login transactions.
type Transactions interface {
	Create(ctx context.Context, t *Transaction) error
	Get(ctx context.Context, id string) (*Transaction, error)
	Update(ctx context.Context, id string, fn func(*Transaction) error) (*Transaction, error)
	Delete(ctx context.Context, id string) error
}

// RelyingParty is a relying-party registration (OIDC client or SAML SP).
// Config holds the protocol-specific registration as JSON.
type RelyingParty struct {
	ID        string
	Protocol  string // "oidc" or "saml"
	Name      string
	Source    string // "config" (from YAML) or "admin"
	Config    json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RelyingParties stores relying-party registrations.
type RelyingParties interface {
	// Put creates or replaces the registration with rp.ID.
	Put(ctx context.Context, rp *RelyingParty) error
	Get(ctx context.Context, id string) (*RelyingParty, error)
	List(ctx context.Context) ([]RelyingParty, error)
	Delete(ctx context.Context, id string) error
}

// Consent records what an account allowed a relying party to receive.
type Consent struct {
	ID          string
	AccountID   string
	RPID        string
	Attributes  []string // granted attribute (claim) names
	Purpose     string   // the RP's stated purpose shown at grant time
	GrantedAt   time.Time
	ExpiresAt   time.Time // zero: no expiry
	WithdrawnAt time.Time // zero: in force
	// Offered are the consent-based attributes the page offered; those
	// not in Attributes were left out by the user.
	Offered []string
	// PurposeVersion identifies the purposes and legal bases shown; a
	// change asks again.
	PurposeVersion string
	// Method and Lang say how the consent was given ("login-page", "de").
	Method string
	Lang   string
}

// Consents stores consent records. A withdrawn consent stays as a record.
type Consents interface {
	Create(ctx context.Context, c *Consent) error
	// Active returns the newest consent in force for account and RP.
	Active(ctx context.Context, accountID, rpID string, now time.Time) (*Consent, error)
	Get(ctx context.Context, id string) (*Consent, error)
	ListByAccount(ctx context.Context, accountID string) ([]Consent, error)
	// Withdraw marks the consent withdrawn; ErrNotFound when it is not in
	// force.
	Withdraw(ctx context.Context, id string, at time.Time) error
}

// Disclosure is one release of attributes to a relying party.
type Disclosure struct {
	Seq        int64 // assigned by the store, increasing
	Time       time.Time
	AccountID  string
	RPID       string
	Attributes []string
	Protocol   string // "oidc", "saml", "demo", "gate"
	ConsentID  string // the consent it was released under; "" when none was needed
}

// Disclosures is the append-only disclosure log (what each relying party
// actually received). Rows go with their account.
type Disclosures interface {
	Append(ctx context.Context, d *Disclosure) error
	// ListByAccount returns the account's disclosures, newest first, at
	// most limit (100 when zero).
	ListByAccount(ctx context.Context, accountID string, limit int) ([]Disclosure, error)
}

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// AuditEvent is one entry of the append-only audit trail.
type AuditEvent struct {
	Seq       int64 // assigned by the store, increasing
	Time      time.Time
	Actor     string // account id, client id, "operator:<name>", "system"
	Action    string // e.g. "login.start", "login.provider", "consent.grant"
	Target    string // e.g. RP id, transaction id
	Outcome   string
	Reason    string
	RequestID string
	Details   json.RawMessage
}

// AuditFilter selects audit events; zero fields match all.
type AuditFilter struct {
	AfterSeq int64
	Actor    string
	Action   string
	Target   string
	Since    time.Time
	Limit    int // 0 means 100
}

// Audit is the append-only audit trail: there is no update or delete.
type Audit interface {
	Append(ctx context.Context, ev *AuditEvent) error
	List(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// Signing key states.
const (
	KeyNext    = "next"    // published in the JWKS, not yet signing
	KeyActive  = "active"  // signs
	KeyRetired = "retired" // published for verification until VerifyUntil
)

// SigningKey is a signing key pair; the private key is encrypted at rest
// by broker/keys before it reaches the store.
type SigningKey struct {
	ID               string // kid
	Alg              string // "ES256", "RS256"
	State            string
	PublicJWK        json.RawMessage
	PrivateEncrypted []byte
	CreatedAt        time.Time
	ActivatedAt      time.Time
	RetiredAt        time.Time
	// VerifyUntil: a retired key is kept until then (the longest lifetime
	// of anything it signed); zero while active or next.
	VerifyUntil time.Time
}

// Keys stores signing keys.
type Keys interface {
	Create(ctx context.Context, k *SigningKey) error
	Get(ctx context.Context, id string) (*SigningKey, error)
	List(ctx context.Context) ([]SigningKey, error)
	Update(ctx context.Context, id string, fn func(*SigningKey) error) (*SigningKey, error)
	Delete(ctx context.Context, id string) error
}

// OAuth token kinds, one per fosite storage capability.
const (
	TokenAuthorizeCode = "authorize_code"
	TokenAccess        = "access_token"
	TokenRefresh       = "refresh_token"
	TokenPKCE          = "pkce"
	TokenOIDC          = "oidc"
	TokenPAR           = "par"
)

// OAuthToken is one stored OAuth artefact keyed by (Kind, Signature).
// RequestID ties every artefact of one grant together: refresh-token
// rotation keeps it, so it also names the refresh-token family.
type OAuthToken struct {
	Kind        string
	Signature   string
	RequestID   string
	ClientID    string
	Subject     string
	Active      bool
	RequestedAt time.Time
	ExpiresAt   time.Time
	// Data is the serialized fosite request and session: JSON, which the
	// store keeps as given and does not check again (it is the caller's
	// own encoding, made a moment before, and checking it cost a tenth of
	// a refresh rotation's database time); a reader of malformed data gets
	// its decoder's error.
	Data json.RawMessage
}

// OAuth stores what the OpenID Provider needs.
type OAuth interface {
	CreateToken(ctx context.Context, t *OAuthToken) error
	// GetToken returns the token even when inactive (the caller tells a
	// reused code or refresh token from an unknown one), but not when
	// expired.
	GetToken(ctx context.Context, kind, signature string) (*OAuthToken, error)
	DeleteToken(ctx context.Context, kind, signature string) error
	// DeactivateToken marks one active token inactive; ErrNotFound if it
	// is absent, expired or inactive already. It is a compare-and-swap: of
	// two racing calls (a code redeemed twice, a refresh token rotated
	// twice) exactly one succeeds.
	DeactivateToken(ctx context.Context, kind, signature string) error
	// RevokeByRequestID deactivates every token of the kind issued under
	// the request (the grant, or the refresh-token family).
	RevokeByRequestID(ctx context.Context, kind, requestID string) (int64, error)
	// RevokeBySubject deactivates every token of the kind issued to the
	// client for the subject (the subject that client sees), for the
	// withdrawal of a consent.
	RevokeBySubject(ctx context.Context, kind, clientID, subject string) (int64, error)
}

// OAuthWrite is one write of OAuthBatch.WriteOAuth; exactly one field is
// set.
type OAuthWrite struct {
	// Deactivate is DeactivateToken's compare-and-swap of the token
	// (Kind, Signature).
	Deactivate *OAuthToken
	// Revoke is RevokeByRequestID of the tokens (Kind, RequestID).
	Revoke *OAuthToken
	// Create is CreateToken.
	Create *OAuthToken
}

// Apply runs the write on o, one statement.
func (w OAuthWrite) Apply(ctx context.Context, o OAuth) error {
	switch {
	case w.Deactivate != nil:
		return o.DeactivateToken(ctx, w.Deactivate.Kind, w.Deactivate.Signature)
	case w.Revoke != nil:
		_, err := o.RevokeByRequestID(ctx, w.Revoke.Kind, w.Revoke.RequestID)
		return err
	case w.Create != nil:
		return o.CreateToken(ctx, w.Create)
	}
	return errors.New("store: empty OAuth write")
}

// OAuthBatch is a store that runs the writes of one token request
// together (sqlstore: on SQLite in one turn of the write queue, on
// PostgreSQL in one round trip).
type OAuthBatch interface {
	// WriteOAuth runs ws in order in one transaction: all or none. A
	// Deactivate that finds no active, unexpired token fails the batch
	// with ErrNotFound. The error of a failed write is an
	// *OAuthBatchError naming it.
	WriteOAuth(ctx context.Context, ws []OAuthWrite) error
}

// OAuthBatchError is the error of the write at Index of a failed batch;
// nothing of the batch was written.
type OAuthBatchError struct {
	Index int
	Err   error
}

func (e *OAuthBatchError) Error() string {
	return fmt.Sprintf("OAuth write %d of batch: %v", e.Index, e.Err)
}

func (e *OAuthBatchError) Unwrap() error { return e.Err }

// Replay remembers one-time values (client-assertion jti, DPoP proof jti,
// SAML AuthnRequest and assertion IDs) across replicas.
type Replay interface {
	// Use records value in namespace until expiresAt; ErrConflict when it
	// was recorded before and has not expired.
	Use(ctx context.Context, namespace, value string, expiresAt time.Time) error
}

// WebAuthnCredential is a registered WebAuthn public-key credential
// (W3C WebAuthn L3 §4 "credential record").
type WebAuthnCredential struct {
	ID         []byte // credential id, unique over all accounts
	AccountID  string
	ProviderID string
	// UserHandle is the WebAuthn user.id of the account at the provider
	// (the same for all its credentials); UserName the name a user types
	// for non-discoverable credentials.
	UserHandle []byte
	UserName   string
	PublicKey  []byte // COSE_Key
	SignCount  uint32
	AAGUID     []byte
	// BackupEligible must not change over the credential's life;
	// BackupState may.
	BackupEligible bool
	BackupState    bool
	// UserVerified: the authenticator verified the user at registration.
	UserVerified      bool
	Transports        []string
	AttestationFormat string // e.g. "none", "packed", "fido-u2f"
	AttestationType   string // e.g. "none", "self", "basic_full"
	Attested          bool   // attestation verified to a trust anchor
	Discoverable      bool   // a resident key (passkey) was requested
	Name              string
	// Cloned is set when the signature counter went backwards; the
	// credential is refused from then on.
	Cloned     bool
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// WebAuthnCredentials stores WebAuthn credentials.
type WebAuthnCredentials interface {
	// Create adds a credential; ErrConflict when its id is registered
	// already (to any account), ErrNotFound when the account is missing.
	Create(ctx context.Context, c *WebAuthnCredential) error
	Get(ctx context.Context, id []byte) (*WebAuthnCredential, error)
	// ListByAccount returns the account's credentials, oldest first.
	ListByAccount(ctx context.Context, accountID string) ([]WebAuthnCredential, error)
	// ListByUserName returns the credentials registered under the user
	// name at the provider, oldest first.
	ListByUserName(ctx context.Context, providerID, userName string) ([]WebAuthnCredential, error)
	// UseCounter records a successful assertion as a compare-and-swap: the
	// stored counter must still be oldCount and the credential not marked
	// cloned, else ErrConflict (of two racing assertions exactly one wins).
	UseCounter(ctx context.Context, id []byte, oldCount, newCount uint32, backupState bool, at time.Time) error
	// MarkCloned flags the credential as possibly cloned.
	MarkCloned(ctx context.Context, id []byte) error
	Rename(ctx context.Context, id []byte, name string) error
	Delete(ctx context.Context, id []byte) error
}

// RevocationEntry is a verified revocation answer (a DER OCSP response or
// CRL), shared by replicas until ExpiresAt (the answer's nextUpdate).
// Readers verify Data again before they rely on it.
type RevocationEntry struct {
	Key       string // e.g. "ocsp:<hash of the CertID>", "crl:<hash of the URL>"
	Data      []byte
	FetchedAt time.Time
	ExpiresAt time.Time
}

// RevocationCache caches revocation answers across replicas.
type RevocationCache interface {
	// Put creates or replaces the entry with e.Key; ExpiresAt is required.
	Put(ctx context.Context, e *RevocationEntry) error
	// Get returns the entry; ErrNotFound when absent or expired.
	Get(ctx context.Context, key string) (*RevocationEntry, error)
}
