package dpop

import "testing"

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://op.example.test/token", "https://op.example.test/token"},
		{"HTTPS://OP.Example.TEST/token", "https://op.example.test/token"},
		{"https://op.example.test:443/token", "https://op.example.test/token"},
		{"http://op.example.test:80/token", "http://op.example.test/token"},
		{"https://op.example.test:80/token", "https://op.example.test:80/token"},
		{"https://op.example.test:08443/token", "https://op.example.test:8443/token"},
		{"https://op.example.test:/token", "https://op.example.test/token"},
		{"https://op.example.test", "https://op.example.test/"},
		{"https://op.example.test/token?a=b&c#frag", "https://op.example.test/token"},
		{"https://op.example.test/a/./b/../token", "https://op.example.test/a/token"},
		{"https://op.example.test/../token", "https://op.example.test/token"},
		{"https://op.example.test/%7e%41%2f%2e%2E/x", "https://op.example.test/~A%2F../x"},
		{"https://op.example.test/a/%2e%2e/token", "https://op.example.test/token"},
		{"https://op.example.test/a%2fb", "https://op.example.test/a%2Fb"},
		{"https://op.example.test//token", "https://op.example.test//token"},
		{"https://op.example.test/token/", "https://op.example.test/token/"},
		{"https://[2001:DB8::1]:443/t", "https://[2001:db8::1]/t"},
		{"https://127.0.0.1:8443/t", "https://127.0.0.1:8443/t"},
	}
	for _, tt := range tests {
		if got, err := normalizeURL(tt.in); err != nil || got != tt.want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		"", "/token", "op.example.test/token", "ftp://op.example.test/", "https:opaque",
		"https://user:pw@op.example.test/", "https://op.example.test:99999/", "https://op.example.test:0/",
		"https://op example.test/", "https://ex\u00e4mple.test/", "https://[fe80::1%25eth0]/", "https:///path",
		"https://op.example.test/%zz", "https://op.example.test/" + string(make([]byte, maxURLLen)),
	} {
		if got, err := normalizeURL(bad); err == nil {
			t.Errorf("normalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}
