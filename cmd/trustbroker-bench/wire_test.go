package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestWireConnAgainstNetHTTP runs the bench client against net/http's
// server: fixed-length and chunked bodies, a POST with Basic auth, a
// server that closes the connection, and keep-alive reuse.
func TestWireConnAgainstNetHTTP(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fixed":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/chunked":
			w.(http.Flusher).Flush() // forces chunked coding
			io.WriteString(w, strings.Repeat("a", 3000))
			w.(http.Flusher).Flush()
			io.WriteString(w, "end")
		case "/post":
			user, pass, _ := r.BasicAuth()
			_ = r.ParseForm()
			fmt.Fprintf(w, "%s %s %s %s", r.Method, user, pass, r.PostForm.Get("grant_type"))
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	w := newWireConn(host)
	defer w.close()

	check := func(req []byte, wantStatus int, wantBody string) {
		t.Helper()
		status, body, err := w.roundTrip(req)
		if err != nil || status != wantStatus || string(body) != wantBody {
			t.Fatalf("got %d %q %v, want %d %q", status, body, err, wantStatus, wantBody)
		}
	}
	check(wireGet(host, "/fixed"), 200, "hello")
	check(wireGet(host, "/chunked"), 200, strings.Repeat("a", 3000)+"end")
	check(wirePost(host, "/post", "grant_type=client_credentials", "svc", "s3cret"), 200, "POST svc s3cret client_credentials")
	check(wireGet(host, "/empty"), 204, "")
	check(wireGet(host, "/fixed"), 200, "hello")
	if conns.Load() != 1 {
		t.Fatalf("%d connections for keep-alive requests, want 1", conns.Load())
	}
	check(wireGet(host, "/close"), 200, "bye")
	if w.c != nil {
		t.Fatal("connection kept after Connection: close")
	}
	check(wireGet(host, "/fixed"), 200, "hello")
	if conns.Load() != 2 {
		t.Fatalf("%d connections, want 2 after a close", conns.Load())
	}
	// The server closes an idle kept-alive connection: the request is
	// sent again on a new one.
	srv.CloseClientConnections()
	check(wireGet(host, "/fixed"), 200, "hello")
}

func TestReadResponseRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "EOF"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n", "bad status line"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"},
		{"short status", "HTTP/1.1 20\r\n", "bad status line"},
		{"header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", "bad header line"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "bad Content-Length"},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", "too large"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "unexpected EOF"},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n", "not followed by CRLF"},
		{"truncated headers", "HTTP/1.1 200 OK\r\nContent-Le", "header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReadResponseUntilClose(t *testing.T) {
	status, body, keep, err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.0 200 OK\r\n\r\nall of it")), nil)
	if err != nil || status != 200 || string(body) != "all of it" || keep {
		t.Fatalf("got %d %q keep=%v %v", status, body, keep, err)
	}
}

func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n")
	f.Add("HTTP/1.0 404 Not Found\r\n\r\nnope")
	f.Fuzz(func(t *testing.T, in string) {
		status, body, _, err := readResponse(bufio.NewReader(strings.NewReader(in)), nil)
		if err == nil && (status < 100 || status > 999 || len(body) > maxBody) {
			t.Fatalf("accepted status %d with %d bytes", status, len(body))
		}
	})
}
