package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/client"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

// memoryDataset holds subjects by user_id and erases them without I/O; as an async dataset
// it records the commands it was sent.
type memoryDataset struct {
	mu       sync.Mutex
	held     map[string]bool
	commands []erasure.Command
}

func (m *memoryDataset) Close() error { return nil }

func (m *memoryDataset) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, v := range s.Values("user_id") {
		if m.held[v] {
			delete(m.held, v)
			n++
		}
	}
	return erasure.Outcome{Removed: n}, nil
}

func (m *memoryDataset) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range s.Values("user_id") {
		if m.held[v] {
			return true, nil
		}
	}
	return false, nil
}

func (m *memoryDataset) Dispatch(ctx context.Context, c erasure.Command) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commands = append(m.commands, c)
	return nil
}

// TestAPI_OverThePipeline runs the API over the real pipeline and SQLite store: a submission
// goes through the executor, an async dataset is acknowledged through the API, and the trail
// read back through the API verifies.
func TestAPI_OverThePipeline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy := erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: 10 * time.Millisecond, Max: time.Second}, Timeout: 5 * time.Second, AckTimeout: time.Hour}
	accounts := &memoryDataset{held: map[string]bool{"42": true}}
	notifications := &memoryDataset{}
	ds := []*erasure.Dataset{
		{Name: "accounts", Owner: "accounts-team", Connector: "sql", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Policy: policy, Conn: accounts},
		{Name: "notifications", Owner: "messaging-team", Connector: "nats", Method: erasure.MethodAsync, Keys: []string{"user_id"}, Policy: policy, Conn: notifications},
	}
	engine := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{"accounts": ds[0], "notifications": ds[1]}, Owner: "test", Poll: 10 * time.Millisecond, Hasher: h}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: ds, Identifiers: []string{"user_id", "email"}, DefaultDeadline: 720 * time.Hour, Engine: engine}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); engine.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	srv := httptest.NewServer(api.New(api.Config{Service: svc, Tokens: []api.Token{
		{Name: "admin", Secret: "admin-secret", Roles: []string{"submit", "operate"}},
		{Name: "messaging", Secret: "ack-secret", Roles: []string{"ack:notifications"}},
		{Name: "other-team", Secret: "other-secret", Roles: []string{"ack:accounts"}},
	}}).Handler())
	defer srv.Close()
	admin, _ := client.New(srv.URL, "admin-secret")
	sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}, erasure.Identifier{Type: "email", Value: "someone@example.com"}), Reason: "user_request"}

	req, created, err := admin.Submit(ctx, sub, "ticket-1")
	if err != nil || !created || len(req.Tasks) != 2 {
		t.Fatalf("submit: %+v %v %v", req, created, err)
	}
	t.Run("IdempotentSubmit", func(t *testing.T) {
		again, created, err := admin.Submit(ctx, sub, "ticket-1")
		if err != nil || created || again.ID != req.ID {
			t.Fatalf("again: %v %v %v", again, created, err)
		}
		other := sub
		other.Reason = "legal"
		if _, _, err := admin.Submit(ctx, other, "ticket-1"); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("other content: %v", err)
		}
	})
	t.Run("UndeclaredIdentifierIs400", func(t *testing.T) {
		_, _, err := admin.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "phone", Value: "1"}), Reason: "user_request"}, "")
		if erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("%v", err)
		}
	})

	// poll reads the request until cond holds; the engine works in the background.
	poll := func(t *testing.T, what string, cond func(*erasure.Request) bool) *erasure.Request {
		t.Helper()
		for range 1000 {
			r, err := admin.Request(ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cond(r) {
				return r
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("request never reached: %s", what)
		return nil
	}
	task := func(r *erasure.Request, dataset string) erasure.Task {
		for _, tk := range r.Tasks {
			if tk.Dataset == dataset {
				return tk
			}
		}
		t.Fatalf("no task for %s", dataset)
		return erasure.Task{}
	}
	r := poll(t, "accounts done and notifications dispatched", func(r *erasure.Request) bool {
		return task(r, "accounts").State == erasure.TaskDone && task(r, "notifications").State == erasure.TaskDispatched
	})
	if acc := task(r, "accounts"); acc.Removed != 1 || acc.VerifiedAt == nil {
		t.Fatalf("accounts task: %+v", acc)
	}
	notif := task(r, "notifications")
	notifications.mu.Lock()
	if len(notifications.commands) != 1 || notifications.commands[0].TaskID != notif.ID || !erasure.ValidDispatchID(notifications.commands[0].Dispatch) {
		t.Fatalf("commands dispatched: %+v", notifications.commands)
	}
	dispatch := notifications.commands[0].Dispatch
	notifications.mu.Unlock()

	t.Run("AckScopedToAnotherDatasetIs404LikeAnUnknownTask", func(t *testing.T) {
		other, _ := client.New(srv.URL, "other-secret")
		if _, err := other.Ack(ctx, erasure.Ack{TaskID: notif.ID, Dispatch: dispatch, Status: "done"}); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("%v", err)
		}
	})
	t.Run("AckUnknownTaskIs404", func(t *testing.T) {
		acker, _ := client.New(srv.URL, "ack-secret")
		if _, err := acker.Ack(ctx, erasure.Ack{TaskID: 999999, Dispatch: dispatch, Status: "done"}); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("%v", err)
		}
	})
	t.Run("AckOfAnotherDeploymentsDispatchIs404", func(t *testing.T) {
		// The same task id and attempt, dispatched by a deployment with another id and key.
		otherKey, _ := audit.NewHasher([]byte("another-deployment-key-0123456789"))
		acker, _ := client.New(srv.URL, "ack-secret")
		for _, h := range []erasure.Hasher{h, otherKey} {
			foreign := erasure.DispatchID(h, "another-deployment", notif.ID, 1)
			if _, err := acker.Ack(ctx, erasure.Ack{TaskID: notif.ID, Dispatch: foreign, Status: "done"}); erasure.ErrorCode(err) != erasure.ENOTFOUND {
				t.Fatalf("%v", err)
			}
		}
		if tk, _ := st.Task(ctx, notif.ID); tk.State != erasure.TaskDispatched {
			t.Fatalf("task %s after foreign acks", tk.State)
		}
	})
	t.Run("AckCompletesTheRequest", func(t *testing.T) {
		acker, _ := client.New(srv.URL, "ack-secret")
		tk, err := acker.Ack(ctx, erasure.Ack{TaskID: notif.ID, Dispatch: dispatch, Status: "done", Removed: 5})
		if err != nil || tk.State != erasure.TaskDone {
			t.Fatalf("%+v %v", tk, err)
		}
		done := poll(t, "completed", func(r *erasure.Request) bool { return r.Status == erasure.RequestCompleted })
		if task(done, "notifications").Removed != 5 {
			t.Fatalf("%+v", done.Tasks)
		}
	})
	t.Run("EndedRequestRefusesCancelAndRetry", func(t *testing.T) {
		if _, err := admin.Cancel(ctx, req.ID); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("cancel: %v", err)
		}
		if _, err := admin.Retry(ctx, req.ID); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("retry: %v", err)
		}
	})
	t.Run("ListsAndNoClearIdentifiers", func(t *testing.T) {
		p, err := admin.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestCompleted})
		if err != nil || len(p.Requests) != 1 || p.Requests[0].ID != req.ID {
			t.Fatalf("%+v %v", p, err)
		}
		var raw json.RawMessage
		if _, err := admin.Do(ctx, http.MethodGet, "/v1/requests/"+req.ID, nil, &raw); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "someone@example.com") || !strings.Contains(string(raw), "subject_hashes") {
			t.Fatalf("request JSON: %s", raw)
		}
	})
	t.Run("AuditTrailVerifies", func(t *testing.T) {
		admin.AuditPageSize = 3
		evs, err := admin.Audit(ctx, erasure.AuditFilter{})
		if err != nil || len(evs) < 4 {
			t.Fatalf("%d events, %v", len(evs), err)
		}
		if rep, err := admin.VerifyAudit(ctx); err != nil || !rep.OK {
			t.Fatalf("audit trail: %+v %v", rep, err)
		}
		for i := range evs {
			if evs[i].Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: pages lost or repeated events", i+1, evs[i].Seq)
			}
			if strings.Contains(string(evs[i].Data), "someone@example.com") {
				t.Fatalf("event %d holds an identifier in clear: %s", evs[i].Seq, evs[i].Data)
			}
		}
	})
}
