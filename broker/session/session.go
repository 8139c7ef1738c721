// Package session manages browser SSO sessions: a random token in an
// HttpOnly cookie, its SHA-256 in the store (a database dump yields no
// usable session), absolute lifetime and idle timeout.
package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/web"
)

// Manager creates, finds and ends SSO sessions.
type Manager struct {
	Store       store.Store
	Cookies     web.Cookies
	CookieName  string
	Lifetime    time.Duration
	IdleTimeout time.Duration
	Now         func() time.Time
	Rand        io.Reader
}

// ErrNoSession: the browser has no valid session.
var ErrNoSession = errors.New("session: none")

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Create stores s (ID, CreatedAt, ExpiresAt and LastSeenAt are set here)
// and sets the cookie.
func (m *Manager) Create(ctx context.Context, w http.ResponseWriter, s *store.Session) error {
	var raw [32]byte
	if _, err := io.ReadFull(m.Rand, raw[:]); err != nil {
		return fmt.Errorf("session: random: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	now := m.Now()
	s.ID = hashToken(tok)
	s.CreatedAt, s.LastSeenAt = now, now
	s.ExpiresAt = now.Add(m.Lifetime)
	if err := m.Store.Sessions().Create(ctx, s); err != nil {
		return err
	}
	m.Cookies.Set(w, m.CookieName, "/", tok, 0)
	return nil
}

// Current returns the valid session of the request. It refreshes the idle
// timer at most once a minute.
func (m *Manager) Current(ctx context.Context, r *http.Request) (*store.Session, error) {
	tok := m.Cookies.Get(r, m.CookieName, "/")
	if tok == "" {
		return nil, ErrNoSession
	}
	s, err := m.Store.Sessions().Get(ctx, hashToken(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := m.Now()
	if now.Sub(s.LastSeenAt) > m.IdleTimeout || !now.Before(s.ExpiresAt) {
		return nil, ErrNoSession
	}
	if now.Sub(s.LastSeenAt) > time.Minute {
		s, err = m.Store.Sessions().Update(ctx, s.ID, func(x *store.Session) error {
			x.LastSeenAt = now
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// End deletes the session of the request and clears the cookie.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	tok := m.Cookies.Get(r, m.CookieName, "/")
	m.Cookies.Clear(w, m.CookieName, "/")
	if tok == "" {
		return nil
	}
	err := m.Store.Sessions().Delete(ctx, hashToken(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
