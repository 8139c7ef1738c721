package oidc

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/trustbroker/trustbroker/broker/loa"
)

// buildDiscovery serialises the provider metadata once (OpenID Connect
// Discovery 1.0 §3, RFC 8414, RFC 9126, RFC 9207, OIDC4IDA §8). It lists
// exactly what is implemented.
func (p *Provider) buildDiscovery() ([]byte, error) {
	iss := p.o.Issuer
	claims := []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid"}
	for _, names := range scopeClaims {
		claims = append(claims, names...)
	}
	for _, c := range p.clients {
		for _, cl := range c.RP.Claims {
			if !slices.Contains(claims, cl.Name) {
				claims = append(claims, cl.Name)
			}
		}
	}
	slices.Sort(claims)
	m := map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + PathAuthorize,
		"token_endpoint":                                   iss + PathToken,
		"userinfo_endpoint":                                iss + PathUserinfo,
		"jwks_uri":                                         iss + PathJWKS,
		"revocation_endpoint":                              iss + PathRevoke,
		"introspection_endpoint":                           iss + PathIntrospect,
		"pushed_authorization_request_endpoint":            iss + PathPAR,
		"end_session_endpoint":                             iss + PathLogout,
		"backchannel_logout_supported":                     true,
		"backchannel_logout_session_supported":             true,
		"frontchannel_logout_supported":                    true,
		"frontchannel_logout_session_supported":            true,
		"scopes_supported":                                 []string{"openid", "profile", "email", "address", "phone", "offline_access"},
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query", "form_post"},
		"grant_types_supported":                            []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":                          []string{"pairwise", "public"},
		"id_token_signing_alg_values_supported":            []string{"RS256", "ES256"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "ES256", "PS256"},
		"revocation_endpoint_auth_methods_supported":       []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"dpop_signing_alg_values_supported":                p.dpop.Algorithms(),
		"tls_client_certificate_bound_access_tokens":       true,
		"claims_supported":                                 claims,
		"claims_parameter_supported":                       true,
		"request_parameter_supported":                      false,
		"request_uri_parameter_supported":                  false,
		"require_request_uri_registration":                 false,
		"acr_values_supported":                             []string{loa.URILow, loa.URISubstantial, loa.URIHigh},
		"prompt_values_supported":                          []string{"none", "login", "consent", "select_account"},
		"ui_locales_supported":                             []string{"de", "en"},
		"claims_locales_supported":                         []string{"de", "en"},
		"authorization_response_iss_parameter_supported":   true,
		"require_pushed_authorization_requests":            false,
		"verified_claims_supported":                        true,
		"trust_frameworks_supported":                       []string{"eidas", "de_aml"},
		"evidence_supported":                               []string{"document", "electronic_record"},
		"claims_in_verified_claims_supported":              []string{"given_name", "family_name", "birthdate", "place_of_birth", "nationalities", "address", "birth_family_name"},
	}
	return json.Marshal(m)
}

func (p *Provider) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(p.discovery)
}
