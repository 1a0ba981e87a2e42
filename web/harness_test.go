package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
	"erasure/records"
	"erasure/registry"
	"erasure/server"
)

// Tokens of the test estate.
const (
	operatorToken = "operator-secret-0123456789"
	viewerToken   = "viewer-secret-0123456789"
	intakeToken   = "intake-secret-0123456789"
)

// profiles is a dataset held in memory that refuses erasures (a permanent error) while
// refusing is set: a task fails, an operator retries it once the owner fixed their side.
type profiles struct {
	mu       sync.Mutex
	held     map[string]bool
	refusing *atomic.Bool
}

func (p *profiles) Close() error { return nil }

func (p *profiles) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	if p.refusing.Load() {
		return erasure.Outcome{}, erasure.Permanent(errors.New("profile store answered 403 Forbidden: the erasure role is missing"))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out erasure.Outcome
	for _, id := range s.Values("user_id") {
		if !p.held[id] {
			out.Removed++ // every user has a profile here, erased once
			p.held[id] = true
		}
	}
	return out, nil
}

func (p *profiles) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

// refusing is shared by every profiles dataset of the test binary's estates: tests that use it
// do not run in parallel.
var refusing atomic.Bool

type profilesDriver struct{}

func (profilesDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (profilesDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	return &profiles{held: map[string]bool{}, refusing: &refusing}
}

func init() { registry.Register("webtest", profilesDriver{}) }

// estate is a running server with its dashboard.
type estate struct {
	t    *testing.T
	srv  *server.Server
	url  string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startEstate(t *testing.T) *estate {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
auth:
  tokens:
    - { name: operator, secret: "${OPERATOR}", roles: [submit, operate] }
    - { name: viewer, secret: "${VIEWER}", roles: [read] }
    - { name: intake, secret: "${INTAKE}", roles: [submit] }
identifiers:
  - user_id
  - { name: email, normalize: lower, trim: true }
defaults: { backoff: { initial: 20ms, max: 200ms } }
datasets:
  - { name: accounts.profiles, owner: profile-team, connector: webtest, webtest: {} }
  - { name: billing.customers, owner: billing-team, connector: webtest, webtest: {} }
`, filepath.Join(dir, "data"))
	env := map[string]string{"OPERATOR": operatorToken, "VIEWER": viewerToken, "INTAKE": intakeToken}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	s, err := server.Open(t.Context(), cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx, "127.0.0.1:0"); err != nil {
		cancel()
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &estate{t: t, srv: s, url: s.URL(), logs: logs}
}

// submit submits a request for the subject kv (type, value pairs) and returns its id.
func (e *estate) submit(kv ...string) string {
	e.t.Helper()
	var ids []erasure.Identifier
	for i := 0; i+1 < len(kv); i += 2 {
		ids = append(ids, erasure.Identifier{Type: kv[i], Value: kv[i+1]})
	}
	r, _, err := e.srv.Service.Submit(e.t.Context(), erasure.Submission{Subject: erasure.NewSubject(ids...), Reason: "user_request", Actor: "intake"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

// waitStatus waits until request id has status.
func (e *estate) waitStatus(id string, want erasure.RequestStatus) *erasure.Request {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := e.srv.Service.Request(e.t.Context(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if r.Status == want {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("request %s is %s, still not %s", id, r.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// importRecords puts a few records, some deleted long ago, in the record store.
func (e *estate) importRecords() {
	e.t.Helper()
	old := time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC)
	var recs []records.Record
	for i := 0; i < 40; i++ {
		r := records.Record{ID: fmt.Sprintf("b%04d", i), Version: 1, Payload: json.RawMessage(`{"title":"a book"}`), UpdatedAt: old}
		if i%3 == 0 {
			d := old.AddDate(i%4, 0, 0)
			r.Deleted, r.DeletedAt, r.Reason = true, &d, "withdrawn"
		}
		recs = append(recs, r)
	}
	if err := e.srv.Records.Import(e.t.Context(), "sierra", recs); err != nil {
		e.t.Fatal(err)
	}
}

// browser is an HTTP client with its own cookies, like a person's browser.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (e *estate) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: e.url, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, headers ...string) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(data)}
}

func (b *browser) get(path string) response { b.t.Helper(); return b.do("GET", path, nil) }

// signIn signs in with token and fails the test unless it worked.
func (b *browser) signIn(token string) {
	b.t.Helper()
	p := b.do("POST", "/ui/login", url.Values{"token": {token}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		b.t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the forms of a page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(b.get(path).body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
