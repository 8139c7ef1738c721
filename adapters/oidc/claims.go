package oidc

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/trustbroker/trustbroker/broker/loa"
)

// scopeClaims maps the standard scopes to their claims (OIDC Core §5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile",
		"picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// claimScope returns the scope that releases a claim; claims outside the
// standard scopes (OIDC4IDA's place_of_birth, nationalities, ...) travel
// with profile.
func claimScope(claim string) string {
	for scope, names := range scopeClaims {
		if slices.Contains(names, claim) {
			return scope
		}
	}
	return "profile"
}

// claimsRequest is the parsed `claims` request parameter (OIDC Core §5.5).
type claimsRequest struct {
	// Names of every claim asked for in userinfo or id_token.
	Names []string
	// Essential ACR values from id_token.acr, if any.
	ACRValues []string
	// VerifiedClaims: verified_claims was asked for (OIDC4IDA §6).
	VerifiedClaims bool
}

// individualClaim is one member of the claims request.
type individualClaim struct {
	Essential bool     `json:"essential"`
	Value     *string  `json:"value"`
	Values    []string `json:"values"`
}

// maxClaimsParam bounds the claims parameter.
const maxClaimsParam = 16 << 10

// parseClaimsParam reads the claims parameter; an empty one is no request.
func parseClaimsParam(s string) (*claimsRequest, error) {
	cr := &claimsRequest{}
	if strings.TrimSpace(s) == "" {
		return cr, nil
	}
	if len(s) > maxClaimsParam {
		return nil, errors.New("the claims parameter is too large")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &top); err != nil {
		return nil, errors.New("the claims parameter is not a JSON object")
	}
	names := map[string]bool{}
	for _, section := range []string{"userinfo", "id_token"} {
		raw, ok := top[section]
		if !ok || string(raw) == "null" {
			continue
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, errors.New("claims." + section + " is not a JSON object")
		}
		for name, v := range members {
			if name == "verified_claims" {
				cr.VerifiedClaims = true
				continue
			}
			var ic individualClaim
			if string(v) != "null" {
				if err := json.Unmarshal(v, &ic); err != nil {
					return nil, errors.New("claims." + section + "." + name + " is malformed")
				}
			}
			if name == "acr" && section == "id_token" {
				if ic.Value != nil {
					cr.ACRValues = append(cr.ACRValues, *ic.Value)
				}
				cr.ACRValues = append(cr.ACRValues, ic.Values...)
				continue
			}
			names[name] = true
		}
	}
	for n := range names {
		cr.Names = append(cr.Names, n)
	}
	sort.Strings(cr.Names)
	return cr, nil
}

// requestedLoA is the level an authorization request asks for: the lowest
// recognised value of acr_values or of an id_token.acr claims request (any
// of them satisfies the client). Unrecognised values are ignored.
func requestedLoA(acrValues string, claimACRs []string) loa.Level {
	var best loa.Level = loa.High + 1
	for _, v := range append(strings.Fields(acrValues), claimACRs...) {
		if l, err := loa.Parse(v); err == nil && l < best {
			best = l
		}
	}
	if best > loa.High {
		return loa.None
	}
	return best
}

// requestedAttributes are the registered claims the request covers: by
// scope, or named in the claims parameter.
func requestedAttributes(registered []string, scopes []string, cr *claimsRequest) []string {
	out := []string{}
	for _, c := range registered {
		if slices.Contains(scopes, claimScope(c)) || slices.Contains(cr.Names, c) {
			out = append(out, c)
		}
	}
	return out
}
