package oidc

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/trustbroker/trustbroker/broker/store"
)

// One token request, one write transaction. fosite opens a transaction
// (storage.Transactional) around the writes of a code exchange and of a
// refresh-token rotation; the storage runs them in one store transaction
// instead of one commit per statement: on PostgreSQL one fsync'd commit
// instead of three to four, on SQLite one write-lock round and one WAL
// commit. Tokens are generated and signed before fosite begins (and ID
// tokens after it commits), so no signature is computed while the
// transaction holds locks.
//
// The state lives in the request context (requestState): the open
// transaction, what must happen after a rollback, and the rows read once
// per request: fosite reads the authorization code twice, and the OpenID
// Connect session of a code is read and deleted in the code's redemption
// transaction rather than in a commit of its own afterwards.

var _ fositestorage.Transactional = (*storage)(nil)

// beginner is a store that can begin a transaction whose end is a call
// (sqlstore.Store); other stores run every statement on its own.
type beginner interface {
	Begin(ctx context.Context) (store.Store, func(commit bool) error, error)
}

type requestStateKey struct{}

// requestState is the storage's state of one token request.
type requestState struct {
	tx  store.Store
	end func(commit bool) error
	// deferred: fosite began a transaction whose writes are recorded in
	// ops until Commit (see BeginTX).
	deferred bool
	ops      []deferredOp
	// encoded is the last request encoded in the deferred transaction
	// (storage.go, encoding).
	encoded *encoding
	// afterRollback runs, outside any transaction, when the transaction
	// is rolled back or abandoned: the family revocation of a refresh
	// token rotated concurrently must survive the rollback of the
	// request that found out.
	afterRollback []func(ctx context.Context, st store.Store) error
	// rows holds the authorization code and OpenID Connect session rows
	// read in this request (rowKey), deleted those the code's redemption
	// removed in its transaction.
	rows    map[rowKey]*store.OAuthToken
	deleted map[rowKey]bool
	// code is the authorization code the request redeems, if any.
	code string
	// pkce are the PKCE rows (by signature) checked in this request whose
	// deletion waits for the code's redemption.
	pkce []string
	// bundle collects a new code's rows (codebundle.go); partsRow and
	// parts are the code row read in this request and what it carries.
	bundle   *codeBundle
	partsRow *store.OAuthToken
	parts    *codeParts
	// decodedRow, decodedSess and decoded: the code row decoded in this
	// request, the session it was decoded into, and its request fields
	// (storage.decodeRequest).
	decodedRow  *store.OAuthToken
	decodedSess fosite.Session
	decoded     storedRequest
}

type rowKey struct{ kind, signature string }

// withRequestState returns ctx carrying a fresh request state; finish
// must be called when the request is done.
func withRequestState(ctx context.Context) (context.Context, *requestState) {
	rs := &requestState{}
	return context.WithValue(ctx, requestStateKey{}, rs), rs
}

func stateOf(ctx context.Context) *requestState {
	rs, _ := ctx.Value(requestStateKey{}).(*requestState)
	return rs
}

// oauth is the OAuth store of ctx: the open transaction's, else the
// store's. A deferred transaction is begun now, its recorded writes run
// first (materialize).
func (s *storage) oauth(ctx context.Context) store.OAuth {
	rs := stateOf(ctx)
	if rs != nil && rs.deferred {
		if err := s.materialize(ctx, rs); err != nil {
			return failedOAuth{err}
		}
	}
	if rs != nil && rs.tx != nil {
		return rs.tx.OAuth()
	}
	return s.st.OAuth()
}

// A transaction fosite begins (BeginTX) is deferred: the writes of a code
// exchange and of a refresh-token rotation (the code's or the refresh
// token's compare-and-swap, the revocation of the grant's access tokens,
// the new token rows) are recorded, rows encoded, and run together at
// Commit: on SQLite one turn in the write queue that holds no JSON
// encoding and no fosite code between its statements (the turn is what
// every writer of the process waits for), on PostgreSQL a transaction that
// holds its row locks for the statements only. Any other store access
// inside the transaction begins it at once and runs what was recorded
// (materialize), so everything else behaves as before.
//
// A recorded compare-and-swap reports its failure at Commit instead of
// when fosite made the call; fosite maps both to the same answer: a code
// exchange answers server_error for a failed InvalidateAuthorizeCodeSession
// and for a failed commit alike, a rotation runs both errors through
// handleRefreshTokenEndpointStorageError (invalid_request for
// ErrInactiveToken). The rows fosite wrote after the failed swap are then
// never written; the family revocation of a reused refresh token runs
// after the rollback as before.

// deferredOp is one recorded write.
type deferredOp struct {
	w store.OAuthWrite
	// notFound, for a compare-and-swap, is the error the synchronous call
	// would have returned to fosite when the swap finds no active token
	// (it may queue work for after the rollback); nil: the store's error.
	notFound func() error
}

// fail returns the error fosite gets for the write's failure err.
func (op deferredOp) fail(err error) error {
	if op.notFound != nil && errors.Is(err, store.ErrNotFound) {
		return op.notFound()
	}
	return err
}

// deferredOf returns the request state when a deferred transaction is
// open and still recording.
func deferredOf(ctx context.Context) *requestState {
	if rs := stateOf(ctx); rs != nil && rs.deferred {
		return rs
	}
	return nil
}

// record appends a write to the deferred transaction.
func (rs *requestState) record(op deferredOp) { rs.ops = append(rs.ops, op) }

// materialize begins the deferred transaction and runs its recorded
// writes. On an error of one of them the transaction is rolled back (the
// queued after-rollback work runs) and the error returned.
func (s *storage) materialize(ctx context.Context, rs *requestState) error {
	rs.deferred, rs.encoded = false, nil
	ops := rs.ops
	rs.ops = nil
	tx, end, err := s.st.(beginner).Begin(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if err := op.w.Apply(ctx, tx.OAuth()); err != nil {
			return errors.Join(op.fail(err), end(false), s.runAfterRollback(ctx, rs))
		}
	}
	rs.tx, rs.end = tx, end
	return nil
}

// failedOAuth answers every call with the error that ended a deferred
// transaction's materialization.
type failedOAuth struct{ err error }

func (f failedOAuth) CreateToken(context.Context, *store.OAuthToken) error { return f.err }
func (f failedOAuth) GetToken(context.Context, string, string) (*store.OAuthToken, error) {
	return nil, f.err
}
func (f failedOAuth) DeleteToken(context.Context, string, string) error     { return f.err }
func (f failedOAuth) DeactivateToken(context.Context, string, string) error { return f.err }
func (f failedOAuth) RevokeByRequestID(context.Context, string, string) (int64, error) {
	return 0, f.err
}
func (f failedOAuth) RevokeBySubject(context.Context, string, string, string) (int64, error) {
	return 0, f.err
}
func (f failedOAuth) Use(context.Context, string, string, time.Time) error { return f.err }

// BeginTX implements storage.Transactional: the transaction is deferred
// (see above).
func (s *storage) BeginTX(ctx context.Context) (context.Context, error) {
	if _, ok := s.st.(beginner); !ok {
		return ctx, nil
	}
	rs := stateOf(ctx)
	if rs == nil {
		ctx, rs = withRequestState(ctx)
	}
	if rs.tx != nil || rs.deferred {
		return ctx, errors.New("oidc: a storage transaction is open already")
	}
	rs.deferred, rs.encoded = true, nil
	return ctx, nil
}

// Commit implements storage.Transactional.
func (s *storage) Commit(ctx context.Context) error {
	rs := stateOf(ctx)
	if rs == nil {
		return nil
	}
	if rs.deferred {
		if len(rs.ops) == 0 {
			rs.deferred, rs.encoded = false, nil
			return nil
		}
		if b, ok := s.st.(store.OAuthBatch); ok {
			return s.commitBatch(ctx, rs, b)
		}
		if err := s.materialize(ctx, rs); err != nil {
			return err
		}
	}
	if rs.tx == nil {
		return nil
	}
	end := rs.end
	rs.tx, rs.end = nil, nil
	if err := end(true); err != nil {
		return errors.Join(err, s.runAfterRollback(ctx, rs))
	}
	rs.afterRollback = nil
	return nil
}

// commitBatch ends a deferred transaction that nothing materialized: its
// writes go to the store as one batch (store.OAuthBatch; on PostgreSQL
// one round trip instead of six). A failed write fails the batch as a
// failed statement failed the transaction: nothing written, the write's
// error to fosite, the after-rollback work run.
func (s *storage) commitBatch(ctx context.Context, rs *requestState, b store.OAuthBatch) error {
	ops := rs.ops
	rs.deferred, rs.encoded, rs.ops = false, nil, nil
	ws := make([]store.OAuthWrite, len(ops))
	for i, op := range ops {
		ws[i] = op.w
	}
	err := b.WriteOAuth(ctx, ws)
	if err == nil {
		rs.afterRollback = nil
		return nil
	}
	if be, ok := errors.AsType[*store.OAuthBatchError](err); ok && be.Index < len(ops) {
		err = ops[be.Index].fail(err)
	}
	return errors.Join(err, s.runAfterRollback(ctx, rs))
}

// Rollback implements storage.Transactional.
func (s *storage) Rollback(ctx context.Context) error {
	rs := stateOf(ctx)
	if rs == nil {
		return nil
	}
	rs.deferred, rs.ops, rs.encoded = false, nil, nil
	var err error
	if rs.tx != nil {
		end := rs.end
		rs.tx, rs.end = nil, nil
		err = end(false)
	}
	return errors.Join(err, s.runAfterRollback(ctx, rs))
}

// finish ends what a request left open (a handler that returned between
// BeginTX and Commit without rolling back): rolled back, so the write
// lock of SQLite is never held past the request.
//
// PKCE rows whose deletion waited for a redemption that never came are
// deleted now, as fosite would have deleted them.
func (s *storage) finish(ctx context.Context, rs *requestState) error {
	if rs.tx == nil && !rs.deferred && len(rs.afterRollback) == 0 && len(rs.pkce) == 0 {
		return nil
	}
	ctx = context.WithValue(context.WithoutCancel(ctx), requestStateKey{}, rs)
	err := s.Rollback(ctx)
	return errors.Join(err, s.deletePendingPKCE(ctx, rs))
}

// transactional reports whether the store runs BeginTX's transactions.
func (s *storage) transactional() bool {
	_, ok := s.st.(beginner)
	return ok
}

func (s *storage) runAfterRollback(ctx context.Context, rs *requestState) error {
	fns := rs.afterRollback
	rs.afterRollback = nil
	var errs []error
	for _, fn := range fns {
		errs = append(errs, fn(context.WithoutCancel(ctx), s.st))
	}
	return errors.Join(errs...)
}

// gatedHandler asks a token endpoint handler whether the request is its
// own before calling it. fosite calls every handler's
// PopulateTokenEndpointResponse, and each one not responsible answers
// with an error carrying a captured stack trace (errorsx.WithStack), which
// cost about a tenth of the CPU of a client_credentials request. Every
// fosite handler begins both methods with its CanHandleTokenEndpointRequest
// check, so the gate changes nothing else.
type gatedHandler struct{ fosite.TokenEndpointHandler }

func (g gatedHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return g.TokenEndpointHandler.HandleTokenEndpointRequest(ctx, r)
}

func (g gatedHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return g.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, resp)
}

func gate(hs ...fosite.TokenEndpointHandler) fosite.TokenEndpointHandlers {
	out := make(fosite.TokenEndpointHandlers, len(hs))
	for i, h := range hs {
		out[i] = gatedHandler{h}
	}
	return out
}
