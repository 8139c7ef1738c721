package oidc

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// orderedHMAC is fosite's HMAC token strategy with the row key of each
// token led by its issue time. fosite's opaque tokens are
// "ory_xx_<key>.<sig>", stored under <sig>, an HMAC: uniformly random, so
// every new token lands on a random leaf of the token table's primary
// key, and with SQLite every commit rewrote a random index page per token
// (the largest share of the pages a refresh rotation writes). Tokens are
// now "tb_xx_<T><key>.<sig>", T sixteen hex digits of the issue time in
// microseconds, stored under <T><sig>: new keys append to the index like
// a sequence does.
//
// T is not covered by the HMAC and need not be: it only chooses the row,
// and a token with another T names a row that does not exist. Validation
// is fosite's over "<key>.<sig>". Tokens issued before ("ory_xx_…") are
// validated and found as before.
type orderedHMAC struct {
	inner *oauth2.HMACSHAStrategy
	now   func() time.Time
}

var (
	_ oauth2.AccessTokenStrategy   = (*orderedHMAC)(nil)
	_ oauth2.RefreshTokenStrategy  = (*orderedHMAC)(nil)
	_ oauth2.AuthorizeCodeStrategy = (*orderedHMAC)(nil)
)

const orderedTimeLen = 16 // hex digits of a uint64

// issue makes a token of the part ("at", "rt", "ac") from fosite's
// unprefixed token and signature.
func (o *orderedHMAC) issue(part, token, sig string, err error) (string, string, error) {
	if err != nil {
		return "", "", err
	}
	var t [8]byte
	us := uint64(o.now().UnixMicro())
	for i := 7; i >= 0; i-- {
		t[i] = byte(us)
		us >>= 8
	}
	ts := hex.EncodeToString(t[:])
	return "tb_" + part + "_" + ts + token, ts + sig, nil
}

// split returns the time digits and fosite's token of an ordered token of
// part; ok is false for another form (a token issued before, or not
// ours).
func split(token, part string) (ts, rest string, ok bool) {
	p := "tb_" + part + "_"
	if !strings.HasPrefix(token, p) || len(token) < len(p)+orderedTimeLen {
		return "", "", false
	}
	ts, rest = token[len(p):len(p)+orderedTimeLen], token[len(p)+orderedTimeLen:]
	for i := 0; i < len(ts); i++ {
		if c := ts[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	return ts, rest, true
}

// signature is the row key of a token of part.
func (o *orderedHMAC) signature(token, part string, legacy func(string) string) string {
	if ts, rest, ok := split(token, part); ok {
		if sig := o.inner.Enigma.Signature(rest); sig != "" {
			return ts + sig
		}
		return ""
	}
	if strings.HasPrefix(token, "tb_") {
		return "" // ours, but malformed or of another part
	}
	return legacy(token)
}

func (o *orderedHMAC) AccessTokenSignature(ctx context.Context, token string) string {
	return o.signature(token, "at", func(t string) string { return o.inner.AccessTokenSignature(ctx, t) })
}

func (o *orderedHMAC) RefreshTokenSignature(ctx context.Context, token string) string {
	return o.signature(token, "rt", func(t string) string { return o.inner.RefreshTokenSignature(ctx, t) })
}

func (o *orderedHMAC) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return o.signature(token, "ac", func(t string) string { return o.inner.AuthorizeCodeSignature(ctx, t) })
}

func (o *orderedHMAC) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, s, err := o.inner.HMACSHAStrategyUnPrefixed.GenerateAccessToken(ctx, r)
	return o.issue("at", t, s, err)
}

func (o *orderedHMAC) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, s, err := o.inner.HMACSHAStrategyUnPrefixed.GenerateRefreshToken(ctx, r)
	return o.issue("rt", t, s, err)
}

func (o *orderedHMAC) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, s, err := o.inner.HMACSHAStrategyUnPrefixed.GenerateAuthorizeCode(ctx, r)
	return o.issue("ac", t, s, err)
}

// validate checks an ordered token with fosite's unprefixed strategy and
// any other with fosite's prefixed one.
func validate(token, part string, ordered, legacy func(string) error) error {
	if _, rest, ok := split(token, part); ok {
		return ordered(rest)
	}
	if strings.HasPrefix(token, "tb_") {
		return fosite.ErrTokenSignatureMismatch
	}
	return legacy(token)
}

func (o *orderedHMAC) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	return validate(token, "at",
		func(t string) error { return o.inner.HMACSHAStrategyUnPrefixed.ValidateAccessToken(ctx, r, t) },
		func(t string) error { return o.inner.ValidateAccessToken(ctx, r, t) })
}

func (o *orderedHMAC) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return validate(token, "rt",
		func(t string) error { return o.inner.HMACSHAStrategyUnPrefixed.ValidateRefreshToken(ctx, r, t) },
		func(t string) error { return o.inner.ValidateRefreshToken(ctx, r, t) })
}

func (o *orderedHMAC) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return validate(token, "ac",
		func(t string) error { return o.inner.HMACSHAStrategyUnPrefixed.ValidateAuthorizeCode(ctx, r, t) },
		func(t string) error { return o.inner.ValidateAuthorizeCode(ctx, r, t) })
}
