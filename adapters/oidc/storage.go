package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"

	"github.com/trustbroker/trustbroker/broker/store"
)

// storage is fosite's storage over the broker store: every artefact is a
// store.OAuthToken row keyed by kind and signature, so both backends serve
// it and every replica sees it.
type storage struct {
	st      store.Store
	clients map[string]*Client
	now     func() time.Time
	// codeSig is the signature of an authorization code (fosite's code
	// strategy); nil in tests that use no codes.
	codeSig func(ctx context.Context, code string) string
	// fallbackTTL bounds rows whose session has no expiry for their kind.
	fallbackTTL time.Duration
}

var (
	_ fosite.Storage                     = (*storage)(nil)
	_ oauth2.CoreStorage                 = (*storage)(nil)
	_ oauth2.TokenRevocationStorage      = (*storage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*storage)(nil)
	_ pkce.PKCERequestStorage            = (*storage)(nil)
	_ fosite.PARStorage                  = (*storage)(nil)
)

// GetClient returns a registered client.
func (s *storage) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

// ClientAssertionJWTValid: the check happens atomically in
// SetClientAssertionJWT, which fosite calls next and whose error it returns.
func (s *storage) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT records a private_key_jwt assertion's jti until it
// expires; a second use is refused (fosite CVE-2020-15222), across replicas.
func (s *storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if !exp.After(s.now()) {
		return fosite.ErrInvalidClient.WithHint("The client assertion has expired.")
	}
	err := s.st.Replay().Use(ctx, "client_assertion", jti, exp)
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrInvalidClient.WithHint("The client assertion was used before (jti).")
	}
	return err
}

// storedRequest is the serialisable part of a fosite request.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope"`
	GrantedScope      []string   `json:"granted_scope"`
	Form              url.Values `json:"form"`
	RequestedAudience []string   `json:"requested_audience"`
	GrantedAudience   []string   `json:"granted_audience"`
	// Session is encoded and decoded in place, in the one pass over the
	// row (get sets it to the session to fill before decoding).
	Session any `json:"session"`
	// Authorize request fields, for pushed authorization requests.
	ResponseTypes []string `json:"response_types,omitempty"`
	RedirectURI   string   `json:"redirect_uri,omitempty"`
	State         string   `json:"state,omitempty"`
	ResponseMode  string   `json:"response_mode,omitempty"`
	// Code is set in an authorization code's row (codebundle.go).
	Code *codeParts `json:"code_parts,omitempty"`
}

func (s *storage) create(ctx context.Context, kind, signature string, req fosite.Requester, tt fosite.TokenType) error {
	return s.createWith(ctx, kind, signature, req, tt, nil)
}

// createWith stores req as a row of kind; parts go into an authorization
// code's row.
func (s *storage) createWith(ctx context.Context, kind, signature string, req fosite.Requester, tt fosite.TokenType, parts *codeParts) error {
	sr := storedRequest{Code: parts,
		ID: req.GetID(), RequestedAt: req.GetRequestedAt(), ClientID: req.GetClient().GetID(),
		RequestedScope: req.GetRequestedScopes(), GrantedScope: req.GetGrantedScopes(), Form: req.GetRequestForm(),
		RequestedAudience: req.GetRequestedAudience(), GrantedAudience: req.GetGrantedAudience(), Session: req.GetSession(),
	}
	if ar, ok := req.(fosite.AuthorizeRequester); ok {
		sr.ResponseTypes, sr.State, sr.ResponseMode = ar.GetResponseTypes(), ar.GetState(), string(ar.GetResponseMode())
		if u := ar.GetRedirectURI(); u != nil {
			sr.RedirectURI = u.String()
		}
	}
	rs := deferredOf(ctx)
	var data []byte
	if rs != nil && rs.encoded.of(&sr) {
		data = rs.encoded.data
	} else {
		enc := sr
		if ss, ok := sr.Session.(*Session); ok && ss != nil {
			enc.Session = ss.encodable()
		}
		var err error
		if data, err = gojson.Marshal(enc); err != nil {
			return fmt.Errorf("oidc: encode request: %w", err)
		}
		if rs != nil {
			rs.encoded = newEncoding(sr, data)
		}
	}
	now := s.now()
	exp := time.Time{}
	if req.GetSession() != nil {
		exp = req.GetSession().GetExpiresAt(tt)
	}
	if exp.IsZero() {
		exp = now.Add(s.fallbackTTL)
	}
	subject := ""
	if req.GetSession() != nil {
		subject = req.GetSession().GetSubject()
	}
	tok := &store.OAuthToken{
		Kind: kind, Signature: signature, RequestID: req.GetID(), ClientID: sr.ClientID, Subject: subject,
		Active: true, RequestedAt: req.GetRequestedAt(), ExpiresAt: exp, Data: data,
	}
	if rs != nil {
		rs.record(deferredOp{w: store.OAuthWrite{Create: tok}})
		return nil
	}
	return s.oauth(ctx).CreateToken(ctx, tok)
}

// encoding is a request's encoding made in a deferred transaction. fosite
// stores one request as the access and as the refresh token of a code
// exchange and of a rotation, one call after the other (the exchange
// hands over two sanitised copies of it, the rotation one request twice):
// the second row takes the first one's bytes when the request is the
// same. Same is: the same session, not changed in what fosite changes in
// a session in a token request (the expiries), and equal request fields;
// only within one deferred transaction, where no code runs between
// fosite's calls to the storage.
type encoding struct {
	req     storedRequest // Session is the fosite session itself
	expires map[fosite.TokenType]time.Time
	data    []byte
}

func newEncoding(sr storedRequest, data []byte) *encoding {
	e := &encoding{req: sr.clone(), data: data}
	if ss, ok := sr.Session.(*Session); ok && ss != nil && ss.DefaultSession != nil {
		e.expires = maps.Clone(ss.ExpiresAt)
	}
	return e
}

// of reports whether sr encodes to e's bytes.
func (e *encoding) of(sr *storedRequest) bool {
	if e == nil || sr.Code != nil || e.req.Code != nil {
		return false
	}
	ss, ok := sr.Session.(*Session)
	if !ok || ss == nil || ss.DefaultSession == nil || sr.Session != e.req.Session ||
		!maps.EqualFunc(ss.ExpiresAt, e.expires, time.Time.Equal) {
		return false
	}
	a, b := &e.req, sr
	return a.ID == b.ID && a.RequestedAt.Equal(b.RequestedAt) && a.RequestedAt.Location() == b.RequestedAt.Location() &&
		a.ClientID == b.ClientID &&
		sameJSONStrings(a.RequestedScope, b.RequestedScope) && sameJSONStrings(a.GrantedScope, b.GrantedScope) &&
		sameJSONStrings(a.RequestedAudience, b.RequestedAudience) && sameJSONStrings(a.GrantedAudience, b.GrantedAudience) &&
		maps.EqualFunc(a.Form, b.Form, sameJSONStrings) && (a.Form == nil) == (b.Form == nil) &&
		sameJSONStrings(a.ResponseTypes, b.ResponseTypes) && a.RedirectURI == b.RedirectURI &&
		a.State == b.State && a.ResponseMode == b.ResponseMode
}

// sameJSONStrings reports whether a and b encode alike (nil is null, an
// empty list []).
func sameJSONStrings(a, b []string) bool {
	return slices.Equal(a, b) && (a == nil) == (b == nil)
}

// get loads a row and rebuilds the request with session decoded into sess.
// An inactive row comes back with its request and inactiveErr.
func (s *storage) get(ctx context.Context, kind, signature string, sess fosite.Session, inactiveErr error) (*fosite.AuthorizeRequest, error) {
	row, err := s.getRow(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	ar, err := s.decodeRow(ctx, row, sess)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return ar, inactiveErr
	}
	return ar, nil
}

// decodeRow rebuilds the request of a row with its session decoded into
// sess, whether the row is active or not.
func (s *storage) decodeRow(ctx context.Context, row *store.OAuthToken, sess fosite.Session) (*fosite.AuthorizeRequest, error) {
	if sess == nil {
		sess = newSession()
	}
	sr, err := s.decodeRequest(ctx, row, sess)
	if err != nil {
		return nil, err
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, fosite.ErrNotFound // the client was removed from the configuration
	}
	ar := fosite.NewAuthorizeRequest()
	ar.ID, ar.RequestedAt, ar.Client, ar.Session = sr.ID, sr.RequestedAt, client, sess
	ar.RequestedScope, ar.GrantedScope, ar.Form = sr.RequestedScope, sr.GrantedScope, sr.Form
	ar.RequestedAudience, ar.GrantedAudience = sr.RequestedAudience, sr.GrantedAudience
	if ar.Form == nil {
		ar.Form = url.Values{}
	}
	ar.ResponseTypes, ar.State, ar.ResponseMode = sr.ResponseTypes, sr.State, fosite.ResponseModeType(sr.ResponseMode)
	if sr.RedirectURI != "" {
		ar.RedirectURI, _ = url.Parse(sr.RedirectURI)
	}
	return ar, nil
}

// decodeRequest decodes a row's request, its session into sess: in one
// pass, the session in place (into the pointer sess holds) rather than
// kept raw and decoded again.
//
// A code exchange asks for the code's row three times (fosite's check,
// fosite's issuing, the ID token), each time into the same session, the
// token request's: the first call filled it from the row, and what
// changed in it since are the access and refresh token expiries fosite
// sets (not in a code's row) and the DPoP binding (in the row only when
// the code was bound, and then equal). Decoding again would write the
// same values, so the request state keeps the first decoding for this row
// and session, and later calls reuse its request fields (copied) and
// leave the session as it is.
func (s *storage) decodeRequest(ctx context.Context, row *store.OAuthToken, sess fosite.Session) (storedRequest, error) {
	rs := stateOf(ctx)
	if rs != nil && rs.decodedRow == row && rs.decodedSess == sess && row != nil {
		return rs.decoded.clone(), nil
	}
	sr := storedRequest{Session: sess}
	if err := gojson.Unmarshal(row.Data, &sr); err != nil {
		return storedRequest{}, fmt.Errorf("oidc: decode request: %w", err)
	}
	if rs != nil && row.Kind == store.TokenAuthorizeCode {
		rs.decodedRow, rs.decodedSess, rs.decoded = row, sess, sr.clone()
	}
	return sr, nil
}

// clone copies the request fields fosite could change in place.
func (sr storedRequest) clone() storedRequest {
	c := sr
	c.RequestedScope, c.GrantedScope = slices.Clone(sr.RequestedScope), slices.Clone(sr.GrantedScope)
	c.RequestedAudience, c.GrantedAudience = slices.Clone(sr.RequestedAudience), slices.Clone(sr.GrantedAudience)
	c.ResponseTypes = slices.Clone(sr.ResponseTypes)
	if sr.Form != nil {
		c.Form = make(url.Values, len(sr.Form))
		for k, v := range sr.Form {
			c.Form[k] = slices.Clone(v)
		}
	}
	return c
}

// getRow loads a row. fosite reads an authorization code twice in one
// exchange (checking, then issuing); the second read is served from the
// request state, as is the OpenID Connect session the redemption read.
// That is safe: redeeming is the compare-and-swap of
// InvalidateAuthorizeCodeSession, not the read.
func (s *storage) getRow(ctx context.Context, kind, signature string) (*store.OAuthToken, error) {
	rs := stateOf(ctx)
	if rs == nil || (kind != store.TokenAuthorizeCode && kind != store.TokenOIDC) {
		return s.oauth(ctx).GetToken(ctx, kind, signature)
	}
	k := rowKey{kind, signature}
	if row, ok := rs.rows[k]; ok {
		return row, nil
	}
	row, err := s.oauth(ctx).GetToken(ctx, kind, signature)
	if err == nil {
		if rs.rows == nil {
			rs.rows = map[rowKey]*store.OAuthToken{}
		}
		rs.rows[k] = row
	}
	return row, err
}

func (s *storage) deleteRow(ctx context.Context, kind, signature string) error {
	if rs := stateOf(ctx); rs != nil && rs.deleted[rowKey{kind, signature}] {
		return nil // deleted with the code's redemption
	}
	err := s.oauth(ctx).DeleteToken(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *storage) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	if b := bundleOf(ctx); b != nil && b.req == nil {
		b.sig, b.req = code, req
		return nil
	}
	return s.create(ctx, store.TokenAuthorizeCode, code, req, fosite.AuthorizeCode)
}

// GetAuthorizeCodeSession returns ErrInvalidatedAuthorizeCode with the
// request for a used code, so fosite revokes what the code issued.
func (s *storage) GetAuthorizeCodeSession(ctx context.Context, code string, sess fosite.Session) (fosite.Requester, error) {
	ar, err := s.get(ctx, store.TokenAuthorizeCode, code, sess, fosite.ErrInvalidatedAuthorizeCode)
	if ar == nil {
		return nil, err
	}
	return ar, err
}

// InvalidateAuthorizeCodeSession marks a code used; only one of two racing
// redemptions gets past it.
//
// Inside the redemption's transaction it also reads and deletes the
// code's OpenID Connect session (fosite would delete it in a commit of its
// own after the transaction): the read is kept for the ID token.
//
// In a deferred transaction the swap of a code whose parts are in its row
// (codebundle.go) is recorded and runs at Commit.
func (s *storage) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	if rs := deferredOf(ctx); rs != nil {
		parts, _, err := s.codePartsOf(ctx, code)
		if err != nil {
			return err
		}
		if parts != nil && rs.deferred {
			rs.record(deferredOp{w: store.OAuthWrite{Deactivate: &store.OAuthToken{Kind: store.TokenAuthorizeCode, Signature: code}},
				notFound: func() error { return fosite.ErrInvalidatedAuthorizeCode }})
			return nil
		}
	}
	if err := invalidateCode(ctx, s.oauth(ctx), code); err != nil {
		return err
	}
	rs := stateOf(ctx)
	if rs == nil || rs.tx == nil || rs.code == "" {
		return nil
	}
	if parts, _, err := s.codePartsOf(ctx, code); err != nil {
		return err
	} else if parts != nil {
		return nil // the code's OpenID Connect and PKCE parts are in its row
	}
	if err := s.deletePendingPKCE(ctx, rs); err != nil {
		return err
	}
	key := oidcKey(rs.code)
	if _, err := s.getRow(ctx, store.TokenOIDC, key); errors.Is(err, store.ErrNotFound) {
		return nil // not an OpenID Connect request (or an earlier version's row)
	} else if err != nil {
		return err
	}
	if err := s.oauth(ctx).DeleteToken(ctx, store.TokenOIDC, key); err != nil {
		return err
	}
	if rs.deleted == nil {
		rs.deleted = map[rowKey]bool{}
	}
	rs.deleted[rowKey{store.TokenOIDC, key}] = true
	return nil
}

// invalidateCode is the compare-and-swap that redeems a code.
func invalidateCode(ctx context.Context, o store.OAuth, code string) error {
	err := o.DeactivateToken(ctx, store.TokenAuthorizeCode, code)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrInvalidatedAuthorizeCode
	}
	return err
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *storage) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	if selfContained(req) {
		return nil // see selfcontained.go
	}
	return s.create(ctx, store.TokenAccess, signature, req, fosite.AccessToken)
}

// GetAccessTokenSession: a revoked access token is not found.
func (s *storage) GetAccessTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	ar, err := s.get(ctx, store.TokenAccess, signature, sess, fosite.ErrNotFound)
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *storage) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteRow(ctx, store.TokenAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *storage) CreateRefreshTokenSession(ctx context.Context, signature, _ string, req fosite.Requester) error {
	return s.create(ctx, store.TokenRefresh, signature, req, fosite.RefreshToken)
}

// GetRefreshTokenSession returns ErrInactiveToken with the request for a
// rotated refresh token: fosite then revokes the whole family.
func (s *storage) GetRefreshTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	ar, err := s.get(ctx, store.TokenRefresh, signature, sess, fosite.ErrInactiveToken)
	if ar == nil {
		return nil, err
	}
	return ar, err
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *storage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteRow(ctx, store.TokenRefresh, signature)
}

// RotateRefreshToken retires the presented refresh token and the access
// tokens issued before it. If a concurrent request rotated it first, this is
// reuse: the family is revoked and the request fails.
//
// Inside a transaction (the rotation's writes are one), fosite rolls back
// on the error, so the family revocation is queued to run after the
// rollback, outside the transaction.
//
// In a deferred transaction the rotation is recorded and runs at Commit,
// with the same outcome.
func (s *storage) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if rs := deferredOf(ctx); rs != nil {
		rs.record(deferredOp{w: store.OAuthWrite{Deactivate: &store.OAuthToken{Kind: store.TokenRefresh, Signature: signature}},
			notFound: func() error {
				rs.afterRollback = append(rs.afterRollback, func(ctx context.Context, st store.Store) error {
					return revokeFamily(ctx, st, requestID)
				})
				return fosite.ErrInactiveToken
			}})
		rs.record(deferredOp{w: store.OAuthWrite{Revoke: &store.OAuthToken{Kind: store.TokenAccess, RequestID: requestID}}})
		return nil
	}
	err := s.oauth(ctx).DeactivateToken(ctx, store.TokenRefresh, signature)
	if errors.Is(err, store.ErrNotFound) {
		if rs := stateOf(ctx); rs != nil && rs.tx != nil {
			rs.afterRollback = append(rs.afterRollback, func(ctx context.Context, st store.Store) error {
				return revokeFamily(ctx, st, requestID)
			})
			return fosite.ErrInactiveToken
		}
		if rerr := s.RevokeRefreshToken(ctx, requestID); rerr != nil {
			return rerr
		}
		if rerr := s.RevokeAccessToken(ctx, requestID); rerr != nil {
			return rerr
		}
		return fosite.ErrInactiveToken
	}
	if err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// revokeFamily deactivates every refresh and access token of the grant.
func revokeFamily(ctx context.Context, st store.Store, requestID string) error {
	if _, err := st.OAuth().RevokeByRequestID(ctx, store.TokenRefresh, requestID); err != nil {
		return err
	}
	_, err := st.OAuth().RevokeByRequestID(ctx, store.TokenAccess, requestID)
	return err
}

// RevokeRefreshToken deactivates every refresh token of the grant.
func (s *storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.oauth(ctx).RevokeByRequestID(ctx, store.TokenRefresh, requestID)
	return err
}

// RevokeAccessToken deactivates every access token of the grant.
func (s *storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := s.oauth(ctx).RevokeByRequestID(ctx, store.TokenAccess, requestID)
	return err
}

// oidcKey is the key of a code's OpenID Connect session: fosite hands the
// storage the authorization code itself, which is not to be kept readable
// in the database, so the row is keyed by its SHA-256.
func oidcKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *storage) CreateOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) error {
	if b := bundleOf(ctx); b.holds(s.codeSignature(ctx, code), req) && !b.parts.OIDC {
		b.parts.OIDC, b.parts.OIDCForm = true, req.GetRequestForm()
		return nil
	}
	return s.create(ctx, store.TokenOIDC, oidcKey(code), req, fosite.AuthorizeCode)
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
// Rows written by earlier versions are keyed by the code itself (codes
// live a minute, so only across an upgrade).
func (s *storage) GetOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) (fosite.Requester, error) {
	if parts, row, err := s.codePartsOf(ctx, s.codeSignature(ctx, code)); err != nil {
		return nil, err
	} else if parts != nil {
		if !parts.OIDC {
			return nil, openid.ErrNoSessionFound
		}
		// Read whether the code is redeemed already or not: fosite asks
		// after the redemption's commit, for the ID token.
		ar, err := s.decodeRow(ctx, row, req.GetSession())
		if err != nil {
			return nil, err
		}
		ar.Form = parts.OIDCForm
		return ar, nil
	}
	ar, err := s.get(ctx, store.TokenOIDC, oidcKey(code), req.GetSession(), fosite.ErrNotFound)
	if errors.Is(err, fosite.ErrNotFound) {
		ar, err = s.get(ctx, store.TokenOIDC, code, req.GetSession(), fosite.ErrNotFound)
	}
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *storage) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if parts, _, err := s.codePartsOf(ctx, s.codeSignature(ctx, code)); err != nil {
		return err
	} else if parts != nil {
		return nil // goes with the code's row
	}
	err := s.deleteRow(ctx, store.TokenOIDC, oidcKey(code))
	if errors.Is(err, fosite.ErrNotFound) {
		err = s.deleteRow(ctx, store.TokenOIDC, code) // an earlier version's row
	}
	return err
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *storage) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	if b := bundleOf(ctx); b.holds(signature, req) && !b.parts.PKCE {
		b.parts.PKCE, b.parts.PKCEForm = true, req.GetRequestForm()
		return nil
	}
	return s.create(ctx, store.TokenPKCE, signature, req, fosite.AuthorizeCode)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *storage) GetPKCERequestSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	if parts, row, err := s.codePartsOf(ctx, signature); err != nil {
		return nil, err
	} else if parts != nil {
		// A redeemed code's PKCE part is gone, as the row was.
		if !parts.PKCE || !row.Active {
			return nil, fosite.ErrNotFound
		}
		client, err := s.GetClient(ctx, row.ClientID)
		if err != nil {
			return nil, fosite.ErrNotFound
		}
		r := fosite.NewRequest()
		r.ID, r.RequestedAt, r.Client, r.Session, r.Form = row.RequestID, row.RequestedAt, client, sess, parts.PKCEForm
		return r, nil
	}
	ar, err := s.get(ctx, store.TokenPKCE, signature, sess, fosite.ErrNotFound)
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
//
// In a code exchange fosite deletes the PKCE row as soon as it has checked
// the verifier, in a write of its own before the redemption's transaction
// begins. The row is deleted in that transaction instead
// (InvalidateAuthorizeCodeSession): one write round per exchange instead
// of two, and a redemption that fails leaves code and PKCE row together as
// they were. If the request ends before the redemption, finish deletes the
// row as fosite would have.
func (s *storage) DeletePKCERequestSession(ctx context.Context, signature string) error {
	if parts, _, err := s.codePartsOf(ctx, signature); err != nil {
		return err
	} else if parts != nil {
		return nil // goes with the code's redemption
	}
	if rs := stateOf(ctx); rs != nil && rs.tx == nil && rs.code != "" && s.transactional() {
		rs.pkce = append(rs.pkce, signature)
		return nil
	}
	return s.deleteRow(ctx, store.TokenPKCE, signature)
}

// deletePendingPKCE deletes the PKCE rows whose deletion the request
// deferred (DeletePKCERequestSession).
func (s *storage) deletePendingPKCE(ctx context.Context, rs *requestState) error {
	sigs := rs.pkce
	rs.pkce = nil
	for _, sig := range sigs {
		if err := s.deleteRow(ctx, store.TokenPKCE, sig); err != nil {
			return err
		}
	}
	return nil
}

// CreatePARSession stores a pushed authorization request (RFC 9126).
func (s *storage) CreatePARSession(ctx context.Context, requestURI string, req fosite.AuthorizeRequester) error {
	return s.create(ctx, store.TokenPAR, requestURI, req, fosite.PushedAuthorizeRequestContext)
}

// GetPARSession loads a pushed authorization request.
func (s *storage) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	ar, err := s.get(ctx, store.TokenPAR, requestURI, nil, fosite.ErrNotFound)
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// DeletePARSession makes a request_uri single-use.
func (s *storage) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteRow(ctx, store.TokenPAR, requestURI)
}
