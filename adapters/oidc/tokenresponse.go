package oidc

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/ory/fosite"
)

// Header values of a token response (RFC 6749 §5.1), shared: assigning a
// prepared slice costs no allocation, Header.Set costs one per field.
var (
	headerNoStore = []string{"no-store"}
	headerNoCache = []string{"no-cache"}
	headerJSON    = []string{"application/json;charset=UTF-8"}
)

// writeAccessResponse writes a successful token response with exactly the
// header fields and bytes fosite's WriteAccessResponse writes (the
// parameters as one JSON object, keys sorted as encoding/json sorts a
// map), without encoding/json's reflection over the map when every value
// is a plain ASCII string or an integer, which token responses are.
func writeAccessResponse(w http.ResponseWriter, resp fosite.AccessResponder) {
	m := resp.ToMap()
	body, ok := appendTokenJSON(make([]byte, 0, tokenJSONSize(m)), m)
	if !ok {
		var err error
		if body, err = json.Marshal(m); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	writeTokenBody(w, body)
}

// writeTokenBody writes a successful token response's header fields and
// body.
func writeTokenBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Cache-Control"] = headerNoStore
	h["Pragma"] = headerNoCache
	h["Content-Type"] = headerJSON
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// appendTokenJSON appends m as encoding/json would marshal it; false when
// a value is of another type or a string needs escaping (the caller then
// uses encoding/json itself).
func appendTokenJSON(b []byte, m map[string]any) ([]byte, bool) {
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		if !plainJSONString(k) {
			return nil, false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		switch v := m[k].(type) {
		case string:
			if !plainJSONString(v) {
				return nil, false
			}
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		default:
			return nil, false
		}
	}
	return append(b, '}'), true
}

// tokenJSONSize bounds the encoding of m when appendTokenJSON can encode
// it, so the body is allocated once.
func tokenJSONSize(m map[string]any) int {
	n := 2
	for k, v := range m {
		n += len(k) + 4 // "k": and a comma
		if s, ok := v.(string); ok {
			n += len(s) + 2
		} else {
			n += 20 // an integer
		}
	}
	return n
}

// plainJSONString reports whether encoding/json writes s unchanged between
// quotes: printable ASCII without '"', '\\' and the characters it escapes
// for HTML ('<', '>', '&').
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
