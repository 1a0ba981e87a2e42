package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"erasure"
	"erasure/api"
	"erasure/api/apitest"
)

// Tokens of the test server, by secret.
const (
	tokSubmit   = "s3cret-submit"
	tokRead     = "s3cret-read"
	tokOperate  = "s3cret-operate"
	tokAckNotif = "s3cret-ack-notifications"
	tokAckAll   = "s3cret-ack-all"
	tokWrite    = "s3cret-write"
)

var testTokens = []api.Token{
	{Name: "intake", Secret: tokSubmit, Roles: []string{"submit"}},
	{Name: "viewer", Secret: tokRead, Roles: []string{"read"}},
	{Name: "oncall", Secret: tokOperate, Roles: []string{"operate"}},
	{Name: "notifications-team", Secret: tokAckNotif, Roles: []string{"ack:notifications"}},
	{Name: "ack-bot", Secret: tokAckAll, Roles: []string{"ack:*"}},
	{Name: "records-writer", Secret: tokWrite, Roles: []string{"write"}},
	{Name: "no-secret", Secret: "", Roles: []string{"operate"}},
}

var testDatasets = []erasure.DatasetInfo{
	{Name: "profile-service", Owner: "profile-team", Connector: "http", Method: erasure.MethodRealtime, Keys: []string{"user_id"}},
	{Name: "notifications", Owner: "messaging-team", Connector: "nats", Method: erasure.MethodAsync, Keys: []string{"user_id"}},
}

// env is a running API over an in-memory service.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	svc  *apitest.Service
	api  *api.Server
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

func newEnv(t *testing.T, mod ...func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, svc: apitest.New([]string{"user_id", "email"}, testDatasets...), logs: &syncBuffer{}}
	cfg := api.Config{
		Service: e.svc, Tokens: testTokens, MaxBodyBytes: 4096,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.api = api.New(cfg)
	e.srv = httptest.NewServer(e.api.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// response is a finished call.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorCode() string {
	var b api.ErrorBody
	json.Unmarshal(r.body, &b)
	return b.Error.Code
}

func (r response) errorMessage() string {
	var b api.ErrorBody
	json.Unmarshal(r.body, &b)
	return b.Error.Message
}

// call sends a request; headers are name, value pairs. A JSON content type is set for a
// non-empty body unless a Content-Type is given.
func (e *env) call(method, path, token, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// submit submits a request for user_id uid and returns it.
func (e *env) submit(body string) erasure.Request {
	e.t.Helper()
	r := e.call("POST", "/v1/requests", tokSubmit, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("submit: %d %s", r.status, r.body)
	}
	var req erasure.Request
	if err := json.Unmarshal(r.body, &req); err != nil {
		e.t.Fatal(err)
	}
	return req
}

// count returns how many requests the service holds.
func (e *env) count() int {
	e.t.Helper()
	n, cursor := 0, ""
	for {
		p, err := e.svc.Requests(e.t.Context(), erasure.RequestFilter{Cursor: cursor, Limit: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(p.Requests)
		if p.Next == "" {
			return n
		}
		cursor = p.Next
	}
}
