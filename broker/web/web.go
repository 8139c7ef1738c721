// Package web is the broker's HTTP plumbing: request ids, client IP behind
// trusted proxies, access logs, security headers, panic recovery, metrics,
// cookies and CSRF tokens. Handlers of the protocol packages run inside it.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyClientIP
)

// RequestID returns the id of the request in ctx ("" outside a request).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// ClientIP returns the client address of the request in ctx, after trusted
// proxies were taken into account.
func ClientIP(ctx context.Context) string {
	s, _ := ctx.Value(keyClientIP).(string)
	return s
}

// Options configure the middleware chain.
type Options struct {
	Logger *slog.Logger
	// TLS: send HSTS.
	TLS bool
	// TrustedProxies: X-Forwarded-For is read only from these peers.
	TrustedProxies []*net.IPNet
	Metrics        *Metrics
}

// Wrap puts h inside the middleware chain: recovery, request id, client IP,
// security headers, access log and metrics.
func Wrap(h http.Handler, o Options) http.Handler {
	return &chain{next: h, o: o}
}

type chain struct {
	next http.Handler
	o    Options
}

func (c *chain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := newRequestID()
	ip := clientIP(r, c.o.TrustedProxies)
	ctx := context.WithValue(context.WithValue(r.Context(), keyRequestID, id), keyClientIP, ip)
	r = r.WithContext(ctx)
	sw := &statusWriter{ResponseWriter: w}
	setSecurityHeaders(sw.Header(), c.o.TLS)
	sw.Header()["X-Request-Id"] = []string{id}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			c.o.Logger.LogAttrs(ctx, slog.LevelError, "panic in handler",
				slog.String("request_id", id), slog.String("panic", fmt.Sprint(p)))
			if !sw.wrote {
				http.Error(sw, "internal error, request id "+id, http.StatusInternalServerError)
			}
		}
		c.finish(r, sw, start)
	}()
	c.next.ServeHTTP(sw, r)
}

func (c *chain) finish(r *http.Request, sw *statusWriter, start time.Time) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	d := time.Since(start)
	if c.o.Metrics != nil {
		c.o.Metrics.observe(route, status, d)
	}
	if !c.o.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	// The path only: query strings may carry codes and tokens.
	c.o.Logger.LogAttrs(r.Context(), slog.LevelInfo, "http",
		slog.String("request_id", RequestID(r.Context())),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", sw.bytes),
		slog.Duration("duration", d),
		slog.String("client_ip", ClientIP(r.Context())))
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For entry that is not a trusted proxy (RFC 9700
// §4.13: forwarded headers only from configured proxies).
func clientIP(r *http.Request, trusted []*net.IPNet) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !inNets(host, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if net.ParseIP(h) == nil {
			break
		}
		if !inNets(h, trusted) {
			return h
		}
	}
	return host
}

func inNets(host string, nets []*net.IPNet) bool {
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// ContentSecurityPolicy is sent on every response: scripts and styles only
// from the broker itself, no framing (RFC 9700 §4.16).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders are the canonical names and values setSecurityHeaders
// sends; HSTS is last (TLS only).
var securityHeaders = [...][2]string{
	{"Content-Security-Policy", ContentSecurityPolicy},
	{"X-Frame-Options", "DENY"},
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"},
	{"Strict-Transport-Security", "max-age=31536000; includeSubDomains"},
}

// setSecurityHeaders sets the security headers with one allocation for
// all values (the names are canonical already; each value slice is capped
// at its length, so a later Add never writes into its neighbour).
func setSecurityHeaders(h http.Header, tls bool) {
	n := len(securityHeaders)
	if !tls {
		n--
	}
	vals := make([]string, n)
	for i := range n {
		vals[i] = securityHeaders[i][1]
		h[securityHeaders[i][0]] = vals[i : i+1 : i+1]
	}
}

// NoStore marks a response as not cacheable (login, consent, tokens).
func NoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Metrics are the HTTP metrics exported at /metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series caches the children of the vectors per route and status:
	// looking them up hashes the label values on every request.
	series sync.Map // seriesKey -> *series
}

type seriesKey struct {
	route  string
	status int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustbroker_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "trustbroker_http_request_duration_seconds", Help: "HTTP request duration by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *Metrics) observe(route string, status int, d time.Duration) {
	k := seriesKey{route, status}
	v, ok := m.series.Load(k)
	if !ok {
		// Routes are the mux's patterns (plus "unmatched") and statuses
		// are few, so the cache stays small.
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		})
	}
	sr := v.(*series)
	sr.requests.Inc()
	sr.duration.Observe(d.Seconds())
}
