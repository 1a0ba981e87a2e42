package pipeline_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
	"erasure/store/storetest"
)

// conn is an in-memory dataset: it holds subjects by user_id and can fail on purpose.
type conn struct {
	mu        sync.Mutex
	name      string
	held      map[string]bool
	failures  []error // returned by the next Erase calls, in order
	resolve   map[string][]erasure.Identifier
	log       *[]string
	stillHeld bool // Holds reports true even after an erase
}

func (c *conn) Close() error { return nil }

func (c *conn) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log != nil {
		*c.log = append(*c.log, c.name)
	}
	if len(c.failures) > 0 {
		err := c.failures[0]
		c.failures = c.failures[1:]
		return erasure.Outcome{}, err
	}
	var n int64
	for _, id := range s {
		if c.held[id.Value] {
			delete(c.held, id.Value)
			n++
		}
	}
	return erasure.Outcome{Removed: n}, nil
}

func (c *conn) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range s {
		if c.held[id.Value] {
			return true, nil
		}
	}
	return c.stillHeld, nil
}

func (c *conn) Resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	var out []erasure.Identifier
	for _, id := range s {
		out = append(out, c.resolve[id.Value]...)
	}
	return out, nil
}

func dataset(name string, c *conn, keys []string, after ...string) *erasure.Dataset {
	c.name = name
	return &erasure.Dataset{Name: name, Owner: "team", Connector: "test", Method: erasure.MethodRealtime, Keys: keys, After: after, Conn: c,
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 5 * time.Second, AckTimeout: time.Hour}}
}

type harness struct {
	store  *sqlite.DB
	engine *pipeline.Engine
	svc    *pipeline.Service
	clock  *storetest.Clock
}

func newHarness(t *testing.T, clock *storetest.Clock, ds ...*erasure.Dataset) *harness {
	t.Helper()
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Now: now, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := map[string]*erasure.Dataset{}
	for _, d := range ds {
		m[d.Name] = d
	}
	e := &pipeline.Engine{Store: st, Datasets: m, Owner: "w1", Now: now, Rand: rand.New(rand.NewPCG(1, 2)), Poll: 10 * time.Millisecond}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: ds, Identifiers: []string{"user_id", "email", "phone"}, DefaultDeadline: 720 * time.Hour, Engine: e, Now: now}
	return &harness{st, e, svc, clock}
}

func (h *harness) submit(t *testing.T, kv ...string) *erasure.Request {
	t.Helper()
	var ids []erasure.Identifier
	for i := 0; i+1 < len(kv); i += 2 {
		ids = append(ids, erasure.Identifier{Type: kv[i], Value: kv[i+1]})
	}
	r, _, err := h.svc.Submit(context.Background(), erasure.Submission{Subject: ids, Reason: "user_request", Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// step leases every due task, executes it and commits the results, like one turn of Run.
func (h *harness) step(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	tasks, err := h.store.LeaseTasks(ctx, h.engine.Owner, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var rs []erasure.TaskResult
	for _, tk := range tasks {
		rs = append(rs, h.engine.Execute(ctx, tk))
	}
	if len(rs) > 0 {
		if _, err := h.store.FinishTasks(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	return len(tasks)
}

func (h *harness) get(t *testing.T, id string) *erasure.Request {
	t.Helper()
	r, err := h.svc.Request(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEngine_Run(t *testing.T) {
	var order []string
	users := &conn{held: map[string]bool{"a@example.com": true}, resolve: map[string][]erasure.Identifier{"a@example.com": {{Type: "user_id", Value: "42"}}}, log: &order}
	orders := &conn{held: map[string]bool{"42": true, "43": true}, log: &order}
	profiles := &conn{held: map[string]bool{"42": true}, log: &order, failures: []error{erasure.Transientf("503")}}
	dsUsers := dataset("users", users, []string{"email"}, "profiles")
	dsUsers.Provides = []erasure.Provide{{Identifier: "user_id", Field: "id"}}
	h := newHarness(t, nil, dsUsers, dataset("orders", orders, []string{"user_id"}), dataset("profiles", profiles, []string{"user_id"}, "orders"))
	for _, d := range []*erasure.Dataset{dsUsers} {
		d.Policy.Backoff = erasure.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	}
	h.engine.Datasets["profiles"].Policy.Backoff = erasure.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.engine.Run(ctx) }()
	r := h.submit(t, "email", "a@example.com")
	deadline := time.Now().Add(10 * time.Second)
	for h.get(t, r.ID).Status != erasure.RequestCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("request not completed: %+v", h.get(t, r.ID).Tasks)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	got := h.get(t, r.ID)
	t.Run("LookupFoundTheUserID", func(t *testing.T) {
		if len(got.SubjectHashes) != 2 {
			t.Fatalf("hashes %v, want email and user_id", got.SubjectHashes)
		}
		if orders.held["42"] || !orders.held["43"] || users.held["a@example.com"] || profiles.held["42"] {
			t.Fatalf("left: orders %v users %v profiles %v", orders.held, users.held, profiles.held)
		}
	})
	t.Run("AfterOrderIsKept", func(t *testing.T) {
		if want := "orders profiles profiles users"; strings.Join(order, " ") != want {
			t.Fatalf("erase order %v, want %s (profiles after orders, retried once; users after profiles)", order, want)
		}
	})
	t.Run("EveryEraseIsVerified", func(t *testing.T) {
		for _, tk := range got.Tasks {
			if tk.Kind == erasure.TaskErase && (tk.State != erasure.TaskDone || tk.VerifiedAt == nil) {
				t.Errorf("task %s: %s verified %v", tk.Dataset, tk.State, tk.VerifiedAt)
			}
		}
	})
	t.Run("IdentifiersHashedAtEnd", func(t *testing.T) {
		if len(got.Subject) != 0 {
			t.Fatalf("identifiers still in clear: %v", got.Subject)
		}
	})
	t.Run("AuditChainVerifies", func(t *testing.T) {
		if rep, err := h.svc.VerifyAudit(context.Background()); err != nil || !rep.OK {
			t.Fatalf("audit trail: %+v %v", rep, err)
		}
		evs, _ := h.svc.Audit(context.Background(), erasure.AuditFilter{})
		for i := range evs {
			if strings.Contains(string(evs[i].Data), "a@example.com") {
				t.Fatalf("event %d holds the email in clear", evs[i].Seq)
			}
		}
	})
}

func TestScheduler_Retries(t *testing.T) {
	t.Run("TransientHonoursRetryAfterThenSucceeds", func(t *testing.T) {
		c := storetest.NewClock()
		x := &conn{held: map[string]bool{"1": true}, failures: []error{erasure.Transient(errors.New("429"), 30*time.Second), erasure.Transientf("503")}}
		h := newHarness(t, c, dataset("x", x, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		if n := h.step(t); n != 1 {
			t.Fatalf("leased %d", n)
		}
		tk := h.get(t, r.ID).Tasks[0]
		if tk.State != erasure.TaskPending || tk.DueAt.Sub(c.Now()) < 30*time.Second || tk.LastError != "429" {
			t.Fatalf("after 429: %+v", tk)
		}
		c.Add(29 * time.Second)
		if n := h.step(t); n != 0 {
			t.Fatalf("ran %d tasks before Retry-After elapsed", n)
		}
		c.Add(2 * time.Second)
		h.step(t)
		tk = h.get(t, r.ID).Tasks[0]
		if wait := tk.DueAt.Sub(c.Now()); tk.Attempts != 2 || wait < time.Second || wait > 2*time.Second {
			t.Fatalf("second failure: attempts %d, wait %s (want 1s–2s)", tk.Attempts, wait)
		}
		c.Add(2 * time.Second)
		h.step(t)
		got := h.get(t, r.ID)
		if got.Status != erasure.RequestCompleted || got.Tasks[0].Attempts != 3 || got.Tasks[0].Removed != 1 {
			t.Fatalf("final %s %+v", got.Status, got.Tasks[0])
		}
	})
	t.Run("MaxAttemptsFailsThenRetryReopens", func(t *testing.T) {
		c := storetest.NewClock()
		x := &conn{held: map[string]bool{}, failures: []error{erasure.Transientf("a"), erasure.Transientf("b"), erasure.Transientf("c")}}
		h := newHarness(t, c, dataset("x", x, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		for i := 0; i < 3; i++ {
			h.step(t)
			c.Add(time.Hour)
		}
		got := h.get(t, r.ID)
		if got.Status != erasure.RequestFailed || !strings.Contains(got.Tasks[0].LastError, "gave up after 3 attempts: c") {
			t.Fatalf("%s %+v", got.Status, got.Tasks[0])
		}
		if _, err := h.svc.Retry(context.Background(), r.ID, "op", erasure.RetryOptions{}); err != nil {
			t.Fatal(err)
		}
		h.step(t)
		if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("after retry %s %+v", got.Status, got.Tasks[0])
		}
	})
	t.Run("PermanentFailsAtOnce", func(t *testing.T) {
		c := storetest.NewClock()
		x := &conn{held: map[string]bool{}, failures: []error{erasure.Permanentf("403 Forbidden")}}
		h := newHarness(t, c, dataset("x", x, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		h.step(t)
		if got := h.get(t, r.ID); got.Status != erasure.RequestFailed || got.Tasks[0].Attempts != 1 {
			t.Fatalf("%s %+v", got.Status, got.Tasks[0])
		}
	})
	t.Run("VerificationFailureIsRetried", func(t *testing.T) {
		c := storetest.NewClock()
		x := &conn{held: map[string]bool{}, stillHeld: true}
		h := newHarness(t, c, dataset("x", x, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		h.step(t)
		tk := h.get(t, r.ID).Tasks[0]
		if tk.State != erasure.TaskPending || !strings.Contains(tk.LastError, "still holds") {
			t.Fatalf("%+v", tk)
		}
	})
	t.Run("NoIdentifierIsSkipped", func(t *testing.T) {
		c := storetest.NewClock()
		h := newHarness(t, c, dataset("x", &conn{}, []string{"phone"}), dataset("y", &conn{held: map[string]bool{}}, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		h.step(t)
		got := h.get(t, r.ID)
		if got.Status != erasure.RequestCompleted || got.Tasks[0].State != erasure.TaskSkipped || !strings.Contains(got.Tasks[0].Note, "no identifier") {
			t.Fatalf("%s %+v", got.Status, got.Tasks)
		}
	})
	t.Run("ExpiredLeaseRunsAgainCompletesOnce", func(t *testing.T) {
		c := storetest.NewClock()
		x := &conn{held: map[string]bool{"1": true}}
		h := newHarness(t, c, dataset("x", x, []string{"user_id"}))
		r := h.submit(t, "user_id", "1")
		ctx := context.Background()
		crashed, _ := h.store.LeaseTasks(ctx, "dead-worker", 10, time.Minute)
		c.Add(2 * time.Minute)
		h.step(t)
		if _, err := h.store.FinishTasks(ctx, []erasure.TaskResult{{TaskID: crashed[0].ID, RequestID: crashed[0].RequestID, Dataset: crashed[0].Dataset, Owner: "dead-worker", Attempt: 1, State: erasure.TaskDone}}); err != nil {
			t.Fatal(err)
		}
		evs, _ := h.svc.Audit(ctx, erasure.AuditFilter{RequestID: r.ID})
		done := 0
		for _, ev := range evs {
			if ev.Type == erasure.EventTaskAttempt && strings.Contains(string(ev.Data), `"outcome":"done"`) {
				done++
			}
		}
		if done != 1 || h.get(t, r.ID).Tasks[0].Attempts != 2 {
			t.Fatalf("%d done attempts audited, want 1", done)
		}
	})
}

func TestScheduler_DeadlineMakesOverdue(t *testing.T) {
	c := storetest.NewClock()
	h := newHarness(t, c, dataset("x", &conn{failures: []error{erasure.Transientf("down")}}, []string{"user_id"}))
	r, _, err := h.svc.Submit(context.Background(), erasure.Submission{Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "r", Deadline: c.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	h.step(t)
	if h.get(t, r.ID).Overdue {
		t.Fatal("overdue before the deadline")
	}
	c.Add(61 * time.Minute)
	if !h.get(t, r.ID).Overdue {
		t.Fatal("not overdue after the deadline")
	}
	page, _ := h.svc.Requests(context.Background(), erasure.RequestFilter{Overdue: true})
	if len(page.Requests) != 1 {
		t.Fatalf("overdue listing has %d", len(page.Requests))
	}
}

func TestService_SubmitValidates(t *testing.T) {
	h := newHarness(t, storetest.NewClock(), dataset("x", &conn{}, []string{"user_id"}))
	ctx := context.Background()
	for name, sub := range map[string]erasure.Submission{
		"NoIdentifier":      {Reason: "r"},
		"UndeclaredType":    {Subject: []erasure.Identifier{{Type: "ssn", Value: "1"}}, Reason: "r"},
		"BadType":           {Subject: []erasure.Identifier{{Type: "User-ID'; DROP", Value: "1"}}, Reason: "r"},
		"EmptyValue":        {Subject: []erasure.Identifier{{Type: "user_id", Value: ""}}, Reason: "r"},
		"HugeValue":         {Subject: []erasure.Identifier{{Type: "user_id", Value: strings.Repeat("x", 5000)}}, Reason: "r"},
		"InvalidUTF8":       {Subject: []erasure.Identifier{{Type: "user_id", Value: "\xff\xfe"}}, Reason: "r"},
		"NoReason":          {Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}},
		"ControlInReason":   {Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "a\nb"},
		"DeadlineInThePast": {Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "r", Deadline: time.Unix(1, 0)},
		"DeadlineYearOne":   {Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "r", Deadline: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		"DeadlineTooFar":    {Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "r", Deadline: time.Now().Add(pipeline.DefaultMaxDeadline + 24*time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := h.svc.Submit(ctx, sub); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Fatalf("err %v, want invalid", err)
			}
		})
	}
	if p, _ := h.svc.Requests(ctx, erasure.RequestFilter{}); len(p.Requests) != 0 {
		t.Fatalf("bad submissions stored %d requests", len(p.Requests))
	}
}

func TestBackoff_Curve(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	b := erasure.Backoff{Initial: time.Second, Max: time.Minute}
	for n, curve := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 30: time.Minute} {
		for i := 0; i < 200; i++ {
			d := pipeline.Backoff(b, n, 0, rnd)
			if d < curve/2 || d > curve {
				t.Fatalf("attempt %d: %s outside [%s, %s]", n, d, curve/2, curve)
			}
		}
	}
	if d := pipeline.Backoff(b, 1, 10*time.Minute, rnd); d != 10*time.Minute {
		t.Fatalf("Retry-After ignored: %s", d)
	}
}

func TestService_IdempotencyKeysAreScopedToTheSubmitter(t *testing.T) {
	h := newHarness(t, storetest.NewClock(), dataset("x", &conn{}, []string{"user_id"}))
	ctx := context.Background()
	sub := func(actor, value string) erasure.Submission {
		return erasure.Submission{Subject: []erasure.Identifier{{Type: "user_id", Value: value}}, Reason: "r", Actor: actor, IdempotencyKey: "k1"}
	}
	a, created, err := h.svc.Submit(ctx, sub("alice", "1"))
	if err != nil || !created {
		t.Fatal(err)
	}
	again, created, err := h.svc.Submit(ctx, sub("alice", "1"))
	if err != nil || created || again.ID != a.ID {
		t.Fatalf("same submitter, same key: %v created=%v", err, created)
	}
	if _, _, err := h.svc.Submit(ctx, sub("alice", "2")); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("same submitter, same key, other content: %v", err)
	}
	b, created, err := h.svc.Submit(ctx, sub("bob", "2"))
	if err != nil || !created || b.ID == a.ID {
		t.Fatalf("another submitter with the same key: %v created=%v", err, created)
	}
}

func TestService_SubmitPutsIdentifiersInCanonicalForm(t *testing.T) {
	h := newHarness(t, storetest.NewClock(), dataset("x", &conn{}, []string{"email"}))
	h.svc.IdentifierTypes = []erasure.IdentifierType{{Name: "email", Normalize: erasure.NormalizeLower, Trim: true}}
	ctx := context.Background()
	r, _, err := h.svc.Submit(ctx, erasure.Submission{Subject: erasure.Subject{{Type: "email", Value: "  Alice@Example.COM "}}, Reason: "r", Actor: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := h.svc.Request(ctx, r.ID)
	if v := got.Subject.Values("email"); len(v) != 1 || v[0] != "alice@example.com" {
		t.Fatalf("stored %v, want the canonical alice@example.com", v)
	}
	same, _, err := h.svc.Submit(ctx, erasure.Submission{Subject: erasure.Subject{{Type: "email", Value: "alice@example.com"}}, Reason: "r", Actor: "a"})
	if err != nil || same.SubjectHashes[0] != got.SubjectHashes[0] {
		t.Fatalf("the canonical and the submitted spelling hash apart: %v %v", same, err)
	}
}

func TestService_SubmitWithAChosenID(t *testing.T) {
	h := newHarness(t, storetest.NewClock(), dataset("x", &conn{}, []string{"user_id"}))
	ctx := context.Background()
	id := pipeline.NewRequestID(h.clock.Now())
	sub := erasure.Submission{ID: id, Subject: []erasure.Identifier{{Type: "user_id", Value: "1"}}, Reason: "r", Actor: "agent", IdempotencyKey: "k1"}
	t.Run("TheRequestTakesIt", func(t *testing.T) {
		r, created, err := h.svc.Submit(ctx, sub)
		if err != nil || !created || r.ID != id {
			t.Fatalf("Submit = %v created=%v err=%v, want request %s", r, created, err, id)
		}
		again, created, err := h.svc.Submit(ctx, sub)
		if err != nil || created || again.ID != id {
			t.Fatalf("again: %v created=%v err=%v", again, created, err)
		}
	})
	t.Run("AKeyNamingAnotherRequestConflicts", func(t *testing.T) {
		other := sub
		other.ID = pipeline.NewRequestID(h.clock.Now())
		if _, _, err := h.svc.Submit(ctx, other); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v, want conflict", err)
		}
		if _, err := h.svc.Request(ctx, other.ID); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("request %s exists: %v", other.ID, err)
		}
	})
	t.Run("AMalformedIDIsRefused", func(t *testing.T) {
		bad := sub
		bad.ID, bad.IdempotencyKey = "r_../../x", ""
		if _, _, err := h.svc.Submit(ctx, bad); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("err %v, want invalid", err)
		}
	})
}
