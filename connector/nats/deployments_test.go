package natsconn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	"erasure/registry"
	"erasure/store/sqlite"
)

// site is where one deployment's NATS traffic goes.
type site struct {
	url       string // the server, or a proxy in front of it
	stream    string
	ackPrefix string
	subject   string // the dataset's command subject
}

// deployment is one erasure deployment (its own data dir, store and NATS connection) with one
// async dataset, "notifications", on env's server.
type deployment struct {
	*pipe
	conn *natsconn.Conn
	logs *natstest.Recorder
	stop func()
}

// startDeployment starts a deployment whose store lives in dir. All deployments of a test use
// the same audit key, as two installs configured from one secret would: only their deployment
// ids tell their commands apart.
func startDeployment(t *testing.T, env *natstest.Env, dir string, s site, p erasure.Policy) *deployment {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := audit.NewHasher([]byte("pipeline-test-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := st.Deployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := &natstest.Recorder{}
	conn, err := natsconn.Connect(registry.NATS{URL: s.url, Stream: s.stream, AckPrefix: s.ackPrefix}, "", slog.New(logs),
		append(clientAuth(t, env), natsconn.WithDeployment(dep))...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := natsconn.New("notifications", s.subject, []string{"user_id"})
	if err != nil {
		t.Fatal(err)
	}
	d := &erasure.Dataset{Name: "notifications", Owner: "team", Connector: "nats", Method: erasure.MethodAsync, Keys: []string{"user_id"}, Policy: p, Conn: c}
	if err := conn.EnsureStream(ctx, natsconn.Bind([]*erasure.Dataset{d}, conn)); err != nil {
		t.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{"notifications": d}, Workers: 8, Poll: 10 * time.Millisecond, Hasher: h, Logger: slog.New(logs)}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: []*erasure.Dataset{d}, Identifiers: []string{"user_id"}, DefaultDeadline: 720 * time.Hour, Engine: eng}
	if err := conn.ListenAcks(ctx, func(ctx context.Context, dataset string, a erasure.Ack) error {
		_, err := svc.Ack(ctx, dataset, a, "nats")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	srv := httptest.NewServer(api.New(api.Config{Service: svc}).Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			cancel()
			<-done
			conn.Close()
			st.Close()
		})
	}
	t.Cleanup(stop)
	return &deployment{pipe: &pipe{env: env, hasher: h, store: st, svc: svc, http: srv, subject: map[string]string{"notifications": s.subject}},
		conn: conn, logs: logs, stop: stop}
}

// commands returns the commands stored on subject, decoded.
func commands(t *testing.T, env *natstest.Env, stream, subject string) []mutator.Command {
	t.Helper()
	cons, err := env.Conn.JetStream().OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []mutator.Command
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			var c mutator.Command
			if err := json.Unmarshal(m.Data(), &c); err != nil {
				t.Fatal(err)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != c.Dispatch {
				t.Errorf("message id %q is not the command's dispatch id %q", m.Headers().Get(jetstream.MsgIDHeader), c.Dispatch)
			}
			out = append(out, c)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// serve runs the notifications service on subject with a handler that removes one thing.
func serve(t *testing.T, env *natstest.Env, s site, durable string) {
	t.Helper()
	_, js := env.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mutator.Run(ctx, js, "notifications", func(context.Context, mutator.Command) (int64, error) { return 1, nil },
			mutator.Subject(s.subject), mutator.Stream(s.stream), mutator.Durable(durable), mutator.Logger(slog.New(slog.DiscardHandler)))
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// reAck publishes, on ackSubject, the acknowledgement a service would send for c.
func reAck(t *testing.T, env *natstest.Env, ackSubject string, c mutator.Command) {
	t.Helper()
	publish(t, env, ackSubject, fmt.Sprintf(`{"task_id":%d,"dispatch":%q,"status":"done","removed":7}`, c.TaskID, c.Dispatch))
}

// dispatchEvents counts each task's task.attempt events with the outcome dispatched.
func (p *pipe) dispatchEvents(t *testing.T, requestID string) map[int64]int {
	t.Helper()
	events, err := p.svc.Audit(context.Background(), erasure.AuditFilter{RequestID: requestID})
	if err != nil {
		t.Fatal(err)
	}
	n := map[int64]int{}
	for _, e := range events {
		if e.Type == erasure.EventTaskAttempt && strings.Contains(string(e.Data), `"outcome":"dispatched"`) {
			n[e.TaskID]++
		}
	}
	return n
}

// TestDeployments_InTurnOnOneServer: an install, then a re-install with a fresh data dir, on
// the same NATS server, stream and subjects. Both number their tasks from 1. The second one's
// commands are delivered (not dropped as duplicates of the first's), and acknowledgements
// re-sent for the first one's commands complete nothing of the second's.
func TestDeployments_InTurnOnOneServer(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		s := site{url: env.URL, stream: env.Conn.Stream(), ackPrefix: env.Prefix + ".ack", subject: env.Subject("notifications")}
		first := startDeployment(t, env, t.TempDir(), s, policy)
		r1 := first.submit(t, "42")
		t1 := first.task(t, r1.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
		first.stop()

		second := startDeployment(t, env, t.TempDir(), s, policy)
		r2 := second.submit(t, "43")
		t2 := second.task(t, r2.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
		if t1.ID != t2.ID {
			t.Fatalf("the deployments' first tasks are %d and %d; the test needs the same id", t1.ID, t2.ID)
		}
		cmds := commands(t, env, s.stream, s.subject)
		if len(cmds) != 2 || cmds[0].TaskID != t1.ID || cmds[1].TaskID != t2.ID || cmds[0].Dispatch == cmds[1].Dispatch {
			t.Fatalf("stored commands %+v; want task %d of each deployment, with different dispatch ids", cmds, t1.ID)
		}
		if cmds[1].Identifiers.Values("user_id")[0] != "43" {
			t.Fatalf("the second command is not the second deployment's")
		}

		// The first deployment's command answered late, as a service catching up would.
		reAck(t, env, second.conn.AckSubject("notifications"), cmds[0])
		waitFor(t, second.logs, "acknowledgement rejected", 1)
		if tk := second.task(t, r2.ID, "notifications", "any", func(erasure.Task) bool { return true }); tk.State != erasure.TaskDispatched || second.acked(t, r2.ID) != 0 {
			t.Fatalf("after an ack of the first deployment's task %d: task %s with %d ack events", t1.ID, tk.State, second.acked(t, r2.ID))
		}
		for _, l := range second.logs.Lines() {
			if strings.Contains(l, "acknowledgement rejected") && (strings.Contains(l, cmds[0].Dispatch) || strings.Contains(l, "task_id")) {
				t.Errorf("the rejection log carries the acknowledgement's content: %s", l)
			}
		}

		// The service, consuming everything on the subject, completes the second's task.
		serve(t, env, s, "erasure-notifications")
		done := second.task(t, r2.ID, "notifications", "done", state(erasure.TaskDone))
		if done.Removed != 1 || second.acked(t, r2.ID) != 1 || second.dispatchEvents(t, r2.ID)[t2.ID] != 1 {
			t.Fatalf("task %+v, %d ack events, %d dispatch events", done, second.acked(t, r2.ID), second.dispatchEvents(t, r2.ID)[t2.ID])
		}
	})
}

// TestDeployments_AtOnceWithTheirOwnStreams: staging beside production on one server, each
// with its stream, ack prefix and subjects. Each completes its own tasks (which have the same
// ids), and one's acknowledgements sent to the other complete nothing there.
func TestDeployments_AtOnceWithTheirOwnStreams(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx := context.Background()
		var sites []site
		var deps []*deployment
		for _, name := range []string{"prod", "staging"} {
			s := site{url: env.URL, stream: env.Conn.Stream() + "_" + strings.ToUpper(name), ackPrefix: env.Prefix + "." + name + ".ack",
				subject: env.Prefix + "." + name + ".notifications"}
			d := startDeployment(t, env, t.TempDir(), s, policy)
			t.Cleanup(func() { d.conn.DeleteStream(ctx) })
			sites, deps = append(sites, s), append(deps, d)
		}
		// Each deployment's first request is held back until a cross acknowledgement was refused.
		var firsts []*erasure.Request
		for _, d := range deps {
			r := d.submit(t, "42")
			d.task(t, r.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
			firsts = append(firsts, r)
		}
		prodCmds := commands(t, env, sites[0].stream, sites[0].subject)
		reAck(t, env, deps[1].conn.AckSubject("notifications"), prodCmds[0])
		waitFor(t, deps[1].logs, "acknowledgement rejected", 1)
		if tk := deps[1].task(t, firsts[1].ID, "notifications", "any", func(erasure.Task) bool { return true }); tk.State != erasure.TaskDispatched {
			t.Fatalf("staging's task is %s after production's acknowledgement", tk.State)
		}

		for i, s := range sites {
			serve(t, env, s, "erasure-notifications")
			var rs []*erasure.Request
			for u := 0; u < 20; u++ {
				rs = append(rs, deps[i].submit(t, fmt.Sprint(u)))
			}
			for _, r := range append(rs, firsts[i]) {
				tk := deps[i].task(t, r.ID, "notifications", "done", state(erasure.TaskDone))
				if tk.Removed != 1 || deps[i].acked(t, r.ID) != 1 {
					t.Errorf("%s: task %d removed %d with %d ack events", s.stream, tk.ID, tk.Removed, deps[i].acked(t, r.ID))
				}
				// Each dispatch is audited once, however soon its acknowledgement came (when the
				// acknowledgement overtook it, the dispatch is recorded just after).
				deadline := time.Now().Add(10 * time.Second)
				n := deps[i].dispatchEvents(t, r.ID)[tk.ID]
				for n < tk.Attempts && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					n = deps[i].dispatchEvents(t, r.ID)[tk.ID]
				}
				if n != tk.Attempts {
					t.Errorf("%s: task %d has %d dispatch events for %d attempts", s.stream, tk.ID, n, tk.Attempts)
				}
			}
		}
		for i, d := range deps {
			if n := d.logs.Count("results dropped"); n != 0 {
				t.Errorf("deployment %d dropped %d results", i, n)
			}
		}
	})
}

// TestDeployments_SlowPublishIsNotSeveralAttempts: NATS goes away while commands are being
// published, then comes back. Every publish that timed out meanwhile must not reach the stream
// later as well: each task's command is stored once.
func TestDeployments_SlowPublishIsNotSeveralAttempts(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		px := newProxy(t, strings.TrimPrefix(env.URL, "nats://"))
		s := site{url: "nats://" + px.addr(), stream: env.Conn.Stream(), ackPrefix: env.Prefix + ".ack", subject: env.Subject("notifications")}
		p := policy
		p.Timeout, p.MaxAttempts = 300*time.Millisecond, 100
		p.Backoff = erasure.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond}
		d := startDeployment(t, env, t.TempDir(), s, p)
		px.setDown(true)
		var rs []*erasure.Request
		for u := 0; u < 30; u++ {
			rs = append(rs, d.submit(t, fmt.Sprint(u)))
		}
		// Let several attempts of each publish fail.
		d.task(t, rs[len(rs)-1].ID, "notifications", "attempted 3 times", func(tk erasure.Task) bool { return tk.Attempts >= 3 })
		px.setDown(false)
		attempts := 0
		for _, r := range rs {
			attempts += d.task(t, r.ID, "notifications", "dispatched", state(erasure.TaskDispatched)).Attempts
		}
		time.Sleep(300 * time.Millisecond) // anything buffered would have been flushed by now
		per := map[int64]int{}
		for _, c := range commands(t, env, s.stream, s.subject) {
			per[c.TaskID]++
		}
		for _, r := range rs {
			tk := d.task(t, r.ID, "notifications", "dispatched", state(erasure.TaskDispatched))
			if per[tk.ID] != 1 {
				t.Errorf("task %d (attempts %d): %d commands stored, want 1", tk.ID, tk.Attempts, per[tk.ID])
			}
		}
		if attempts <= len(rs) {
			t.Fatalf("%d attempts for %d tasks: the outage did not make publishes fail", attempts, len(rs))
		}
	})
}

// waitFor waits until at least n records of logs contain s.
func waitFor(t *testing.T, logs *natstest.Recorder, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for logs.Count(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records say %q, want %d:\n%s", logs.Count(s), s, n, strings.Join(logs.Lines(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP connections to a NATS server; while down it cuts every connection and
// refuses new ones, as a network outage would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns = append(p.conns, c)
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}
