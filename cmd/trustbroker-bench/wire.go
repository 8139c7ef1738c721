package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// wireConn is the load generator's HTTP/1.1 client: one keep-alive TCP
// connection, requests written as prepared bytes in one write, responses
// parsed just enough to find the status and the body. It exists because
// net/http's client cost 50–100 µs of CPU per request on the two cores the
// broker shares with it, so req/s measured the client as much as the
// server; this one costs a fraction of that (the bench prints the client's
// CPU per request). The connection is redialled after an error or a
// "Connection: close".
type wireConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	body []byte
}

func newWireConn(addr string) *wireConn {
	return &wireConn{addr: addr}
}

// roundTrip sends one request and returns the status and the body; the
// body is valid until the next call.
func (w *wireConn) roundTrip(req []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		status, body, err := w.try(req)
		if err == nil || attempt == 1 || !errors.Is(err, errStale) {
			return status, body, err
		}
	}
}

// errStale marks a failure on a kept-alive connection the server may have
// closed in between: the request is sent once more on a new connection.
var errStale = errors.New("stale connection")

func (w *wireConn) try(req []byte) (int, []byte, error) {
	fresh := false
	if w.c == nil {
		c, err := net.DialTimeout("tcp", w.addr, 10*time.Second)
		if err != nil {
			return 0, nil, err
		}
		w.c, fresh = c, true
		if w.r == nil {
			w.r = bufio.NewReaderSize(c, 16<<10)
		} else {
			w.r.Reset(c)
		}
	}
	_ = w.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.c.Write(req); err != nil {
		w.close()
		if !fresh {
			err = fmt.Errorf("%w: %v", errStale, err)
		}
		return 0, nil, err
	}
	status, body, keep, err := readResponse(w.r, w.body[:0])
	if err != nil {
		w.close()
		if !fresh && status == 0 && errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %v", errStale, err)
		}
		return 0, nil, err
	}
	w.body = body
	if !keep {
		w.close()
	}
	return status, body, nil
}

func (w *wireConn) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

// maxBody bounds a response body the bench accepts.
const maxBody = 1 << 20

// readResponse reads one HTTP/1.1 response (RFC 9112): status line,
// header fields, then a body delimited by Content-Length or chunked
// transfer coding. It appends the body to buf. keep is false when the
// server closes the connection after this response.
func readResponse(r *bufio.Reader, buf []byte) (status int, body []byte, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, fmt.Errorf("bad status line %q", trimCRLF(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return 0, nil, false, fmt.Errorf("bad status line %q", trimCRLF(line))
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return status, nil, false, fmt.Errorf("header: %w", err)
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return status, nil, false, fmt.Errorf("bad header line %q", line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return status, nil, false, fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return status, nil, false, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		if length >= 0 {
			return status, nil, false, errors.New("both Content-Length and chunked")
		}
		body, err = readChunked(r, buf)
	case length >= 0:
		if length > maxBody {
			return status, nil, false, fmt.Errorf("body of %d bytes is too large", length)
		}
		body = grow(buf, length)
		_, err = io.ReadFull(r, body[len(buf):])
	case status == 204 || status == 304 || status < 200:
		body = buf
	default:
		// Delimited by the end of the connection.
		body, err = readAll(r, buf)
		keep = false
	}
	if err != nil {
		return status, nil, false, fmt.Errorf("body: %w", err)
	}
	return status, body, keep, nil
}

func readChunked(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			// Trailer fields, then the final CRLF.
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return nil, err
				}
				if len(trimCRLF(line)) == 0 {
					return buf, nil
				}
			}
		}
		if len(buf)+int(n) > maxBody {
			return nil, errors.New("chunked body is too large")
		}
		start := len(buf)
		buf = grow(buf, int(n))
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, err
		}
		var crlf [2]byte
		if _, err := io.ReadFull(r, crlf[:]); err != nil {
			return nil, err
		}
		if crlf != [2]byte{'\r', '\n'} {
			return nil, errors.New("chunk not followed by CRLF")
		}
	}
}

func readAll(r *bufio.Reader, buf []byte) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errors.New("body is too large")
	}
	return append(buf, b...), nil
}

// grow extends buf by n bytes.
func grow(buf []byte, n int) []byte {
	if cap(buf)-len(buf) < n {
		nb := make([]byte, len(buf), len(buf)+n)
		copy(nb, buf)
		buf = nb
	}
	return buf[:len(buf)+n]
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// wireGet is a GET request for path on host.
func wireGet(host, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: trustbroker-bench\r\n\r\n")
}

// wirePost is a form POST with HTTP Basic client authentication.
func wirePost(host, path, form, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return []byte("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: trustbroker-bench\r\n" +
		"Authorization: Basic " + auth + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + strconv.Itoa(len(form)) + "\r\n\r\n" + form)
}
