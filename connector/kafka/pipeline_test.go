package kafkaconn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"erasure"
	"erasure/audit"
	"erasure/connector/kafka"
	"erasure/connector/kafka/kafkatest"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/store/sqlite"
)

// pipe is one deployment's server side on env's cluster: SQLite store, executor, service and
// the acknowledgement listener, with one async dataset, notifications, on topic.
type pipe struct {
	env    *kafkatest.Env
	conn   *kafkaconn.Conn
	hasher *audit.Hasher
	store  *sqlite.DB
	svc    *pipeline.Service
	topic  string
}

func newPipe(t *testing.T, env *kafkatest.Env, topic string, p erasure.Policy) *pipe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := audit.NewHasher([]byte("pipeline-test-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := st.Deployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := env.Connect(t, env.Config, kafkaconn.WithDeployment(dep))
	c, err := kafkaconn.New("notifications", topic, []string{"user_id"})
	if err != nil {
		t.Fatal(err)
	}
	d := &erasure.Dataset{Name: "notifications", Owner: "team", Connector: "kafka", Method: erasure.MethodAsync, Keys: []string{"user_id"}, Policy: p, Conn: c}
	if err := conn.EnsureTopics(ctx, kafkaconn.Bind([]*erasure.Dataset{d}, conn)); err != nil {
		t.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{"notifications": d}, Workers: 4, Poll: 10 * time.Millisecond, Hasher: h}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: []*erasure.Dataset{d}, Identifiers: []string{"user_id"}, DefaultDeadline: 720 * time.Hour, Engine: eng}
	if err := conn.ListenAcks(ctx, func(ctx context.Context, a erasure.Ack) error {
		_, err := svc.AckByDispatch(ctx, a, "kafka")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; conn.Close(); st.Close() })
	return &pipe{env: env, conn: conn, hasher: h, store: st, svc: svc, topic: topic}
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

// task waits until the notifications task of request id satisfies ok, and returns it.
func (p *pipe) task(t *testing.T, id, what string, ok func(erasure.Task) bool) erasure.Task {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := p.svc.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r.Tasks[0]) {
			return r.Tasks[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("task never became %s: %+v", what, r.Tasks[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(s erasure.TaskState) func(erasure.Task) bool {
	return func(t erasure.Task) bool { return t.State == s }
}

func anyState(erasure.Task) bool { return true }

func (p *pipe) dispatch(t *testing.T, task int64, attempt int) string {
	t.Helper()
	dep, err := p.store.Deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return erasure.DispatchID(p.hasher, dep, task, attempt)
}

// events counts the request's audit events of type typ whose data contains with.
func (p *pipe) events(t *testing.T, requestID, typ, with string) int {
	t.Helper()
	evs, err := p.svc.Audit(context.Background(), erasure.AuditFilter{RequestID: requestID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == typ && strings.Contains(string(e.Data), with) {
			n++
		}
	}
	return n
}

// ack produces an acknowledgement of dispatch to the ack topic, as a service would.
func (p *pipe) ack(t *testing.T, task int64, dispatch string, removed int) {
	t.Helper()
	p.env.Produce(t, p.conn.AckTopic(), dispatch, fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done","removed":%d}`, task, dispatch, removed))
}

// waitLog waits until at least n log records of env contain s.
func waitLog(t *testing.T, env *kafkatest.Env, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for env.Logs.Count(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records say %q, want %d:\n%s", env.Logs.Count(s), s, n, strings.Join(env.Logs.Lines(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var policy = erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 2, Backoff: erasure.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
	Timeout: 10 * time.Second, AckTimeout: time.Hour}

func TestPipeline_Kafka(t *testing.T) {
	t.Run("NoAckIsProducedAgainThenFails", func(t *testing.T) {
		env := kafkatest.New(t)
		p := policy
		p.AckTimeout = 300 * time.Millisecond
		pp := newPipe(t, env, env.Topic("notifications"), p)
		r := pp.submit(t, "42")
		tk := pp.task(t, r.ID, "failed", state(erasure.TaskFailed))
		if tk.Attempts != 3 || !strings.Contains(tk.LastError, "no acknowledgement") {
			t.Errorf("failed task: %d attempts, last error %q", tk.Attempts, tk.LastError)
		}
		var got []string
		for _, rec := range env.Records(t, pp.topic) {
			got = append(got, header(rec, "dispatch"))
		}
		if want := []string{pp.dispatch(t, tk.ID, 1), pp.dispatch(t, tk.ID, 2)}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("produced %v, want the dispatches of attempts 1 and 2 (max_attempts 2)", got)
		}
	})
	t.Run("ConsumerWrittenFromTheDocsCompletes", func(t *testing.T) {
		env := kafkatest.New(t)
		pp := newPipe(t, env, env.Topic("notifications"), policy)
		r := pp.submit(t, "42")
		ctx := context.Background()
		brokers, topic := env.Brokers, pp.topic

		// --- from docs/async.md, "A Kafka consumer" ---
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("erasure-notifications"),
			kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var rec *kgo.Record
		for rec == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { rec = r })
		}
		var cmd struct {
			TaskID      int64          `json:"task_id"`
			Dataset     string         `json:"dataset"`
			Dispatch    string         `json:"dispatch"`
			Identifiers map[string]any `json:"identifiers"`
			AckTopic    string         `json:"ack_topic"`
		}
		if err := json.Unmarshal(rec.Value, &cmd); err != nil {
			t.Fatal(err)
		}
		removed := 1 // what erasing the user's notifications removed (idempotent)
		ack, _ := json.Marshal(map[string]any{"task_id": cmd.TaskID, "dispatch": cmd.Dispatch, "status": "done", "removed": removed})
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cmd.AckTopic, Key: []byte(cmd.Dispatch), Value: ack}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.CommitRecords(ctx, rec); err != nil { // only after the acknowledgement is stored
			t.Fatal(err)
		}
		// --- end ---

		if cmd.Identifiers["user_id"] != "42" || cmd.Dataset != "notifications" {
			t.Errorf("command %+v", cmd)
		}
		tk := pp.task(t, r.ID, "done", state(erasure.TaskDone))
		if tk.Removed != 1 || tk.Attempts != 1 {
			t.Errorf("done task: removed %d after %d attempts", tk.Removed, tk.Attempts)
		}
		// The dispatch is audited once, even when the acknowledgement overtook its record.
		deadline := time.Now().Add(10 * time.Second)
		for pp.events(t, r.ID, erasure.EventTaskAttempt, `"outcome":"dispatched"`) != 1 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := pp.events(t, r.ID, erasure.EventTaskAttempt, `"outcome":"dispatched"`); n != 1 {
			t.Errorf("%d dispatch events, want 1", n)
		}
		if string(rec.Key) != erasure.SubjectKey(pp.hasher, erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"})) {
			t.Errorf("record key %q is not the subject's keyed hash", rec.Key)
		}
	})
	t.Run("LateAckAfterRepublicationCompletesOnce", func(t *testing.T) {
		env := kafkatest.New(t)
		p := policy
		p.AckTimeout, p.MaxAttempts = 300*time.Millisecond, 50
		pp := newPipe(t, env, env.Topic("notifications"), p)
		r := pp.submit(t, "42")
		tk := pp.task(t, r.ID, "produced twice", func(t erasure.Task) bool { return t.Attempts >= 2 })
		pp.ack(t, tk.ID, pp.dispatch(t, tk.ID, 1), 1) // the answer to attempt 1, late
		pp.ack(t, tk.ID, pp.dispatch(t, tk.ID, 2), 1) // and to attempt 2
		pp.task(t, r.ID, "done", state(erasure.TaskDone))
		pp.ack(t, tk.ID, pp.dispatch(t, tk.ID, 1), 9) // a redelivery, after both
		waitLog(t, env, "acknowledgement applied", 3)
		final := pp.task(t, r.ID, "done", state(erasure.TaskDone))
		if final.Removed != 1 || pp.events(t, r.ID, erasure.EventTaskAcked, "") != 1 {
			t.Errorf("task removed %d with %d ack events; want the first ack's 1, one event", final.Removed, pp.events(t, r.ID, erasure.EventTaskAcked, ""))
		}
	})
	t.Run("BadAcksChangeNoTask", func(t *testing.T) {
		env := kafkatest.New(t)
		pp := newPipe(t, env, env.Topic("notifications"), policy)
		r := pp.submit(t, "42")
		tk := pp.task(t, r.ID, "dispatched", state(erasure.TaskDispatched))
		d := pp.dispatch(t, tk.ID, 1)
		const secret = "alice@example.com"
		for _, bad := range []string{
			`{"task_id":1,"status":"done"` + secret,                                                      // bad JSON
			fmt.Sprintf(`{"task_id":%d,"status":"done"}`, tk.ID),                                         // no dispatch (wire contract v1)
			fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"ok"}`, tk.ID, d),                          // bad status
			fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done"}`, tk.ID+1, d),                      // unknown task
			fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done"}`, tk.ID, pp.dispatch(t, tk.ID, 2)), // an attempt not made
			fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done","email":%q}`, tk.ID, d, secret),     // unknown field
		} {
			env.Produce(t, pp.conn.AckTopic(), "x", bad)
		}
		waitLog(t, env, "acknowledgement rejected", 6)
		if got := pp.task(t, r.ID, "any", anyState); got.State != erasure.TaskDispatched || pp.events(t, r.ID, erasure.EventTaskAcked, "") != 0 {
			t.Errorf("task %s with %d ack events after bad acks", got.State, pp.events(t, r.ID, erasure.EventTaskAcked, ""))
		}
		for _, l := range env.Logs.Lines() {
			if strings.Contains(l, secret) || strings.Contains(l, d) {
				t.Errorf("a log line carries an acknowledgement's content: %s", l)
			}
		}
	})
	t.Run("TwoDeploymentsOnOneClusterEachCompleteTheirOwn", func(t *testing.T) {
		env := kafkatest.New(t)
		topic := env.Topic("notifications") // the same topics: a re-install, or staging beside production
		a, b := newPipe(t, env, topic, policy), newPipe(t, env, topic, policy)
		if a.conn.AckGroup() == b.conn.AckGroup() {
			t.Fatalf("both deployments read acknowledgements in group %s", a.conn.AckGroup())
		}
		ra, rb := a.submit(t, "1"), b.submit(t, "2")
		ta := a.task(t, ra.ID, "dispatched", state(erasure.TaskDispatched))
		tb := b.task(t, rb.ID, "dispatched", state(erasure.TaskDispatched))
		if ta.ID != tb.ID {
			t.Fatalf("first tasks %d and %d; the test needs the same id", ta.ID, tb.ID)
		}
		if n := len(env.Records(t, topic)); n != 2 {
			t.Fatalf("%d commands on the topic, want one of each deployment", n)
		}
		a.ack(t, ta.ID, a.dispatch(t, ta.ID, 1), 4) // read by both groups
		done := a.task(t, ra.ID, "done", state(erasure.TaskDone))
		waitLog(t, env, "acknowledgement rejected", 1) // b's reader, for a's acknowledgement
		if got := b.task(t, rb.ID, "any", anyState); got.State != erasure.TaskDispatched || done.Removed != 4 {
			t.Fatalf("b's task is %s after a's acknowledgement (a removed %d)", got.State, done.Removed)
		}
		b.ack(t, tb.ID, b.dispatch(t, tb.ID, 1), 5)
		if got := b.task(t, rb.ID, "done", state(erasure.TaskDone)); got.Removed != 5 {
			t.Fatalf("b's task removed %d", got.Removed)
		}
	})
}

func TestDriver_Build(t *testing.T) {
	parse := func(src string) (*registry.Config, error) {
		return registry.Parse("erasure.yaml", []byte(src), func(string) (string, bool) { return "", false })
	}
	const head = "version: 1\nidentifiers: [user_id, email]\n"
	const ds = "datasets:\n  - name: notifications\n    owner: messaging-team\n    connector: kafka\n"
	cfg, err := parse(head + "kafka: { brokers: [\"k1:9092\"], ack_topic: acks }\n" + ds + "    kafka: { ack_timeout: 2h, identifiers: [user_id] }\n")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Dataset("notifications")
	if c := d.Conn.(*kafkaconn.Connector); c.Topic() != "erasure.notifications" || d.Method != erasure.MethodAsync || d.Policy.AckTimeout != 2*time.Hour {
		t.Errorf("topic %s, method %s, ack timeout %s", c.Topic(), d.Method, d.Policy.AckTimeout)
	}
	for name, tc := range map[string]struct{ src, want string }{
		"NoBrokers":     {head + ds + "    kafka: { identifiers: [user_id] }\n", "kafka.brokers"},
		"AckTopic":      {head + "kafka: { brokers: [\"k:1\"], ack_topic: acks }\n" + ds + "    kafka: { topic: acks, identifiers: [user_id] }\n", "is the ack topic"},
		"BadTopic":      {head + "kafka: { brokers: [\"k:1\"] }\n" + ds + "    kafka: { topic: \"a b\", identifiers: [user_id] }\n", "not a topic name"},
		"NoIdentifiers": {head + "kafka: { brokers: [\"k:1\"] }\n" + ds + "    kafka: { topic: t }\n", "kafka.identifiers is required"},
		"BadBroker":     {head + "kafka: { brokers: [\"k1\"] }\n" + ds + "    kafka: { identifiers: [user_id] }\n", "not host:port"},
		"BadSASL":       {head + "kafka: { brokers: [\"k:1\"], sasl: { mechanism: md5 } }\n" + ds + "    kafka: { identifiers: [user_id] }\n", "kafka.sasl.mechanism"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
