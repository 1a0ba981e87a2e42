package httpconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	_ "erasure/connector/http"
	"erasure/registry"
)

// registryYAML wraps an http block (written without indentation) in a minimal registry. The
// block's first line is line 8 of the file.
func registryYAML(block string, extra ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\nidentifiers: [user_id, email, account_id]\ndatasets:\n  - name: profile\n    owner: profile-team\n    connector: http\n    http:\n")
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	for _, e := range extra {
		b.WriteString("    " + e + "\n")
	}
	return b.String()
}

// build loads block as the http block of dataset "profile" and returns its connector, closed
// when the test ends.
func build(t testing.TB, block string, extra ...string) erasure.Connector {
	t.Helper()
	cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML(block, extra...)), func(k string) (string, bool) {
		if k == "TEST_HTTP_TOKEN" {
			return "t0k3n", true // a credential comes from the environment
		}
		return "", false
	})
	if err != nil {
		t.Fatalf("registry refused:\n%v", err)
	}
	d := cfg.Dataset("profile")
	if d == nil || d.Conn == nil {
		t.Fatal("dataset profile has no connector")
	}
	t.Cleanup(func() { d.Conn.Close() })
	return d.Conn
}

// seen is one request as the test server got it.
type seen struct {
	Method     string
	RequestURI string
	Path       string // decoded path
	Query      url.Values
	Header     http.Header
	Body       string
}

// server is a loopback HTTP server whose answers a test scripts.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []seen
	respond  func(n int, r *http.Request, w http.ResponseWriter) // n counts requests from 0
}

func newServer(t testing.TB, respond func(n int, r *http.Request, w http.ResponseWriter)) *server {
	t.Helper()
	s := &server{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.requests)
		s.requests = append(s.requests, seen{r.Method, r.RequestURI, r.URL.Path, r.URL.Query(), r.Header.Clone(), string(body)})
		s.mu.Unlock()
		s.respond(n, r, w)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) got() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func status(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}

func users(ids ...string) erasure.Subject {
	var s erasure.Subject
	for _, id := range ids {
		s, _ = s.With(erasure.Identifier{Type: "user_id", Value: id})
	}
	return s
}

func eraseBlock(base string) string {
	return "erase: { method: DELETE, url: \"" + base + "/users/{user_id}\" }\n"
}

func TestConnector_Erase(t *testing.T) {
	ctx := context.Background()

	t.Run("EachValueIsErasedAndEach2xxCounts", func(t *testing.T) {
		srv := newServer(t, status(http.StatusNoContent))
		c := build(t, eraseBlock(srv.URL)).(erasure.Eraser)
		out, err := c.Erase(ctx, users("41", "42"))
		if err != nil {
			t.Fatal(err)
		}
		if out.Removed != 2 {
			t.Errorf("Removed = %d, want 2", out.Removed)
		}
		var paths []string
		for _, r := range srv.got() {
			if r.Method != "DELETE" {
				t.Errorf("method %s, want DELETE", r.Method)
			}
			paths = append(paths, r.Path)
		}
		slices.Sort(paths)
		if !slices.Equal(paths, []string{"/users/41", "/users/42"}) {
			t.Errorf("paths = %q", paths)
		}
	})

	t.Run("NotFoundAndGoneAreSuccessWithNothingRemoved", func(t *testing.T) {
		for _, code := range []int{http.StatusNotFound, http.StatusGone} {
			srv := newServer(t, status(code))
			out, err := build(t, eraseBlock(srv.URL)).(erasure.Eraser).Erase(ctx, users("42"))
			if err != nil {
				t.Fatalf("%d: %v", code, err)
			}
			if out.Removed != 0 {
				t.Errorf("%d: Removed = %d, want 0", code, out.Removed)
			}
		}
	})

	t.Run("ServerErrorIsTransientAndTheRetrySucceeds", func(t *testing.T) {
		srv := newServer(t, func(n int, _ *http.Request, w http.ResponseWriter) {
			if n == 0 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		c := build(t, eraseBlock(srv.URL)).(erasure.Eraser)
		_, err := c.Erase(ctx, users("42"))
		assertTransient(t, err)
		out, err := c.Erase(ctx, users("42"))
		if err != nil || out.Removed != 1 {
			t.Fatalf("second attempt: %+v, %v; want Removed 1", out, err)
		}
	})

	t.Run("SlowServerTimesOutAsTransient", func(t *testing.T) {
		release := make(chan struct{})
		srv := newServer(t, func(_ int, r *http.Request, w http.ResponseWriter) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		c := build(t, eraseBlock(srv.URL)+"timeout: 50ms\n").(erasure.Eraser)
		_, err := c.Erase(ctx, users("42"))
		assertTransient(t, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
	})

	t.Run("RateLimitedHonoursRetryAfter", func(t *testing.T) {
		date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
		for _, tc := range []struct {
			name, header string
			min, max     time.Duration
		}{
			{"Seconds", "7", 7 * time.Second, 7 * time.Second},
			{"HTTPDate", date, 50 * time.Minute, time.Hour},
			{"Absent", "", 0, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				srv := newServer(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(http.StatusTooManyRequests)
				})
				_, err := build(t, eraseBlock(srv.URL)).(erasure.Eraser).Erase(ctx, users("42"))
				assertTransient(t, err)
				if d := erasure.RetryAfter(err); d < tc.min || d > tc.max {
					t.Errorf("RetryAfter = %s, want between %s and %s", d, tc.min, tc.max)
				}
			})
		}
	})

	t.Run("ServiceUnavailableHonoursRetryAfter", func(t *testing.T) {
		srv := newServer(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		_, err := build(t, eraseBlock(srv.URL)).(erasure.Eraser).Erase(ctx, users("42"))
		assertTransient(t, err)
		if d := erasure.RetryAfter(err); d != 2*time.Minute {
			t.Errorf("RetryAfter = %s, want 2m", d)
		}
	})

	t.Run("ForbiddenIsPermanentAndNamesTheTemplateNotTheValue", func(t *testing.T) {
		srv := newServer(t, status(http.StatusForbidden))
		_, err := build(t, eraseBlock(srv.URL)).(erasure.Eraser).Erase(ctx, users("secret-4711"))
		if !erasure.IsPermanent(err) {
			t.Fatalf("error %v is not permanent", err)
		}
		want := "DELETE " + srv.URL + "/users/{user_id}: 403 Forbidden"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})

	t.Run("TransportErrorsDoNotNameTheValue", func(t *testing.T) {
		c := build(t, eraseBlock(closedURL(t))).(erasure.Eraser)
		_, err := c.Erase(ctx, users("secret-4711"))
		if err == nil || strings.Contains(err.Error(), "secret-4711") {
			t.Fatalf("error %v names the identifier value", err)
		}
	})

	t.Run("RedirectIsPermanentAndNotFollowed", func(t *testing.T) {
		srv := newServer(t, func(n int, r *http.Request, w http.ResponseWriter) {
			if n == 0 {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		_, err := build(t, eraseBlock(srv.URL)).(erasure.Eraser).Erase(ctx, users("42"))
		if !erasure.IsPermanent(err) {
			t.Fatalf("error %v is not permanent", err)
		}
		if n := len(srv.got()); n != 1 {
			t.Errorf("server got %d requests, want 1 (redirect not followed)", n)
		}
	})

	t.Run("HostileValuesCannotChangeThePathOrAddParameters", func(t *testing.T) {
		srv := newServer(t, status(http.StatusNoContent))
		c := build(t, "erase: { method: DELETE, url: \""+srv.URL+"/users/{user_id}/data?account={account_id}&hard=true\" }\n").(erasure.Eraser)
		for _, v := range []string{"../admin", "a/b?c=d#e", "..", ".", "%2e%2e", "x&hard=false", "a b+c", "é/ü", `"';--`, "..%2Fadmin"} {
			s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: v}, erasure.Identifier{Type: "account_id", Value: v})
			before := len(srv.got())
			if _, err := c.Erase(ctx, s); err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			r := srv.got()[before]
			rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
			segs := strings.Split(rawPath, "/")
			if len(segs) != 4 || segs[1] != "users" || segs[3] != "data" {
				t.Errorf("%q: request path %q has other segments than /users/VALUE/data", v, rawPath)
				continue
			}
			if got, err := url.PathUnescape(segs[2]); err != nil || got != v {
				t.Errorf("%q: path segment %q decodes to %q", v, segs[2], got)
			}
			if segs[2] == "." || segs[2] == ".." {
				t.Errorf("%q: path segment %q is a dot segment", v, segs[2])
			}
			q, err := url.ParseQuery(rawQuery)
			if err != nil || len(q) != 2 || !slices.Equal(q["account"], []string{v}) || !slices.Equal(q["hard"], []string{"true"}) {
				t.Errorf("%q: query %q, want account=VALUE&hard=true only", v, rawQuery)
			}
		}
	})

	t.Run("HeadersAndEscapedJSONBodyAreSent", func(t *testing.T) {
		srv := newServer(t, status(http.StatusAccepted))
		block := "erase:\n" +
			"  method: POST\n" +
			"  url: \"" + srv.URL + "/erasures\"\n" +
			"  body: '{{\"user_id\": \"{user_id}\", \"reason\": \"gdpr\"}}'\n" +
			"  headers: { X-Reason: erasure }\n" +
			"headers: { Authorization: \"Bearer ${TEST_HTTP_TOKEN}\" }\n"
		c := build(t, block).(erasure.Eraser)
		hostile := "a\"b\\c\n</script>"
		if _, err := c.Erase(ctx, users(hostile)); err != nil {
			t.Fatal(err)
		}
		r := srv.got()[0]
		if r.Header.Get("Authorization") != "Bearer t0k3n" || r.Header.Get("X-Reason") != "erasure" {
			t.Errorf("headers = %v", r.Header)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatalf("body %q is not JSON: %v", r.Body, err)
		}
		if len(body) != 2 || body["user_id"] != hostile || body["reason"] != "gdpr" {
			t.Errorf("body = %q", body)
		}
	})

	t.Run("EveryCombinationOfValuesIsErased", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		c := build(t, "erase: { url: \""+srv.URL+"/accounts/{account_id}/users/{user_id}\" }\n").(erasure.Eraser)
		s := erasure.NewSubject(
			erasure.Identifier{Type: "user_id", Value: "1"}, erasure.Identifier{Type: "user_id", Value: "2"},
			erasure.Identifier{Type: "account_id", Value: "a"}, erasure.Identifier{Type: "account_id", Value: "b"},
			erasure.Identifier{Type: "email", Value: "x@example.com"},
		)
		out, err := c.Erase(ctx, s)
		if err != nil || out.Removed != 4 {
			t.Fatalf("Erase = %+v, %v; want Removed 4", out, err)
		}
		var paths []string
		for _, r := range srv.got() {
			paths = append(paths, r.Path)
		}
		slices.Sort(paths)
		want := []string{"/accounts/a/users/1", "/accounts/a/users/2", "/accounts/b/users/1", "/accounts/b/users/2"}
		if !slices.Equal(paths, want) {
			t.Errorf("paths = %q, want %q", paths, want)
		}
	})

	t.Run("MissingIdentifierIsPermanentAndSendsNothing", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		c := build(t, eraseBlock(srv.URL)).(erasure.Eraser)
		_, err := c.Erase(ctx, erasure.NewSubject(erasure.Identifier{Type: "email", Value: "x@example.com"}))
		if !erasure.IsPermanent(err) {
			t.Fatalf("error %v is not permanent", err)
		}
		if n := len(srv.got()); n != 0 {
			t.Errorf("server got %d requests", n)
		}
	})

	t.Run("EmptyValueIsRefusedRatherThanAddressingTheCollection", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		c := build(t, eraseBlock(srv.URL)).(erasure.Eraser)
		_, err := c.Erase(ctx, erasure.Subject{{Type: "user_id", Value: ""}})
		if !erasure.IsPermanent(err) {
			t.Fatalf("error %v is not permanent", err)
		}
		if n := len(srv.got()); n != 0 {
			t.Errorf("server got %d requests", n)
		}
	})
}

func TestConnector_Holds(t *testing.T) {
	ctx := context.Background()
	verifier := func(t *testing.T, srv *server, gone string) erasure.Verifier {
		t.Helper()
		block := eraseBlock(srv.URL) + "verify: { url: \"" + srv.URL + "/users/{user_id}\"" + gone + " }\n"
		v, ok := build(t, block).(erasure.Verifier)
		if !ok {
			t.Fatal("connector with verify does not implement erasure.Verifier")
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		code  int
		gone  string
		holds bool
		check func(*testing.T, error)
	}{
		{"NotFoundIsGone", 404, "", false, nil},
		{"GoneIsGone", 410, "", false, nil},
		{"OKHolds", 200, "", true, nil},
		{"ConfiguredGoneStatus", 204, ", gone: [204]", false, nil},
		{"UnlistedStatusIsPermanent", 410, ", gone: [404]", false, func(t *testing.T, err error) {
			if !erasure.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
		}},
		{"ServerErrorIsTransient", 503, "", false, func(t *testing.T, err error) { assertTransient(t, err) }},
		{"RateLimitIsTransient", 429, "", false, func(t *testing.T, err error) { assertTransient(t, err) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, status(tc.code))
			holds, err := verifier(t, srv, tc.gone).Holds(ctx, users("42"))
			if tc.check != nil {
				tc.check(t, err)
				return
			}
			if err != nil || holds != tc.holds {
				t.Errorf("Holds = %v, %v; want %v", holds, err, tc.holds)
			}
			if r := srv.got(); len(r) != 1 || r[0].Method != "GET" || r[0].Path != "/users/42" {
				t.Errorf("requests = %+v", r)
			}
		})
	}

	t.Run("AnyValueStillPresentHolds", func(t *testing.T) {
		srv := newServer(t, func(_ int, r *http.Request, w http.ResponseWriter) {
			if r.URL.Path == "/users/2" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		})
		holds, err := verifier(t, srv, "").Holds(ctx, users("1", "2", "3"))
		if err != nil || !holds {
			t.Errorf("Holds = %v, %v; want true", holds, err)
		}
	})

	t.Run("WithoutVerifyBlockNoVerifier", func(t *testing.T) {
		if _, ok := build(t, eraseBlock("http://127.0.0.1:1")).(erasure.Verifier); ok {
			t.Error("connector without verify implements erasure.Verifier")
		}
	})
}

func TestConnector_Resolve(t *testing.T) {
	ctx := context.Background()
	resolver := func(t *testing.T, srv *server, lookup, provides string) erasure.Resolver {
		t.Helper()
		block := eraseBlock(srv.URL) + "lookup: " + lookup + "\n"
		r, ok := build(t, block, "provides: "+provides).(erasure.Resolver)
		if !ok {
			t.Fatal("connector with lookup does not implement erasure.Resolver")
		}
		return r
	}
	byEmail := func(body string, code int) func(int, *http.Request, http.ResponseWriter) {
		return func(_ int, r *http.Request, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			io.WriteString(w, body)
		}
	}
	email := erasure.NewSubject(erasure.Identifier{Type: "email", Value: "a+b@example.com"})

	t.Run("ReadsTheFieldPathOfEachProvide", func(t *testing.T) {
		srv := newServer(t, byEmail(`{"user":{"id":42,"name":"A"},"accounts":[{"id":"acc-1"},{"id":"acc-2"},{"id":null}]}`, 200))
		r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}" }`,
			`[{identifier: user_id, field: user.id}, {identifier: account_id, field: accounts.id}]`)
		ids, err := r.Resolve(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		want := []erasure.Identifier{{Type: "user_id", Value: "42"}, {Type: "account_id", Value: "acc-1"}, {Type: "account_id", Value: "acc-2"}}
		if !slices.Equal(ids, want) {
			t.Errorf("Resolve = %v, want %v", ids, want)
		}
		if got := srv.got()[0].Query.Get("email"); got != "a+b@example.com" {
			t.Errorf("server got email %q", got)
		}
	})

	t.Run("LookupFieldIsTheRootOfEachProvidedField", func(t *testing.T) {
		srv := newServer(t, byEmail(`{"data":[{"user_id":"7"},{"user_id":"8"}],"user_id":"9"}`, 200))
		r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}", field: data }`, `[{identifier: user_id, field: user_id}]`)
		ids, err := r.Resolve(ctx, email)
		want := []erasure.Identifier{{Type: "user_id", Value: "7"}, {Type: "user_id", Value: "8"}}
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("Resolve = %v, %v; want %v", ids, err, want)
		}
	})

	t.Run("NotFoundFindsNothing", func(t *testing.T) {
		srv := newServer(t, byEmail(`{}`, 404))
		r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}" }`, `[{identifier: user_id, field: user.id}]`)
		ids, err := r.Resolve(ctx, email)
		if err != nil || len(ids) != 0 {
			t.Errorf("Resolve = %v, %v; want nothing", ids, err)
		}
	})

	t.Run("SubjectWithoutLookupIdentifierFindsNothingAndSendsNothing", func(t *testing.T) {
		srv := newServer(t, byEmail(`{"user":{"id":1}}`, 200))
		r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}" }`, `[{identifier: user_id, field: user.id}]`)
		ids, err := r.Resolve(ctx, users("42"))
		if err != nil || len(ids) != 0 || len(srv.got()) != 0 {
			t.Errorf("Resolve = %v, %v after %d requests; want nothing", ids, err, len(srv.got()))
		}
	})

	for _, tc := range []struct{ name, body string }{
		{"NotJSONIsPermanent", `<html>`},
		{"ObjectAtFieldIsPermanent", `{"user":{"id":{"a":1}}}`},
		{"TooLongValueIsPermanent", `{"user":{"id":"` + strings.Repeat("x", erasure.MaxIdentifierValue+1) + `"}}`},
		{"TooLargeResponseIsPermanent", `{"pad":"` + strings.Repeat("x", 1<<20) + `","user":{"id":1}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, byEmail(tc.body, 200))
			r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}" }`, `[{identifier: user_id, field: user.id}]`)
			ids, err := r.Resolve(ctx, email)
			if !erasure.IsPermanent(err) {
				t.Errorf("Resolve = %v, %v; want a permanent error", ids, err)
			}
		})
	}

	t.Run("EraseAfterALookupThatFoundNothingRemovesNothing", func(t *testing.T) {
		srv := newServer(t, byEmail(`{}`, 404))
		block := eraseBlock(srv.URL) + "verify: { url: \"" + srv.URL + "/users/{user_id}\" }\n" +
			"lookup: { url: \"" + srv.URL + "/users?email={email}\" }\n"
		c := build(t, block, "provides: [{identifier: user_id, field: user.id}]")
		ids, err := c.(erasure.Resolver).Resolve(ctx, email)
		if err != nil || len(ids) != 0 {
			t.Fatalf("Resolve = %v, %v; want nothing", ids, err)
		}
		out, err := c.(erasure.Eraser).Erase(ctx, email)
		if err != nil || out.Removed != 0 {
			t.Errorf("Erase = %+v, %v; want nothing removed and no error", out, err)
		}
		holds, err := c.(erasure.Verifier).Holds(ctx, email)
		if err != nil || holds {
			t.Errorf("Holds = %v, %v; want false", holds, err)
		}
		if n := len(srv.got()); n != 1 {
			t.Errorf("server got %d requests, want the lookup's only", n)
		}
	})

	t.Run("ServerErrorIsTransient", func(t *testing.T) {
		srv := newServer(t, byEmail(`{}`, 502))
		r := resolver(t, srv, `{ url: "`+srv.URL+`/users?email={email}" }`, `[{identifier: user_id, field: user.id}]`)
		_, err := r.Resolve(ctx, email)
		assertTransient(t, err)
	})
}

func TestConnector_Check(t *testing.T) {
	ctx := context.Background()
	t.Run("AnyAnswerIsReachable", func(t *testing.T) {
		srv := newServer(t, status(http.StatusInternalServerError))
		c := build(t, eraseBlock(srv.URL)).(erasure.Checker)
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if r := srv.got(); len(r) != 1 || r[0].Method != "HEAD" || r[0].Path != "/" {
			t.Errorf("requests = %+v, want one HEAD /", r)
		}
	})
	t.Run("UnreachableHostIsTransient", func(t *testing.T) {
		c := build(t, eraseBlock(closedURL(t))).(erasure.Checker)
		assertTransient(t, c.Check(ctx))
	})
	t.Run("EveryDistinctHostIsChecked", func(t *testing.T) {
		srv := newServer(t, status(http.StatusOK))
		c := build(t, eraseBlock(srv.URL)+"verify: { url: \""+closedURL(t)+"/users/{user_id}\" }\n").(erasure.Checker)
		assertTransient(t, c.Check(ctx))
	})
}

// closedURL returns the base URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func assertTransient(t *testing.T, err error) {
	t.Helper()
	var te *erasure.TransientError
	if err == nil || !errors.As(err, &te) || erasure.IsPermanent(err) {
		t.Fatalf("error %v is not transient", err)
	}
}
