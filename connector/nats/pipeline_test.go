package natsconn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
	"erasure/mutator"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

// pipe is the whole server side: SQLite store, executor, service, acknowledgement listener and
// HTTP API, with async datasets on env.
type pipe struct {
	env     *natstest.Env
	hasher  *audit.Hasher
	store   *sqlite.DB
	svc     *pipeline.Service
	http    *httptest.Server
	subject map[string]string
}

// newPipe registers one async dataset per name, each with policy p.
func newPipe(t *testing.T, env *natstest.Env, p erasure.Policy, names ...string) *pipe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := audit.NewHasher([]byte("pipeline-test-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain()})
	if err != nil {
		t.Fatal(err)
	}
	pp := &pipe{env: env, hasher: h, store: st, subject: map[string]string{}}
	var ds []*erasure.Dataset
	byName := map[string]*erasure.Dataset{}
	for _, name := range names {
		c, err := natsconn.New(name, env.Subject(name), []string{"user_id"})
		if err != nil {
			t.Fatal(err)
		}
		d := &erasure.Dataset{Name: name, Owner: "team", Connector: "nats", Method: erasure.MethodAsync,
			Keys: []string{"user_id"}, Policy: p, Conn: c}
		ds = append(ds, d)
		byName[name] = d
		pp.subject[name] = c.Subject()
	}
	if err := env.Conn.EnsureStream(ctx, natsconn.Bind(ds, env.Conn)); err != nil {
		t.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Datasets: byName, Workers: 4, Poll: 20 * time.Millisecond, Hasher: h}
	pp.svc = &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: ds, Identifiers: []string{"user_id"}, DefaultDeadline: 720 * time.Hour, Engine: eng}
	err = env.Conn.ListenAcks(ctx, func(ctx context.Context, dataset string, a erasure.Ack) error {
		_, err := pp.svc.Ack(ctx, dataset, a, "nats")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	pp.http = httptest.NewServer(api.New(api.Config{Service: pp.svc, Tokens: []api.Token{
		{Name: "notifications-team", Secret: "tok-notifications", Roles: []string{"ack:notifications"}},
	}}).Handler())
	t.Cleanup(func() {
		pp.http.Close()
		cancel()
		<-done
		st.Close()
	})
	return pp
}

// dispatch returns the dispatch id of task's attempt in this pipe's deployment.
func (p *pipe) dispatch(t *testing.T, task int64, attempt int) string {
	t.Helper()
	dep, err := p.store.Deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return erasure.DispatchID(p.hasher, dep, task, attempt)
}

func (p *pipe) submit(t *testing.T, user string) *erasure.Request {
	t.Helper()
	r, _, err := p.svc.Submit(context.Background(), erasure.Submission{
		Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: user}), Reason: "user_request", Actor: "test"})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return r
}

// task waits until the task of dataset in request id satisfies ok, and returns it.
func (p *pipe) task(t *testing.T, id, dataset string, what string, ok func(erasure.Task) bool) erasure.Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := p.svc.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range r.Tasks {
			if tk.Dataset == dataset && ok(tk) {
				return tk
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task of %s never became %s: %+v", dataset, what, r.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(s erasure.TaskState) func(erasure.Task) bool {
	return func(t erasure.Task) bool { return t.State == s }
}

func (p *pipe) ack(t *testing.T, task int64, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/tasks/%d/ack", p.http.URL, task), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (p *pipe) acked(t *testing.T, requestID string) int {
	t.Helper()
	events, err := p.svc.Audit(context.Background(), erasure.AuditFilter{RequestID: requestID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type == erasure.EventTaskAcked {
			n++
		}
	}
	return n
}

var policy = erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 2, Backoff: erasure.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
	Timeout: 10 * time.Second, AckTimeout: time.Hour}

func TestPipeline_Async(t *testing.T) {
	t.Run("NoAckIsPublishedAgainThenFails", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			p := policy
			p.AckTimeout = 300 * time.Millisecond
			pp := newPipe(t, env, p, "notifications")
			r := pp.submit(t, "42")
			tk := pp.task(t, r.ID, "notifications", "failed", state(erasure.TaskFailed))
			if tk.Attempts != 3 || !strings.Contains(tk.LastError, "no acknowledgement") {
				t.Errorf("failed task: %d attempts, last error %q", tk.Attempts, tk.LastError)
			}
			var ids []string
			for _, m := range stored(t, env, pp.subject["notifications"]) {
				ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
			}
			want := []string{pp.dispatch(t, tk.ID, 1), pp.dispatch(t, tk.ID, 2)}
			if strings.Join(ids, " ") != strings.Join(want, " ") {
				t.Errorf("published %v, want %v (max_attempts 2)", ids, want)
			}
		})
	})
	t.Run("AckBySubjectThroughMutatorCompletes", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			pp := newPipe(t, env, policy, "notifications")
			_, js := env.ClientAs(t, "notifications")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go mutator.Run(ctx, js, "notifications", func(context.Context, mutator.Command) (int64, error) { return 3, nil },
				mutator.Subject(pp.subject["notifications"]))
			r := pp.submit(t, "42")
			tk := pp.task(t, r.ID, "notifications", "done", state(erasure.TaskDone))
			if tk.Removed != 3 || tk.Attempts != 1 {
				t.Errorf("done task: removed %d after %d attempts", tk.Removed, tk.Attempts)
			}
			if got, _ := pp.svc.Request(context.Background(), r.ID); got.Status != erasure.RequestCompleted {
				t.Errorf("request %s", got.Status)
			}
		})
	})
	t.Run("LateAckAfterRepublishCompletesOnce", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			p := policy
			p.AckTimeout, p.MaxAttempts = 300*time.Millisecond, 50
			pp := newPipe(t, env, p, "notifications")
			r := pp.submit(t, "42")
			tk := pp.task(t, r.ID, "notifications", "published twice", func(t erasure.Task) bool { return t.Attempts >= 2 })
			ack := func(attempt int, removed int) string {
				return fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done","removed":%d}`, tk.ID, pp.dispatch(t, tk.ID, attempt), removed)
			}
			publish(t, env, env.Conn.AckSubject("notifications"), ack(1, 1)) // the answer to attempt 1, late
			publish(t, env, env.Conn.AckSubject("notifications"), ack(2, 1)) // and the answer to attempt 2
			pp.task(t, r.ID, "notifications", "done", state(erasure.TaskDone))
			// A last valid ack, applied after both above: by then every ack has been handled.
			publish(t, env, env.Conn.AckSubject("notifications"), ack(1, 9))
			waitLog(t, env, "acknowledgement applied", 3)
			final := pp.task(t, r.ID, "notifications", "done", state(erasure.TaskDone))
			if final.Removed != 1 || pp.acked(t, r.ID) != 1 {
				t.Errorf("task removed %d with %d ack events; want the first ack's 1, one event", final.Removed, pp.acked(t, r.ID))
			}
		})
	})
	t.Run("AckByAPIWithAScopedToken", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			pp := newPipe(t, env, policy, "notifications", "billing")
			r := pp.submit(t, "42")
			notif := pp.task(t, r.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
			billing := pp.task(t, r.ID, "billing", "dispatched", state(erasure.TaskDispatched))
			body := func(task int64, rest string) string {
				return fmt.Sprintf(`{"dispatch":%q,%s}`, pp.dispatch(t, task, 1), rest)
			}
			for _, tc := range []struct {
				name  string
				task  int64
				token string
				body  string
				want  int
			}{
				{"OtherDatasetIs404LikeAnUnknownTask", billing.ID, "tok-notifications", body(billing.ID, `"status":"done"`), 404},
				{"UnknownTokenIs401", notif.ID, "nope", body(notif.ID, `"status":"done"`), 401},
				{"UnknownTaskIs404", 999999, "tok-notifications", body(999999, `"status":"done"`), 404},
				{"MalformedIs400", notif.ID, "tok-notifications", `{"status":"done"`, 400},
				{"DispatchOfAnotherTaskIs404", notif.ID, "tok-notifications", body(billing.ID, `"status":"done"`), 404},
				{"DispatchOfAnAttemptNotMadeIs404", notif.ID, "tok-notifications", fmt.Sprintf(`{"dispatch":%q,"status":"done"}`, pp.dispatch(t, notif.ID, 2)), 404},
				{"OwnDatasetIs200", notif.ID, "tok-notifications", body(notif.ID, `"status":"done","removed":2`), 200},
			} {
				if got := pp.ack(t, tc.task, tc.token, tc.body); got != tc.want {
					t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
				}
			}
			if tk := pp.task(t, r.ID, "notifications", "done", state(erasure.TaskDone)); tk.Removed != 2 {
				t.Errorf("notifications task removed %d, want 2", tk.Removed)
			}
			if tk := pp.task(t, r.ID, "billing", "still dispatched", func(erasure.Task) bool { return true }); tk.State != erasure.TaskDispatched {
				t.Errorf("billing task is %s after a refused ack, want dispatched", tk.State)
			}
			if _, err := pp.svc.Cancel(context.Background(), r.ID, "test"); err != nil {
				t.Fatal(err)
			}
			if got := pp.ack(t, billing.ID, "tok-notifications", body(billing.ID, `"status":"done"`)); got != 404 {
				t.Errorf("ack of a cancelled task of another dataset: %d, want 404", got)
			}
		})
	})
	t.Run("BadAcksOnTheSubjectChangeNoTask", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			pp := newPipe(t, env, policy, "notifications", "billing")
			r := pp.submit(t, "42")
			notif := pp.task(t, r.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
			billing := pp.task(t, r.ID, "billing", "dispatched", state(erasure.TaskDispatched))
			subj := env.Conn.AckSubject("notifications")
			ack := func(task int64, dispatch, rest string) string {
				return fmt.Sprintf(`{"task_id":%d,"dispatch":%q,%s`, task, dispatch, rest)
			}
			d := pp.dispatch(t, notif.ID, 1)
			for _, bad := range []string{
				ack(notif.ID, d, `"status":"done"`),                                   // bad JSON
				ack(notif.ID, d, `"status":"ok"}`),                                    // bad status
				ack(notif.ID, d, `"status":"done","extra":1}`),                        // unknown field
				fmt.Sprintf(`{"task_id":%d,"status":"done"}`, notif.ID),               // no dispatch (wire contract v1)
				ack(999999, d, `"status":"done"}`),                                    // unknown task
				ack(billing.ID, pp.dispatch(t, billing.ID, 1), `"status":"done"}`),    // another dataset's task
				ack(notif.ID, pp.dispatch(t, billing.ID, 1), `"status":"done"}`),      // another task's dispatch
				ack(notif.ID, pp.dispatch(t, notif.ID, 2), `"status":"done"}`),        // an attempt not made
				ack(notif.ID, "0123456789abcdef0123456789abcdef", `"status":"done"}`), // a forged dispatch
			} {
				publish(t, env, subj, bad)
			}
			publish(t, env, env.Conn.AckSubject("nosuchdataset"), ack(notif.ID, d, `"status":"done"}`))
			waitLog(t, env, "acknowledgement rejected", 10)
			for _, ds := range []string{"notifications", "billing"} {
				if tk := pp.task(t, r.ID, ds, "any", func(erasure.Task) bool { return true }); tk.State != erasure.TaskDispatched {
					t.Errorf("%s task is %s after bad acks, want dispatched", ds, tk.State)
				}
			}
			if n := pp.acked(t, r.ID); n != 0 {
				t.Errorf("%d ack events in the audit trail, want 0", n)
			}
			if _, err := pp.svc.Cancel(context.Background(), r.ID, "test"); err != nil {
				t.Fatal(err)
			}
			publish(t, env, subj, ack(notif.ID, d, `"status":"done"}`))
			waitLog(t, env, "acknowledgement rejected", 11)
			if tk := pp.task(t, r.ID, "notifications", "any", func(erasure.Task) bool { return true }); tk.State != erasure.TaskCancelled {
				t.Errorf("cancelled task is %s after an ack, want cancelled", tk.State)
			}
		})
	})
}

// waitLog waits until at least n log records of env's Conn contain s.
func waitLog(t *testing.T, env *natstest.Env, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for env.Logs.Count(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records say %q, want %d:\n%s", env.Logs.Count(s), s, n, strings.Join(env.Logs.Lines(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPipeline_Canary: an async dataset's canary is a command marked canary; it passes when the
// owner's service (here the mutator) acknowledges it done, and fails when nothing does in time.
func TestPipeline_Canary(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		pp := newPipe(t, env, policy, "notifications")
		d := pp.svc.Registered[0]
		d.Canary = &erasure.Canary{Every: time.Hour, Timeout: 3 * time.Second}
		c := &pipeline.Canaries{Store: pp.store, Datasets: pp.svc.Registered, Hasher: pp.hasher, Engine: pp.svc.Engine, Poll: 20 * time.Millisecond}
		ctx := context.Background()
		t.Run("UnansweredFails", func(t *testing.T) {
			r := c.Run(ctx, d, "test")
			if r.OK || r.Stage != erasure.CanaryErase || !strings.Contains(r.Reason, "did not end within 3s") || !strings.Contains(r.Reason, "dispatched") {
				t.Fatalf("canary without an owner: %+v", r)
			}
		})
		t.Run("AcknowledgedPasses", func(t *testing.T) {
			_, js := env.ClientAs(t, "notifications")
			mctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var mu sync.Mutex
			var seen []mutator.Command
			go mutator.Run(mctx, js, "notifications", func(_ context.Context, cmd mutator.Command) (int64, error) {
				mu.Lock()
				seen = append(seen, cmd)
				mu.Unlock()
				return 0, nil
			}, mutator.Subject(pp.subject["notifications"]))
			r := c.Run(ctx, d, "test")
			if !r.OK {
				t.Fatalf("canary with an owner acknowledging: %+v", r)
			}
			mu.Lock()
			defer mu.Unlock()
			canary := false
			for _, cmd := range seen {
				canary = canary || cmd.Canary && cmd.RequestID == r.RequestID
			}
			if !canary {
				t.Fatalf("the owner saw no command marked canary for %s: %+v", r.RequestID, seen)
			}
		})
	})
}
