package server_test

import (
	"context"
	"encoding/json"
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
	"erasure/client"
	"erasure/registry"
	"erasure/server"
	"erasure/webhook"
)

// Identifier values the picky dataset treats specially; they must never reach a webhook.
const (
	refused = "refuse-me-7731" // erasing it fails for good
	stalled = "stall-me-4410"  // erasing it fails for a while: its request goes overdue
)

// picky is a dataset that erases every user but refused (a permanent failure) and stalled (a
// transient one, every time).
type picky struct{}

func (picky) Close() error { return nil }

func (picky) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	for _, id := range s.Values("user_id") {
		switch id {
		case refused:
			return erasure.Outcome{}, erasure.Permanentf("the service refuses this user (403 Forbidden)")
		case stalled:
			return erasure.Outcome{}, erasure.Transientf("the service is unavailable (503)")
		}
	}
	return erasure.Outcome{Removed: 1}, nil
}

type pickyDriver struct{}

func (pickyDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (pickyDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	return picky{}
}

func init() { registry.Register("picky", pickyDriver{}) }

// delivery is one POST the receiver took.
type delivery struct {
	Event, ID string
	Body      []byte
	Payload   webhook.Payload
}

// receiver is a webhook endpoint for the tests: it checks every POST's signature and answers
// the statuses it is told to, then 204.
type receiver struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu        sync.Mutex
	fail      []int // statuses to answer first, one per POST
	attempts  map[string]int
	delivered []delivery
	bad       []string
}

func newReceiver(t *testing.T, secret string, fail ...int) *receiver {
	r := &receiver{t: t, secret: secret, fail: fail, attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := req.Header.Get(webhook.HeaderDelivery)
	r.attempts[id]++
	if err := webhook.Verify(r.secret, req.Header.Get(webhook.HeaderSignature), body, time.Now(), 0); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("delivery %s: %v", id, err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.bad = append(r.bad, fmt.Sprintf("delivery %s: %s with %q", id, req.Method, req.Header.Get("Content-Type")))
	}
	if len(r.fail) > 0 {
		status := r.fail[0]
		r.fail = r.fail[1:]
		w.WriteHeader(status)
		return
	}
	d := delivery{Event: req.Header.Get(webhook.HeaderEvent), ID: id, Body: body}
	if err := json.Unmarshal(body, &d.Payload); err != nil || d.Payload.Type != d.Event {
		r.bad = append(r.bad, fmt.Sprintf("delivery %s: payload %s (%v)", id, body, err))
	}
	r.delivered = append(r.delivered, d)
	w.WriteHeader(http.StatusNoContent)
}

// got returns what was delivered so far and the problems seen.
func (r *receiver) got() ([]delivery, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.delivered...), append([]string(nil), r.bad...)
}

// waitFor waits until the receiver took a delivery of each (event, request) pair.
func (r *receiver) waitFor(t *testing.T, want ...[2]string) []delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, bad := r.got()
		if len(bad) > 0 {
			t.Fatalf("the receiver refused deliveries: %v", bad)
		}
		missing := 0
		for _, w := range want {
			found := false
			for _, d := range got {
				if d.Event == w[0] && (d.Payload.Request != nil && d.Payload.Request.ID == w[1] || d.Payload.Sweep != nil && d.Payload.Sweep.Dataset == w[1]) {
					found = true
				}
			}
			if !found {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %v; got %d deliveries", want, len(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const webhookSecret = "whsec-test-0123456789abcdef"

// openNotifying opens a server over a memory and a picky dataset that notifies the endpoints
// of notify (YAML list items), and starts the API, the executor, a quick overdue watcher, the
// notifier and the deliverer.
func openNotifying(t *testing.T, notify string) (*server.Server, *client.Client) {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
auth:
  tokens:
    - { name: operator, secret: "${TOKEN}", roles: [submit, operate] }
identifiers: [user_id]
defaults: { backoff: { initial: 20ms, max: 50ms } }
datasets:
  - { name: profiles, owner: team, connector: memory, memory: {} }
  - { name: billing, owner: team, connector: picky, picky: {}, max_attempts: 10000 }
notify:
%s`, filepath.Join(dir, "data"), notify)
	env := map[string]string{"TOKEN": token, "WEBHOOK_SECRET": webhookSecret, "HOOK_TOKEN": "in-the-query"}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Notifications.Poll, s.Deliveries.Poll = 20*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	h := s.HTTP()
	var parts []server.Component
	for _, c := range []server.Component{h, s.Executor(), s.OverdueWatcher(50 * time.Millisecond), s.Notifier(), s.Deliverer()} {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, c)
	}
	t.Cleanup(func() {
		cancel()
		for _, c := range parts {
			c.Wait()
		}
	})
	c, err := client.New(h.URL(), token)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func submitUser(t *testing.T, c *client.Client, user string, deadline time.Time) *erasure.Request {
	t.Helper()
	r, _, err := c.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: user}), Reason: "user_request", Deadline: deadline}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWebhooks_SignedRetriedInOrder: a receiver that fails twice still gets every notification
// it asked for, signed, once the deliverer retried; a request's notifications arrive in order;
// none holds an identifier; the API shows each delivery's state.
func TestWebhooks_SignedRetriedInOrder(t *testing.T) {
	rcv := newReceiver(t, webhookSecret, http.StatusServiceUnavailable, http.StatusInternalServerError)
	s, c := openNotifying(t, fmt.Sprintf(`  - name: tickets
    url: %s/hooks/erasure?token=${HOOK_TOKEN}
    events: [request.completed, request.failed, request.overdue, task.failed]
    secret: "${WEBHOOK_SECRET}"
    backoff: { initial: 10ms, max: 40ms }
`, rcv.srv.URL))
	done := submitUser(t, c, "3", time.Time{})
	failed := submitUser(t, c, refused, time.Time{})
	late := submitUser(t, c, stalled, time.Now().Add(400*time.Millisecond))
	t.Cleanup(func() { c.Cancel(context.Background(), late.ID) })

	got := rcv.waitFor(t, [2]string{"request.completed", done.ID}, [2]string{"task.failed", failed.ID}, [2]string{"request.failed", failed.ID},
		[2]string{"request.overdue", late.ID})
	var order []string
	for _, d := range got {
		for _, value := range []string{refused, stalled, "user_id"} {
			if strings.Contains(string(d.Body), value) {
				t.Errorf("a %s payload holds %q: %s", d.Event, value, d.Body)
			}
		}
		if d.Payload.Request != nil && d.Payload.Request.ID == failed.ID {
			order = append(order, d.Event)
		}
		if d.Event == "task.failed" && (d.Payload.Task == nil || d.Payload.Task.Dataset != "billing" || d.Payload.Task.Via != "attempt") {
			t.Errorf("task.failed payload %s", d.Body)
		}
		if d.Event == "request.overdue" && (d.Payload.Request.Deadline == nil || d.Payload.Request.Status == "") {
			t.Errorf("request.overdue payload %s", d.Body)
		}
	}
	if strings.Join(order, " ") != "task.failed request.failed" {
		t.Errorf("the failed request's notifications came as %v, want task.failed then request.failed", order)
	}

	// The first message was refused twice, then taken: three attempts, the same delivery id.
	page, err := c.Deliveries(t.Context(), erasure.OutboxFilter{Subscriber: "webhook:tickets", State: erasure.OutboxDelivered})
	if err != nil {
		t.Fatal(err)
	}
	retried := 0
	for _, m := range page.Deliveries {
		if m.URL != rcv.srv.URL {
			t.Errorf("the API shows url %q: only the origin may be shown", m.URL)
		}
		if m.Attempts > 1 {
			retried++
			rcv.mu.Lock()
			n := rcv.attempts[fmt.Sprint(m.ID)]
			rcv.mu.Unlock()
			if n != m.Attempts {
				t.Errorf("delivery %d: %d attempts recorded, the receiver saw %d", m.ID, m.Attempts, n)
			}
		}
		if m.DeliveredAt == nil || m.State != erasure.OutboxDelivered {
			t.Errorf("delivery %+v", m)
		}
	}
	if retried == 0 {
		t.Errorf("no delivery was retried, yet the receiver failed the first two POSTs: %+v", page.Deliveries)
	}
	mine, err := c.Deliveries(t.Context(), erasure.OutboxFilter{Key: failed.ID})
	if ds := mine.Deliveries; err != nil || len(ds) != 2 || ds[0].Event != "request.failed" || ds[1].Event != "task.failed" {
		t.Errorf("deliveries of %s: %+v %v", failed.ID, ds, err)
	}
	// request.overdue is in the trail too, once.
	evs, _ := s.Service.Audit(t.Context(), erasure.AuditFilter{RequestID: late.ID})
	n := 0
	for _, ev := range evs {
		if ev.Type == erasure.EventRequestOverdue {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d request.overdue events in the trail of %s, want 1", n, late.ID)
	}
}

// TestWebhooks_DeadUntilAnOperatorRetries: a message that used up its attempts is dead, holds
// its request's later messages, and goes out when an operator retries it.
func TestWebhooks_DeadUntilAnOperatorRetries(t *testing.T) {
	rcv := newReceiver(t, webhookSecret, http.StatusGone, http.StatusGone)
	_, c := openNotifying(t, fmt.Sprintf(`  - url: %s/hook
    events: [request.completed]
    secret: "${WEBHOOK_SECRET}"
    max_attempts: 2
    backoff: { initial: 10ms, max: 10ms }
`, rcv.srv.URL))
	r := submitUser(t, c, "4", time.Time{})
	var dead erasure.OutboxMessage
	for deadline := time.Now().Add(10 * time.Second); ; {
		page, err := c.Deliveries(t.Context(), erasure.OutboxFilter{State: erasure.OutboxDead})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Deliveries) == 1 {
			dead = page.Deliveries[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message did not die after its two attempts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if dead.Attempts != 2 || dead.Key != r.ID || !strings.Contains(dead.LastError, "410 Gone") || !strings.Contains(dead.LastError, "gave up after 2 attempts") {
		t.Fatalf("dead message %+v", dead)
	}
	if _, err := c.RetryDelivery(t.Context(), dead.ID+1000); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("retry of an unknown delivery: %v", err)
	}
	m, err := c.RetryDelivery(t.Context(), dead.ID)
	if err != nil || m.State != erasure.OutboxPending {
		t.Fatalf("retry: %+v %v", m, err)
	}
	rcv.waitFor(t, [2]string{"request.completed", r.ID})
	if _, err := c.RetryDelivery(t.Context(), dead.ID); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("retry of a delivered message: %v, want ECONFLICT", err)
	}
}
