package oidc

import (
	"net/http"
	"net/url"
)

// corsOrigins are the origins of public clients' redirect URIs: browser
// applications that call the token, userinfo and revocation endpoints
// themselves (OAuth 2.0 for Browser-Based Apps).
func corsOrigins(clients map[string]*Client) map[string]bool {
	out := map[string]bool{}
	for _, c := range clients {
		if !c.IsPublic() {
			continue
		}
		for _, r := range c.GetRedirectURIs() {
			if u, err := url.Parse(r); err == nil && u.Host != "" {
				out[u.Scheme+"://"+u.Host] = true
			}
		}
	}
	return out
}

// cors answers preflights and adds CORS headers for registered origins;
// other origins get no CORS headers, so browsers keep their responses from
// scripts.
func (p *Provider) cors(methods string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && p.origins[origin] {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", methods)
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r)
	}
}
