// Package api is erasure's HTTP JSON API: intake of erasure requests, their status, operator
// actions, acknowledgements of async datasets, the registry with its health, the audit trail,
// probes and metrics. It acts only through the erasure.Service interface, and serves the
// record store (a records.Service) through RecordsHandler, mounted under /v1/records/.
//
// Every route but the probes and /metrics needs a bearer token (Token, from the configuration)
// holding the route's role:
//
//	POST /v1/requests                 submit   201 new request, 200 same Idempotency-Key and body, 409 other body
//	POST /v1/requests:batch           submit   200 with a result per submission (see batch.go)
//	GET  /v1/requests                 read     ?status=&overdue=true&dataset=&identifier=TYPE:VALUE&cursor=&limit= (1..500, default 100)
//	                                           identifier finds requests by the keyed hash of the value, ended ones too;
//	                                           dataset, the requests with an unfinished task on the dataset;
//	                                           canary=true lists canaries
//	GET  /v1/requests/{id}/certificate read    the signed erasure certificate of a completed request (409 otherwise):
//	                                           see CertificateRoutes
//	GET  /v1/certificates/key         none     the public key certificates are signed with
//	GET  /v1/requests/{id}            read
//	POST /v1/requests/{id}/cancel     operate  409 when already ended; submit: its submitter's withdrawal during
//	                                           the grace window (403 for another, 409 once the window ended)
//	POST /v1/requests/{id}/retry      operate  409 when nothing failed; {"force":true} lifts tripped guards
//	POST /v1/tasks/{id}/ack           ack:DATASET of the task's dataset (or ack:*)
//	GET  /v1/datasets                 read
//	GET  /v1/datasets/{name}          read
//	GET  /v1/audit                    read     ?request=&after=&limit= (1..10000, default 1000)
//	GET  /v1/audit/verify             read     the whole chain, with the deployment's key (AuditRoutes adds checkpoints)
//	GET  /healthz  /readyz  /metrics  none     liveness, readiness (Service.Ready: the store takes a write), Prometheus
//	/v1/records/…                     read, write, operate: see RecordsHandler
//	/v1/holds, /v1/suppressions…, /v1/retention/…, /v1/replays/…: see PolicyRoutes
//	/v1/sweeps/…                      read, operate: see SweepRoutes
//	/v1/webhooks/deliveries…          read, operate: see OutboxRoutes
//	GET  /v1/requests:resolve         read     ?prefix=: see ResolveRoutes
//
// operate implies read. Responses never hold a subject's identifiers in clear, not even while
// a request is open: a request shows its subject as keyed hashes (subject_hashes). Whoever
// submitted an identifier knows it; whoever reads the API later needs only to match it.
//
// Bad input changes nothing and gets {"error":{"code":"...","message":"..."}}: bodies larger
// than the limit 413, bodies not declared application/json 415, malformed JSON, unknown fields,
// trailing data, invalid identifiers, reasons or query parameters 400. Unknown query parameters
// are errors too, so that a misspelt filter is not silently ignored.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"erasure"
)

// Config is what New needs.
type Config struct {
	// Service is what the API acts on. Required.
	Service erasure.Service
	// Tokens are the bearer tokens and their roles.
	Tokens []Token
	// MaxBodyBytes limits request bodies; zero means DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Metrics is the registry the API registers its collectors with and serves at /metrics;
	// nil means a registry of its own, with the Go and process collectors.
	Metrics *prometheus.Registry
	// Records, when set, serves /v1/records/ (it authorizes with Server.Authorize itself);
	// cmd/erasure mounts RecordsHandler(store, server.Authorize) with Mount instead, once the
	// Server exists.
	Records http.Handler
	// Extra are further routes, by ServeMux pattern (such as "GET /ui/").
	Extra map[string]http.Handler
	// Now is the clock used to refuse deadlines in the past; nil means time.Now.
	Now func() time.Time
	// BodyTimeout is how long a request body may take to arrive once its headers have
	// (DefaultBodyTimeout when zero): a slow body is cut like a slow header, with 408.
	BodyTimeout time.Duration
}

// DefaultBodyTimeout is how long a request body may take to arrive when Config.BodyTimeout is
// zero: as long as the headers may (the server's ReadHeaderTimeout).
const DefaultBodyTimeout = 10 * time.Second

// Server serves the API. It is safe for concurrent use.
type Server struct {
	svc     erasure.Service
	tokens  []token
	limit   int64
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	mux     *http.ServeMux
	now     func() time.Time
	bodyTTL time.Duration
}

// New returns a Server for cfg. It panics when cfg.Service is nil or an Extra pattern is
// invalid or clashes with a route (programming errors, found at start).
func New(cfg Config) *Server {
	if cfg.Service == nil {
		panic("api: Config.Service is nil")
	}
	s := &Server{
		svc:     cfg.Service,
		tokens:  newTokens(cfg.Tokens),
		limit:   cfg.MaxBodyBytes,
		log:     cfg.Logger,
		reg:     cfg.Metrics,
		mux:     http.NewServeMux(),
		now:     cfg.Now,
		bodyTTL: cfg.BodyTimeout,
	}
	if s.bodyTTL <= 0 {
		s.bodyTTL = DefaultBodyTimeout
	}
	if s.limit <= 0 {
		s.limit = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "api")
	if s.now == nil {
		s.now = time.Now
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newMetrics(s.reg)

	m := s.mux
	m.HandleFunc("POST /v1/requests", s.submit)
	m.HandleFunc("POST /v1/requests:batch", s.submitBatch)
	m.HandleFunc("GET /v1/requests", s.requests)
	m.HandleFunc("GET /v1/requests/{id}", s.request)
	m.HandleFunc("POST /v1/requests/{id}/cancel", s.cancel)
	m.HandleFunc("POST /v1/requests/{id}/retry", s.retry)
	m.HandleFunc("POST /v1/tasks/{id}/ack", s.ack)
	m.HandleFunc("GET /v1/datasets", s.datasets)
	m.HandleFunc("GET /v1/datasets/{name}", s.dataset)
	m.HandleFunc("GET /v1/audit", s.audit)
	m.HandleFunc("GET /v1/audit/verify", s.auditVerify)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	m.HandleFunc("/v1/", s.notFound)
	if cfg.Records != nil {
		m.Handle("/v1/records/", cfg.Records)
	}
	for pattern, h := range cfg.Extra {
		m.Handle(pattern, h)
	}
	return s
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Mount adds a route after New, for handlers that need the Server (to Authorize) before they
// exist. It panics like http.ServeMux.Handle on an invalid or clashing pattern.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// MaxBodyBytes returns the body size limit in force.
func (s *Server) MaxBodyBytes() int64 { return s.limit }

var (
	requestIDPathRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	datasetNameRE   = regexp.MustCompile(`^[a-z0-9._-]{1,128}$`)
)

// notFound answers paths under /v1/ that no route serves: 405 when the path exists for
// another method, 404 otherwise, both as JSON errors.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" && p != "/v1/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteError(w, r, erasure.Errorf(EMETHOD, "%s is not allowed here: use %s", r.Method, strings.Join(allow, " or ")))
		return
	}
	WriteError(w, r, erasure.Errorf(erasure.ENOTFOUND, "no such route: %s %s", r.Method, truncate(r.URL.Path, 128)))
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	actor, err := s.Authorize(r, RoleSubmit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if err := validIdempotencyKey(key); err != nil {
		WriteError(w, r, err)
		return
	}
	if err := checkJSONType(r); err != nil {
		WriteError(w, r, err)
		return
	}
	if r.ContentLength > s.limit {
		WriteError(w, r, tooLarge(s.limit))
		return
	}
	sub, err := DecodeSubmission(r.Body, s.limit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if !sub.Deadline.IsZero() && !sub.Deadline.After(s.now()) {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "deadline %s is in the past", sub.Deadline.Format(time.RFC3339)))
		return
	}
	sub.IdempotencyKey, sub.Actor = key, actor
	req, created, err := s.svc.Submit(r.Context(), sub)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/requests/"+url.PathEscape(req.ID))
	}
	WriteJSON(w, status, req)
}

func validIdempotencyKey(key string) error {
	if len(key) > erasure.MaxIdempotencyKey {
		return erasure.Errorf(erasure.EINVALID, "Idempotency-Key is longer than %d bytes", erasure.MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return erasure.Errorf(erasure.EINVALID, "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

func (s *Server) request(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	id, err := pathRequestID(r)
	if err == nil {
		var req *erasure.Request
		if req, err = s.svc.Request(r.Context(), id); err == nil {
			WriteJSON(w, http.StatusOK, req)
			return
		}
	}
	WriteError(w, r, err)
}

func pathRequestID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !requestIDPathRE.MatchString(id) {
		return "", erasure.Errorf(erasure.EINVALID, "%q is not a valid request id", truncate(id, 64))
	}
	return id, nil
}

// query checks that q holds only the parameters allowed, each at most once.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "malformed query string")
	}
next:
	for k, v := range q {
		for _, a := range allowed {
			if k == a {
				if len(v) > 1 {
					return nil, erasure.Errorf(erasure.EINVALID, "query parameter %s is given more than once", a)
				}
				continue next
			}
		}
		return nil, erasure.Errorf(erasure.EINVALID, "unknown query parameter %q", truncate(k, 64))
	}
	return q, nil
}

func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, erasure.Errorf(erasure.EINVALID, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// Listing limits.
const (
	DefaultRequestsLimit = 100
	MaxRequestsLimit     = 500
	DefaultAuditLimit    = 1000
	MaxAuditLimit        = 10000
)

func (s *Server) requests(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "status", "overdue", "dataset", "identifier", "cursor", "limit", "canary")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f := erasure.RequestFilter{Status: erasure.RequestStatus(q.Get("status")), Dataset: q.Get("dataset"), Cursor: q.Get("cursor")}
	if f.Dataset != "" && !datasetNameRE.MatchString(f.Dataset) {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a valid dataset name", truncate(f.Dataset, 64)))
		return
	}
	if v := q.Get("canary"); v != "" {
		if f.Canary, err = strconv.ParseBool(v); err != nil {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "canary must be true or false"))
			return
		}
	}
	if v := q.Get("identifier"); v != "" {
		if f.Identifier, err = ParseIdentifier(v); err != nil {
			WriteError(w, r, err)
			return
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "status must be scheduled, pending, running, held, completed, failed or cancelled"))
		return
	}
	if v := q.Get("overdue"); v != "" {
		if f.Overdue, err = strconv.ParseBool(v); err != nil {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "overdue must be true or false"))
			return
		}
	}
	if len(f.Cursor) > 512 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "cursor is not valid"))
		return
	}
	limit, err := intParam(q, "limit", DefaultRequestsLimit, 1, MaxRequestsLimit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f.Limit = int(limit)
	page, err := s.svc.Requests(r.Context(), f)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if page.Requests == nil {
		page.Requests = []erasure.Request{}
	}
	WriteJSON(w, http.StatusOK, page)
}

// ParseIdentifier reads an identifier written TYPE:VALUE (the value may hold colons), as the
// identifier parameter of GET /v1/requests takes it. EINVALID without its value in the message.
func ParseIdentifier(v string) (*erasure.Identifier, error) {
	typ, value, ok := strings.Cut(v, ":")
	if !ok || value == "" || !erasure.ValidIdentifierType(typ) {
		// The message never repeats the input: it may be an identifier in clear.
		return nil, erasure.Errorf(erasure.EINVALID, "identifier must be TYPE:VALUE with a declared type, such as email:someone@example.org")
	}
	id := erasure.Identifier{Type: typ, Value: value}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	return &id, nil
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	// The channel that submitted a request may withdraw it during its grace window.
	if wd, ok := s.svc.(erasure.Withdrawer); ok {
		if _, err := s.Authorize(r, RoleOperate); erasure.ErrorCode(err) == erasure.EFORBIDDEN {
			if _, serr := s.Authorize(r, RoleSubmit); serr == nil {
				s.operateAs(w, r, RoleSubmit, wd.Withdraw)
				return
			}
		}
	}
	s.operate(w, r, s.svc.Cancel)
}

// RetryBody is the optional body of POST /v1/requests/{id}/retry: {"force": true} retries
// the tasks that stopped at their dataset's guard without it (erasure.RetryOptions).
type RetryBody struct {
	Force bool `json:"force"`
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	var o erasure.RetryOptions
	if r.ContentLength != 0 && r.Header.Get("Content-Type") != "" {
		var body RetryBody
		if err := DecodeJSON(r, s.limit, &body); err != nil {
			WriteError(w, r, err)
			return
		}
		o.OverrideGuard = body.Force
	}
	s.operate(w, r, func(ctx context.Context, id, actor string) (*erasure.Request, error) {
		return s.svc.Retry(ctx, id, actor, o)
	})
}

// operate runs an operator action (its body, if any, is the caller's to read first).
func (s *Server) operate(w http.ResponseWriter, r *http.Request, action func(ctx context.Context, id, actor string) (*erasure.Request, error)) {
	s.operateAs(w, r, RoleOperate, action)
}

// operateAs runs an action on a request for a token holding role.
func (s *Server) operateAs(w http.ResponseWriter, r *http.Request, role string, action func(ctx context.Context, id, actor string) (*erasure.Request, error)) {
	actor, err := s.Authorize(r, role)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	id, err := pathRequestID(r)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req, err := action(r.Context(), id, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, req)
}

// AckBody is the JSON body of POST /v1/tasks/{id}/ack.
type AckBody struct {
	// TaskID is optional, so that one acknowledgement document serves both ways (NATS and
	// HTTP); when present it must be the task of the path.
	TaskID *int64 `json:"task_id,omitempty"`
	// Dispatch is the dispatch id of the command acknowledged (required): an id that names no
	// dispatch of this deployment's task is answered as an unknown task (404).
	Dispatch string `json:"dispatch"`
	// Status is "done" or "failed".
	Status  erasure.AckStatus `json:"status"`
	Removed int64             `json:"removed"`
	// Error says why the owner could not erase (failed only).
	Error string `json:"error,omitempty"`
}

// MaxAckError is the longest error an acknowledgement may carry, in bytes.
const MaxAckError = 1024

func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	t, err := s.authenticate(r)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if !t.hasAny(RoleAck) {
		WriteError(w, r, erasure.Errorf(erasure.EFORBIDDEN, "token %q has no ack role", t.name))
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a valid task id", truncate(r.PathValue("id"), 32)))
		return
	}
	var body AckBody
	if err := DecodeJSON(r, s.limit, &body); err != nil {
		WriteError(w, r, err)
		return
	}
	switch {
	case body.TaskID != nil && *body.TaskID != id:
		err = erasure.Errorf(erasure.EINVALID, "task_id %d in the body is not task %d of the path", *body.TaskID, id)
	case body.Dispatch == "":
		err = erasure.Errorf(erasure.EINVALID, "dispatch is required: the dispatch id of the command acknowledged")
	case !erasure.ValidDispatchID(body.Dispatch):
		err = erasure.Errorf(erasure.EINVALID, "dispatch must be the command's dispatch id (%d hex digits)", erasure.DispatchIDLen)
	case body.Status != erasure.AckDone && body.Status != erasure.AckFailed:
		err = erasure.Errorf(erasure.EINVALID, `status must be "done" or "failed"`)
	case body.Removed < 0:
		err = erasure.Errorf(erasure.EINVALID, "removed must not be negative")
	case len(body.Error) > MaxAckError:
		err = erasure.Errorf(erasure.EINVALID, "error is longer than %d bytes", MaxAckError)
	case body.Status == erasure.AckFailed && body.Error == "":
		err = erasure.Errorf(erasure.EINVALID, "a failed acknowledgement needs an error saying why")
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	// A token that may not acknowledge the task's dataset gets the answer for a task that does
	// not exist: acknowledgers learn nothing of other datasets' tasks.
	task, err := s.svc.Task(r.Context(), id)
	if err == nil && !t.has(RoleAck+task.Dataset) {
		err = erasure.Errorf(erasure.ENOTFOUND, "task %d not found", id)
	}
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		err = erasure.Errorf(erasure.ENOTFOUND, "task %d not found", id)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	task, err = s.svc.Ack(r.Context(), task.Dataset, erasure.Ack{TaskID: id, Dispatch: body.Dispatch, Status: body.Status, Removed: body.Removed, Error: body.Error}, t.name)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, task)
}

func (s *Server) datasets(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	ds, err := s.svc.Datasets(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if ds == nil {
		ds = []erasure.DatasetInfo{}
	}
	WriteJSON(w, http.StatusOK, DatasetList{Datasets: ds})
}

// DatasetList is the body of GET /v1/datasets.
type DatasetList struct {
	Datasets []erasure.DatasetInfo `json:"datasets"`
}

func (s *Server) dataset(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	name := r.PathValue("name")
	if !datasetNameRE.MatchString(name) {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a valid dataset name", truncate(name, 64)))
		return
	}
	d, err := s.svc.Dataset(r.Context(), name)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, d)
}

// AuditPage is the body of GET /v1/audit. NextAfter, when set, is the `after` of the next page;
// it is absent on the last page.
type AuditPage struct {
	Events    []erasure.AuditEvent `json:"events"`
	NextAfter int64                `json:"next_after,omitempty"`
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "request", "after", "limit")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f := erasure.AuditFilter{RequestID: q.Get("request")}
	if f.RequestID != "" && !requestIDPathRE.MatchString(f.RequestID) {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a valid request id", truncate(f.RequestID, 64)))
		return
	}
	if f.After, err = intParam(q, "after", 0, 0, 1<<62); err != nil {
		WriteError(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", DefaultAuditLimit, 1, MaxAuditLimit)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	f.Limit = int(limit)
	evs, err := s.svc.Audit(r.Context(), f)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	page := AuditPage{Events: evs}
	if page.Events == nil {
		page.Events = []erasure.AuditEvent{}
	}
	if len(evs) == f.Limit {
		page.NextAfter = evs[len(evs)-1].Seq
	}
	WriteJSON(w, http.StatusOK, page)
}

// auditVerify answers GET /v1/audit/verify: the server verifies its whole trail with its key
// and says up to where it holds. A broken trail is a 200 with ok false: the verification ran.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	rep, err := s.svc.VerifyAudit(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		s.log.Warn("not ready", "error", err.Error())
		msg := "not ready"
		if e, ok := asError(err); ok && e.Code != erasure.EINTERNAL {
			msg += ": " + e.Message
		}
		WriteError(w, r, erasure.Errorf(erasure.EUNAVAILABLE, "%s", msg))
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
