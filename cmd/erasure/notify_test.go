package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"erasure"
	"erasure/client"
	"erasure/webhook"
)

const notifyConfig = `version: 1
server: { addr: %q, data_dir: %q }
auth:
  tokens:
    - { name: ops, secret: "${ERASURE_NOTIFY_TOKEN}", roles: [submit, read, operate] }
identifiers: [user_id]
datasets:
  - name: profiles
    owner: team
    connector: http
    http:
      erase: { method: DELETE, url: "%s/profiles/{user_id}" }
notify:
  - name: tickets
    url: %s/hook
    events: [request.completed]
    secret: "${ERASURE_NOTIFY_SECRET}"
    backoff: { initial: 100ms, max: 200ms }
`

// TestServe_WebhookDeliveredAfterRestart: the server is killed (SIGKILL) while its
// notifications wait in the outbox, once right after the requests completed and once after
// failed attempts; the server started again delivers every one, signed.
func TestServe_WebhookDeliveredAfterRestart(t *testing.T) {
	secret := "whsec-" + randomToken()
	var accept atomic.Bool
	var mu sync.Mutex
	delivered := map[string]int{} // request id → deliveries
	var bad []string
	var attempts atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /profiles/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 0); err != nil {
			mu.Lock()
			bad = append(bad, err.Error())
			mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !accept.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var p webhook.Payload
		json.Unmarshal(body, &p)
		mu.Lock()
		if p.Request != nil {
			delivered[p.Request.ID]++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	estate := httptest.NewServer(mux)
	defer estate.Close()

	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(notifyConfig, addr, filepath.Join(dir, "data"), estate.URL, estate.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	token := randomToken()
	cl, _ := client.New("http://"+addr, token)
	srv := startChild(t, cfg, cl, "ERASURE_NOTIFY_TOKEN="+token, "ERASURE_NOTIFY_SECRET="+secret)
	ctx := context.Background()
	submit := func(user string) string {
		t.Helper()
		r, _, err := cl.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: user}), Reason: "user_request"}, "")
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out; server output:\n%s", what, srv.output())
			}
		}
	}
	kill := func() {
		srv.cmd.Process.Signal(syscall.SIGKILL)
		srv.cmd.Wait()
	}

	// Killed as soon as the request completed: its notification may not even be in the
	// outbox yet, only its event in the trail.
	first := submit("1")
	waitUntil("first request completed", func() bool {
		r, err := cl.Request(ctx, first)
		return err == nil && r.Status == erasure.RequestCompleted
	})
	kill()
	srv.start()

	// Killed after the receiver refused the second request's notification: it is in the
	// outbox, pending, with a failed attempt.
	second := submit("2")
	waitUntil("a failed attempt of the second notification", func() bool {
		page, err := cl.Deliveries(ctx, erasure.OutboxFilter{Key: second})
		return err == nil && len(page.Deliveries) == 1 && page.Deliveries[0].Attempts >= 1 && page.Deliveries[0].State == erasure.OutboxPending
	})
	kill()
	accept.Store(true)
	srv.start()

	waitUntil("both notifications delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[first] >= 1 && delivered[second] >= 1
	})
	mu.Lock()
	if len(bad) > 0 {
		t.Errorf("badly signed deliveries: %v", bad)
	}
	mu.Unlock()
	waitUntil("the API shows both delivered", func() bool {
		page, err := cl.Deliveries(ctx, erasure.OutboxFilter{State: erasure.OutboxDelivered})
		return err == nil && len(page.Deliveries) == 2
	})
	page, _ := cl.Deliveries(ctx, erasure.OutboxFilter{})
	for _, m := range page.Deliveries {
		if m.Key == second && m.Attempts < 2 {
			t.Errorf("the second notification was delivered at attempt %d; its refused attempts were lost", m.Attempts)
		}
		if strings.Contains(string(m.Body), `"user_id"`) {
			t.Errorf("payload %s", m.Body)
		}
	}
	if attempts.Load() < 3 {
		t.Errorf("the receiver saw %d attempts", attempts.Load())
	}

	// The CLI shows the same.
	t.Setenv("ERASURE_URL", "http://"+addr)
	t.Setenv("ERASURE_TOKEN", token)
	code, out, errOut := run(t, "webhooks", "list", "--request", second[:20])
	if code != 0 || lastLine(out) != "1 delivery: 1 delivered, 0 pending, 0 dead" || !strings.Contains(out, "request.completed") || !strings.Contains(out, "webhook:tickets") {
		t.Errorf("webhooks list: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, "webhooks", "retry", fmt.Sprint(page.Deliveries[0].ID)); code != 5 || !strings.Contains(errOut, "not dead") {
		t.Errorf("webhooks retry of a delivered message: exit %d %q", code, errOut)
	}
}
