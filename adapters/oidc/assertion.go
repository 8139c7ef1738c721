package oidc

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// precheckAssertion refuses a private_key_jwt client assertion (RFC 7523)
// whose exp has passed, with invalid_client: fosite v0.49 hands the JWT
// library's expiry error through unwrapped, which would surface as a 500.
// The signature is still checked by fosite; this reads only exp.
func (p *Provider) precheckAssertion(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body is malformed.")
	}
	a := r.PostForm.Get("client_assertion")
	if a == "" {
		return nil
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return fosite.ErrInvalidClient.WithHint("The client_assertion is not a compact JWS.")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fosite.ErrInvalidClient.WithHint("The client_assertion payload is not base64url.")
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil {
		return fosite.ErrInvalidClient.WithHint("The client_assertion has no exp claim.")
	}
	exp, err := c.Exp.Float64()
	if err != nil || time.Unix(int64(exp), 0).Before(p.o.Now()) {
		return fosite.ErrInvalidClient.WithHint("The client_assertion has expired.")
	}
	return nil
}
