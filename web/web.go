// Package web is erasure's operator dashboard, served under /ui/ next to the API.
//
// Pages are rendered on the server with html/template from templates embedded in the binary
// (embed.FS): there is no build step, and the little JavaScript there is (static/app.js) only
// confirms actions and refreshes the audit check. Every page reads the store through an index
// and pages by cursor (erasure.ReportStore, erasure.RequestFilter), so that it renders in about
// the same time with a thousand requests or a million (bench/dashboard measures it).
//
//	GET  /ui/                          overview: requests by status, overdue, backlog per dataset,
//	                                   completions and failures of the last 30 days, the audit check
//	GET  /ui/requests                  ?status=&overdue=1&dataset=&subject=HASH&cursor=
//	POST /ui/search                    type, value: redirects to /ui/requests?subject=<keyed hash>
//	GET  /ui/requests/{id}             a request: each task's timeline, its audit events, actions
//	POST /ui/requests/{id}/cancel      operate
//	POST /ui/requests/{id}/retry       operate
//	GET  /ui/requests/{id}/certificate the erasure certificate, for print; .json downloads it
//	GET  /ui/datasets                  each dataset's backlog, failures, oldest waiting, last sweep
//	GET  /ui/sweeps                    ?dataset=&cursor=
//	GET  /ui/records                   the record store's sources, live and deleted; POST
//	                                   /ui/records/dry-run (operate) reports what an archive would move
//	GET  /ui/audit                     how far the trail is verified; its blocks, newest first
//	GET  /ui/login · POST /ui/login · POST /ui/logout
//
// Sign-in is with an API token (configured in auth.tokens) holding the read role; the session
// is a signed cookie (see session.go). Roles apply as in the API: actions need operate. Every
// POST needs the session's CSRF token and a same-origin request.
//
// Identifiers are never shown in clear, nor put in a URL: a search is POSTed, and the results
// page names the subject by its keyed hash. Errors and notes of tasks are shown with any clear
// value of the request's subject masked.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/records"
)

//go:embed templates static
var assets embed.FS

// Auth authenticates tokens (api.Server implements it).
type Auth interface {
	// Authenticate returns the principal of a token secret; EUNAUTHORIZED.
	Authenticate(secret string) (*api.Principal, error)
	// PrincipalNamed returns the configured token named name.
	PrincipalNamed(name string) (*api.Principal, bool)
}

// Reports is what the dashboard reads beside the Service: the store's report queries and its
// count of overdue requests.
type Reports interface {
	erasure.ReportStore
	OverdueRequests(ctx context.Context) (int, error)
}

// SubjectHasher hashes an identifier as the store keeps it (pipeline.Service implements it).
type SubjectHasher interface {
	SubjectHash(id erasure.Identifier) (string, error)
}

// Config is what New needs. Service, Reports, Trail, Chain, Hasher, Auth and SessionKey are
// required.
type Config struct {
	Service erasure.Service
	Reports Reports
	// Trail and Chain verify the audit trail a little at a time (the audit page).
	Trail audit.Trail
	Chain erasure.AuditChain
	// Hasher computes the keyed hash of a searched identifier.
	Hasher SubjectHasher
	Auth   Auth
	// SessionKey signs the session cookies (at least 16 bytes); processes sharing it share
	// sessions.
	SessionKey []byte
	// Datasets are the registered datasets (their declarations; health comes from Reports).
	Datasets []*erasure.Dataset
	// Identifiers are the declared identifier types, offered by the search form.
	Identifiers []string
	// Certifier, when set, renders and serves certificates.
	Certifier erasure.Certifier
	// Records, when set, serves the record store's page.
	Records records.Service
	// SessionTTL is how long a session lasts (default 8h).
	SessionTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Handler serves the dashboard. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	key     []byte
	ttl     time.Duration
	auth    Auth
	log     *slog.Logger
	mux     *http.ServeMux
	pages   map[string]*template.Template
	checker *audit.Checker
}

// DefaultSessionTTL is how long a session lasts when Config.SessionTTL is zero.
const DefaultSessionTTL = 8 * time.Hour

// New returns the dashboard's handler, to be mounted at /ui/. EINVALID when a required part of
// cfg is missing.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Service == nil || cfg.Reports == nil || cfg.Trail == nil || cfg.Chain == nil || cfg.Hasher == nil || cfg.Auth == nil:
		return nil, erasure.Errorf(erasure.EINVALID, "web: Service, Reports, Trail, Chain, Hasher and Auth are required")
	case len(cfg.SessionKey) < 16:
		return nil, erasure.Errorf(erasure.EINVALID, "web: the session key must be at least 16 bytes")
	}
	h := &Handler{cfg: cfg, key: cfg.SessionKey, ttl: cfg.SessionTTL, auth: cfg.Auth, log: cfg.Logger, mux: http.NewServeMux(),
		checker: audit.NewChecker(cfg.Trail, cfg.Chain)}
	if h.ttl <= 0 {
		h.ttl = DefaultSessionTTL
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "web")
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(assets, "static")
	m := h.mux
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticFiles(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/login", h.loginPage)
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("POST /ui/logout", h.logout)
	m.HandleFunc("GET /ui/{$}", h.signedIn(h.overview))
	m.HandleFunc("GET /ui/requests", h.signedIn(h.requests))
	m.HandleFunc("POST /ui/search", h.signedIn(h.search))
	m.HandleFunc("GET /ui/requests/{id}", h.signedIn(h.request))
	m.HandleFunc("POST /ui/requests/{id}/cancel", h.signedIn(h.action("cancel", cfg.Service.Cancel)))
	m.HandleFunc("POST /ui/requests/{id}/retry", h.signedIn(h.action("retry", func(ctx context.Context, id, actor string) (*erasure.Request, error) {
		return cfg.Service.Retry(ctx, id, actor, erasure.RetryOptions{})
	})))
	m.HandleFunc("GET /ui/requests/{id}/certificate", h.signedIn(h.certificate))
	m.HandleFunc("GET /ui/requests/{id}/certificate.json", h.signedIn(h.certificateJSON))
	m.HandleFunc("GET /ui/datasets", h.signedIn(h.datasets))
	m.HandleFunc("GET /ui/sweeps", h.signedIn(h.sweeps))
	m.HandleFunc("GET /ui/records", h.signedIn(h.records))
	m.HandleFunc("POST /ui/records/dry-run", h.signedIn(h.archiveDryRun))
	m.HandleFunc("GET /ui/audit", h.signedIn(h.audit))
	m.HandleFunc("/ui/", h.notFound)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// staticFiles lets browsers keep the static files for a while.
func staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) now() time.Time {
	if h.cfg.Now != nil {
		return h.cfg.Now()
	}
	return time.Now()
}

// signedIn runs fn for a signed-in operator, and sends anyone else to the sign-in page (a POST
// without a session gets 401: its form cannot be replayed after signing in).
func (h *Handler) signedIn(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := h.session(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			h.fail(w, r, nil, erasure.Errorf(erasure.EUNAUTHORIZED, "you are not signed in (or your session expired): sign in again"))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := h.checkPost(r, s); err != nil {
				h.log.Warn("dashboard action refused", "actor", s.Name, "route", r.Pattern, "reason", "csrf")
				h.fail(w, r, s, err)
				return
			}
		}
		fn(w, r, s)
	}
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, h.session(r), erasure.Errorf(erasure.ENOTFOUND, "there is no such page"))
}

// fail renders an error page with the status of err's code; internal errors are logged and
// shown without their detail.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := erasure.ErrorCode(err)
	msg := erasure.ErrorMessage(err)
	if code == erasure.EINTERNAL || errors.Is(err, context.DeadlineExceeded) {
		h.log.Error("dashboard page failed", "route", r.Pattern, "error", err.Error())
		msg = "internal error: the server log has the detail"
	}
	h.render(w, r, api.StatusOf(code), "error", s, "Error", "", map[string]any{"Code": code, "Message": msg})
}

// view is what every template receives.
type view struct {
	Title      string
	Nav        string
	User       string
	CanOperate bool
	CSRF       string
	Now        time.Time
	Data       any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, s *session, title, nav string, data any) {
	t, ok := h.pages[page]
	if !ok {
		panic(fmt.Sprintf("web: no template %q", page))
	}
	v := view{Title: title, Nav: nav, Now: h.now().UTC(), Data: data}
	if s != nil {
		v.User, v.CanOperate, v.CSRF = s.Name, s.principal.Has(api.RoleOperate), s.CSRF
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		h.log.Error("dashboard template failed", "page", page, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}
