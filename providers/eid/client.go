package eid

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers/eid/wsse"
)

// ErrReplayed: a signed answer of the eID-Server arrived a second time.
var ErrReplayed = errors.New("eid: the eID-Server's answer was seen before (replay)")

// Client speaks the SOAP eID-Interface to one eID-Server: every request
// signed, every answer's signature verified against the server's
// configured certificates and used once.
type Client struct {
	URL      string
	HTTP     *http.Client // mutually authenticated TLS
	Signer   *wsse.Signer
	Verifier *wsse.Verifier
	// Replay remembers the signature values of accepted answers (nil:
	// no check, for tests of the message layer only).
	Replay store.Replay
	Now    func() time.Time
}

// UseID starts an eID session (TR-03130-1 §3.2.1).
func (c *Client) UseID(ctx context.Context, req *UseIDRequest) (*UseIDResponse, error) {
	var resp UseIDResponse
	if err := c.call(ctx, ActionUseID, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// GetResult fetches the result of session with the given request counter
// (TR-03130-1 §3.2.2: the counter increases with every call).
func (c *Client) GetResult(ctx context.Context, session string, counter int) (*GetResultResponse, error) {
	var resp GetResultResponse
	req := &GetResultRequest{Session: Session{ID: session}, RequestCounter: counter}
	if err := c.call(ctx, ActionGetResult, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// GetServerInfo asks for the server's version and the rights of the
// configured authorization certificate (TR-03130-1 §3.2.3).
func (c *Client) GetServerInfo(ctx context.Context) (*GetServerInfoResponse, error) {
	var resp GetServerInfoResponse
	if err := c.call(ctx, ActionGetServerInfo, &GetServerInfoRequest{}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Envelope builds the signed request for action (exported for the
// conformance tests against the test bed's OUT_* messages).
func (c *Client) Envelope(req any) ([]byte, error) {
	el, err := Element(req)
	if err != nil {
		return nil, err
	}
	return c.Signer.Envelope(el)
}

func (c *Client) call(ctx context.Context, action string, req, resp any) error {
	body, err := c.Envelope(req)
	if err != nil {
		return fmt.Errorf("eid: build %s: %w", action, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "text/xml; charset=utf-8")
	hr.Header.Set("SOAPAction", strconv.Quote(action))
	res, err := c.HTTP.Do(hr)
	if err != nil {
		return fmt.Errorf("eid: %s: %w", action, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, wsse.MaxMessage+1))
	if err != nil {
		return fmt.Errorf("eid: %s: read answer: %w", action, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("eid: %s: HTTP %d", action, res.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "text/xml" {
		return fmt.Errorf("eid: %s: answer of type %q, want text/xml", action, mt)
	}
	v, err := c.Verifier.Verify(raw)
	if err != nil {
		return fmt.Errorf("eid: %s: %w", action, err)
	}
	if c.Replay != nil {
		now := time.Now()
		if c.Now != nil {
			now = c.Now()
		}
		// Kept for an hour: longer than any timestamp the verifier
		// accepts (Expires-Created ≤ 15 minutes, skew 2 minutes).
		exp := now.Add(time.Hour)
		sum := sha256.Sum256(v.SignatureValue)
		if err := c.Replay.Use(ctx, "eid.soap", hex.EncodeToString(sum[:]), exp); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%w (%s)", ErrReplayed, action)
			}
			return err
		}
	}
	if err := Decode(v.Canonical, resp); err != nil {
		return fmt.Errorf("eid: %s: %w", action, err)
	}
	return nil
}
