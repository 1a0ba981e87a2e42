package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"erasure"
)

// reqInfo is what handlers tell the middleware about a request, for the log line.
type reqInfo struct {
	id       string
	actor    string
	code     string
	internal error
}

type infoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	i, _ := r.Context().Value(infoKey{}).(*reqInfo)
	return i
}

func asError(err error) (*erasure.Error, bool) {
	var e *erasure.Error
	ok := errors.As(err, &e)
	return e, ok
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "erasure", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served by the API, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "erasure", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	m.requests = register(reg, m.requests)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c, or returns the collector already registered under its name (several
// servers may share one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// limitBodyTime gives a request's body BodyTimeout to arrive, by a read deadline on its
// connection, lifted once the body has been read to its end (so that the connection's later
// reads, which watch for the client going away, are not cut).
func (s *Server) limitBodyTime(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.bodyTTL)); err != nil {
		return // a connection without deadlines (a test recorder): nothing to cut
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
}

// deadlineBody lifts the read deadline set for a body once it has been read.
type deadlineBody struct {
	io.ReadCloser
	lift   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.lift()
	}
	return n, err
}

// serve wraps the router: request id, recovery from panics, metrics and one log line per
// request. The log line carries the route pattern, never the path or query (a path may hold a
// request id, never an identifier, but patterns keep the cardinality bounded) nor the body.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{id: r.Header.Get("X-Request-Id")}
	if !requestIDRE.MatchString(info.id) {
		var b [8]byte
		rand.Read(b[:])
		info.id = hex.EncodeToString(b[:])
	}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	sw := &statusWriter{ResponseWriter: w}
	s.limitBodyTime(w, r)
	sw.Header().Set("X-Request-Id", info.id)

	func() {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				info.internal = errors.New("panic in handler")
				s.log.Error("panic serving request", "request_id", info.id, "route", r.Pattern, "panic", p)
				if sw.status == 0 {
					WriteError(sw, r, erasure.Errorf(erasure.EINTERNAL, "panic"))
				}
			}
		}()
		s.mux.ServeHTTP(sw, r)
	}()

	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
	s.metrics.duration.WithLabelValues(route, r.Method).Observe(d.Seconds())

	attrs := []any{
		"request_id", info.id, "method", r.Method, "route", route, "status", sw.status,
		"duration_ms", float64(d.Microseconds()) / 1000, "bytes", sw.bytes,
	}
	if info.actor != "" {
		attrs = append(attrs, "actor", info.actor)
	}
	if info.code != "" {
		attrs = append(attrs, "error_code", info.code)
	}
	switch {
	case sw.status >= 500:
		if info.internal != nil {
			attrs = append(attrs, "error", info.internal.Error())
		}
		s.log.Error("http request", attrs...)
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		s.log.Debug("http request", attrs...)
	default:
		s.log.Info("http request", attrs...)
	}
}
