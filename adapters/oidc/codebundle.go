package oidc

import (
	"context"
	"errors"
	"net/url"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"

	"github.com/trustbroker/trustbroker/broker/store"
)

// One row per authorization code. For a code, fosite's handlers store
// three rows (the code, the OpenID Connect request, the PKCE request), and
// a code exchange reads all three and deletes two. The three are sanitised
// copies of one authorization request with the same session; they differ
// only in their form. So the storage writes one row, the code's, carrying
// the other two as their forms (codeParts), and a code exchange reads that
// one row, already read for the code, and deletes nothing: redeeming the
// code deactivates the row, and with it the parts.
//
// Rows written before (separate OpenID Connect and PKCE rows) are still
// read and deleted as before; codes live a minute, so only across an
// upgrade.

// codeParts are the OpenID Connect and PKCE requests kept with a code.
type codeParts struct {
	OIDC     bool       `json:"oidc,omitempty"`
	OIDCForm url.Values `json:"oidc_form,omitempty"`
	PKCE     bool       `json:"pkce,omitempty"`
	PKCEForm url.Values `json:"pkce_form,omitempty"`
}

// codeBundle collects, during one authorization response, the rows fosite
// creates for the new code.
type codeBundle struct {
	sig   string
	req   fosite.Requester
	parts codeParts
}

func bundleOf(ctx context.Context) *codeBundle {
	if rs := stateOf(ctx); rs != nil {
		return rs.bundle
	}
	return nil
}

// holds reports whether req belongs with the code of the bundle: the
// same code, request and session (fosite passes sanitised copies of the
// one authorization request).
func (b *codeBundle) holds(sig string, req fosite.Requester) bool {
	return b != nil && b.req != nil && sig != "" && sig == b.sig &&
		req.GetID() == b.req.GetID() && req.GetSession() == b.req.GetSession()
}

// withCodeBundle returns ctx in which the storage collects a new code's
// rows; flushBundle writes them.
func withCodeBundle(ctx context.Context) (context.Context, *requestState) {
	ctx, rs := withRequestState(ctx)
	rs.bundle = &codeBundle{}
	return ctx, rs
}

// flushBundle writes the code collected in rs, as one row.
func (s *storage) flushBundle(ctx context.Context, rs *requestState) error {
	b := rs.bundle
	rs.bundle = nil
	if b == nil || b.req == nil {
		return nil
	}
	return s.createWith(ctx, store.TokenAuthorizeCode, b.sig, b.req, fosite.AuthorizeCode, &b.parts)
}

// codeSignature is the signature (row key) of an authorization code.
func (s *storage) codeSignature(ctx context.Context, code string) string {
	if s.codeSig == nil || code == "" {
		return ""
	}
	return s.codeSig(ctx, code)
}

// codePartsOf returns the parts the row of the code with signature sig
// carries, and the row; nil parts for a code without a row or with a row
// of the earlier layout. The row and its parts are read once per request.
func (s *storage) codePartsOf(ctx context.Context, sig string) (*codeParts, *store.OAuthToken, error) {
	if sig == "" {
		return nil, nil, nil
	}
	row, err := s.getRow(ctx, store.TokenAuthorizeCode, sig)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	rs := stateOf(ctx)
	if rs != nil && rs.partsRow == row {
		return rs.parts, row, nil
	}
	var v struct {
		Code *codeParts `json:"code_parts"`
	}
	if err := gojson.Unmarshal(row.Data, &v); err != nil {
		return nil, nil, errors.New("oidc: decode authorization code row")
	}
	if rs != nil {
		rs.partsRow, rs.parts = row, v.Code
	}
	return v.Code, row, nil
}
