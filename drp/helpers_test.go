package drp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/registry"
	"erasure/server"
)

// estate is a small estate held in memory: accounts by e-mail (each with a user id, found by a
// lookup) and profiles by user id.
type estate struct {
	mu       sync.Mutex
	accounts map[string]string // email → user_id
	profiles map[string]bool   // user_id
	// failProfiles makes erasing a profile fail for good.
	failProfiles bool
}

func (e *estate) has(email, userID string) (account, profile bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, account = e.accounts[email]
	return account, e.profiles[userID]
}

var estates sync.Map // name → *estate

// part is one dataset of an estate: its accounts (keyed by email, providing user_id) or its
// profiles (keyed by user_id).
type part struct {
	e        *estate
	accounts bool
}

func (p *part) Close() error { return nil }

func (p *part) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	var out erasure.Outcome
	if p.accounts {
		for _, email := range s.Values("email") {
			if _, ok := p.e.accounts[email]; ok {
				delete(p.e.accounts, email)
				out.Removed++
			}
		}
		return out, nil
	}
	if p.e.failProfiles && s.Has("user_id") {
		return out, &erasure.PermanentError{Err: errors.New("profiles are read-only today")}
	}
	for _, id := range s.Values("user_id") {
		if p.e.profiles[id] {
			delete(p.e.profiles, id)
			out.Removed++
		}
	}
	return out, nil
}

func (p *part) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	for _, email := range s.Values("email") {
		if _, ok := p.e.accounts[email]; ok && p.accounts {
			return true, nil
		}
	}
	for _, id := range s.Values("user_id") {
		if p.e.profiles[id] && !p.accounts {
			return true, nil
		}
	}
	return false, nil
}

func (p *part) Resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	var out []erasure.Identifier
	for _, email := range s.Values("email") {
		if id, ok := p.e.accounts[email]; ok {
			out = append(out, erasure.Identifier{Type: "user_id", Value: id})
		}
	}
	return out, nil
}

type estateDriver struct{}

func (estateDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (estateDriver) Build(b *registry.Build) erasure.Connector {
	var blk struct {
		Estate string `yaml:"estate"`
		Part   string `yaml:"part"`
	}
	if !b.Decode(b.Block, &blk) {
		return nil
	}
	e, ok := estates.Load(blk.Estate)
	if !ok {
		b.Errorf(b.Block, "no estate %q", blk.Estate)
		return nil
	}
	p := &part{e: e.(*estate), accounts: blk.Part == "accounts"}
	if p.accounts {
		b.Dataset.Keys = []string{"email"}
	} else {
		b.Dataset.Keys = []string{"user_id"}
	}
	return p
}

func init() { registry.Register("drpestate", estateDriver{}) }

const business = "ACME_CORP"

// keyOf returns an agent's signing key, derived from its name so that tests can rebuild it.
func keyOf(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("drp test agent " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func verifyKey(name string) string {
	return base64.StdEncoding.EncodeToString(keyOf(name).Public().(ed25519.PublicKey))
}

// harness is a server with the estate behind it and the DRP endpoints on its listener.
type harness struct {
	t      *testing.T
	srv    *server.Server
	url    string
	estate *estate
	ctx    context.Context
	cancel context.CancelFunc
	parts  []server.Component
}

// newHarness opens a server over a fresh estate (alice@example.com is user 7, bob@example.com
// user 8) and serves its API; the executor runs only once startExecutor is called.
func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	name := t.Name()
	e := &estate{accounts: map[string]string{"alice@example.com": "7", "bob@example.com": "8"}, profiles: map[string]bool{"7": true, "8": true}}
	estates.Store(name, e)
	t.Cleanup(func() { estates.Delete(name) })
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
identifiers: [user_id, { name: email, normalize: lower, trim: true }, { name: phone, normalize: digits }]
defaults: { backoff: { initial: 10ms, max: 100ms } }
datasets:
  - name: accounts
    owner: team
    connector: drpestate
    drpestate: { estate: %q, part: accounts }
    provides: [ { identifier: user_id, field: user_id } ]
  - { name: profiles, owner: team, connector: drpestate, drpestate: { estate: %q, part: profiles } }
drp:
  business_id: %s
  allow_http_callbacks: true
  agents:
    - { id: AGENT_A, verify_key: %q, identifiers: { email: email, phone_number: phone } }
    - { id: AGENT_B, verify_key: %q, identifiers: { email: email } }
`, filepath.Join(dir, "data"), name, name, business, verifyKey("AGENT_A"), verifyKey("AGENT_B"))
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, srv: srv, estate: e, ctx: ctx, cancel: cancel}
	api := srv.HTTP()
	if err := api.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	h.start(api)
	h.url = api.URL()
	t.Cleanup(func() {
		cancel()
		for _, c := range h.parts {
			c.Wait()
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func (h *harness) start(c server.Component) {
	h.t.Helper()
	if err := c.Start(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.parts = append(h.parts, c)
}

func (h *harness) startExecutor() { h.start(h.srv.Executor()) }

// agent returns an authorized agent client of the harness's server.
func (h *harness) agent(id string) *agent {
	return &agent{t: h.t, id: id, key: keyOf(id), base: h.url, business: business}
}

// requests returns every erasure request of the server.
func (h *harness) requests() []erasure.Request {
	h.t.Helper()
	p, err := h.srv.Service.Requests(h.ctx, erasure.RequestFilter{Limit: 500})
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Requests
}

// agent is an authorized agent as the specification describes one (DRP 0.9.4, sections 2 and
// 3.07): it signs JSON messages with Ed25519 in libsodium's combined format (signature, then
// the message), base64-encodes them and sends them as text/plain, with its pair-wise token as
// a Bearer token once it has one.
type agent struct {
	t        *testing.T
	id       string
	key      ed25519.PrivateKey
	base     string
	business string
	token    string
}

// envelope returns the claims of section 2.01's first group, valid for five minutes from now,
// with extra added (a nil value removes a claim).
func (a *agent) envelope(extra map[string]any) map[string]any {
	now := time.Now().UTC()
	m := map[string]any{
		"agent-id": a.id, "business-id": a.business, "drp.version": "0.9.4",
		"issued-at": now.Format(time.RFC3339Nano), "expires-at": now.Add(5 * time.Minute).Format(time.RFC3339Nano),
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// sign returns the body of a signed request: base64 of the signature followed by the JSON.
func (a *agent) sign(m map[string]any) string {
	msg, err := json.Marshal(m)
	if err != nil {
		a.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(append(ed25519.Sign(a.key, msg), msg...))
}

// send makes one request; token "" sends no Authorization header.
func (a *agent) send(method, path, body, token string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// setup runs the pair-wise key set-up (section 2.05) and keeps the token.
func (a *agent) setup() {
	a.t.Helper()
	code, body := a.send("POST", "/v1/agent/"+a.id, a.sign(a.envelope(nil)), "")
	if code != http.StatusOK {
		a.t.Fatalf("key set-up: %d %s", code, body)
	}
	var got struct {
		AgentID string `json:"agent-id"`
		Token   string `json:"token"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.AgentID != a.id || len(got.Token) < 32 {
		a.t.Fatalf("key set-up answered %s (%v)", body, err)
	}
	a.token = got.Token
}

// exerciseStatus is the Exercise Status object of section 3.03.
type exerciseStatus struct {
	RequestID         string `json:"request_id"`
	AgentRequestID    string `json:"agent_request_id"`
	Status            string `json:"status"`
	Reason            string `json:"reason"`
	ReceivedAt        string `json:"received_at"`
	ExpectedBy        string `json:"expected_by"`
	ProcessingDetails string `json:"processing_details"`
}

// errorState is the error body of section 3.06.
type errorState struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal"`
}

// deletion returns the claims of a deletion request for a verified e-mail address.
func deletion(email string, extra map[string]any) map[string]any {
	m := map[string]any{"exercise": "deletion", "regime": "ccpa", "email": email, "email_verified": true}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// exercise sends a Data Rights Exercise request (section 2.01) and decodes its answer.
func (a *agent) exercise(claims map[string]any) (int, exerciseStatus, errorState) {
	a.t.Helper()
	return decodeAnswer(a.t)(a.send("POST", "/v1/data-rights-request", a.sign(a.envelope(claims)), a.token))
}

func (a *agent) status(id string) (int, exerciseStatus, errorState) {
	a.t.Helper()
	return decodeAnswer(a.t)(a.send("GET", "/v1/data-rights-request/"+id, "", a.token))
}

// revoke sends a Data Rights Revoke request (section 2.04), signed like every message.
func (a *agent) revoke(id string) (int, exerciseStatus, errorState) {
	a.t.Helper()
	body := a.sign(a.envelope(map[string]any{"reason": "I changed my mind"}))
	return decodeAnswer(a.t)(a.send("DELETE", "/v1/data-rights-request/"+id, body, a.token))
}

func decodeAnswer(t *testing.T) func(int, []byte) (int, exerciseStatus, errorState) {
	return func(code int, body []byte) (int, exerciseStatus, errorState) {
		t.Helper()
		var st exerciseStatus
		var es errorState
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("status %d with body %s: %v", code, body, err)
			}
		} else if err := json.Unmarshal(body, &es); err != nil || es.Code != fmt.Sprint(code) || es.Message == "" {
			t.Fatalf("error %d without the error state of section 3.06: %s", code, body)
		}
		return code, st, es
	}
}

// waitStatus polls the status endpoint until request id has status (and reason).
func (a *agent) waitStatus(id, status, reason string) exerciseStatus {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, st, es := a.status(id)
		if code != http.StatusOK {
			a.t.Fatalf("status of %s: %d %s", id, code, es.Message)
		}
		if st.Status == status && st.Reason == reason {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("request %s is %s/%s, want %s/%s", id, st.Status, st.Reason, status, reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// callback is one status callback received.
type callback struct {
	body      []byte
	status    exerciseStatus
	signature string
}

// callbacks is an agent's Data Rights Status Callback endpoint (section 2.03).
type callbacks struct {
	mu  sync.Mutex
	got []callback
	url string
}

func newCallbacks(t *testing.T) *callbacks {
	c := &callbacks{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var st exerciseStatus
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &st) != nil {
			t.Errorf("callback %s %s with %q: %s", r.Method, r.URL, r.Header.Get("Content-Type"), b)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, callback{body: b, status: st, signature: r.Header.Get("X-DRP-Signature")})
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL + "/status"
	return c
}

// of returns the callbacks received for request id, in order.
func (c *callbacks) of(id string) []callback {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []callback
	for _, cb := range c.got {
		if cb.status.RequestID == id {
			out = append(out, cb)
		}
	}
	return out
}

// wait waits until request id's callbacks are the statuses want ("status" or "status/reason").
func (c *callbacks) wait(t *testing.T, id string, want ...string) []callback {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.of(id)
		var seen []string
		for _, cb := range got {
			s := cb.status.Status
			if cb.status.Reason != "" {
				s += "/" + cb.status.Reason
			}
			seen = append(seen, s)
		}
		if strings.Join(seen, " ") == strings.Join(want, " ") {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks of %s: %v, want %v", id, seen, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verifySignature checks a callback's X-DRP-Signature with the agent's token.
func verifySignature(t *testing.T, token string, cb callback) {
	t.Helper()
	if !signatureValid(token, cb) {
		t.Errorf("callback signature %q does not verify with the agent's token", cb.signature)
	}
}

// signatureValid verifies a callback's signature as docs/drp.md tells agents to:
// K = HMAC-SHA256(token, "drp-status-callback/1"), v1 = HMAC-SHA256(K, t + "." + body).
func signatureValid(token string, cb callback) bool {
	var ts, v1 string
	for _, part := range strings.Split(cb.signature, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	k := hmac.New(sha256.New, []byte(token))
	k.Write([]byte("drp-status-callback/1"))
	mac := hmac.New(sha256.New, k.Sum(nil))
	mac.Write([]byte(ts + "."))
	mac.Write(cb.body)
	return ts != "" && hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil))))
}

// deliverCallbacks runs the server's notifier and deliverer, which read the audit trail, store
// the status callbacks the server's DRP subscriber asks for in the outbox, and POST them.
func deliverCallbacks(t *testing.T, h *harness) {
	t.Helper()
	n, d := h.srv.Notifier(), h.srv.Deliverer()
	if err := n.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cancel(); n.Wait(); d.Wait() })
}
