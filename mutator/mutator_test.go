package mutator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
	"erasure/mutator"
)

// acks collects the acknowledgements erasure's listener applies.
type acks struct {
	mu   sync.Mutex
	all  []erasure.Ack
	seen chan erasure.Ack
}

func (a *acks) apply(_ context.Context, dataset string, ack erasure.Ack) error {
	a.mu.Lock()
	a.all = append(a.all, ack)
	a.mu.Unlock()
	a.seen <- ack
	return nil
}

func (a *acks) of(task int64) []erasure.Ack {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []erasure.Ack
	for _, x := range a.all {
		if x.TaskID == task {
			out = append(out, x)
		}
	}
	return out
}

// wait returns the next acknowledgement of task, failing after a generous bound.
func (a *acks) wait(t *testing.T, task int64) erasure.Ack {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case x := <-a.seen:
			if x.TaskID == task {
				return x
			}
		case <-timeout:
			t.Fatalf("no acknowledgement of task %d arrived", task)
		}
	}
}

// fixture is erasure's side: connectors for datasets sharing env's "cmds" subject, and the
// acknowledgement listener.
type fixture struct {
	env     *natstest.Env
	subject string
	conns   map[string]*natsconn.Connector
	acks    *acks
}

func setup(t *testing.T, env *natstest.Env, datasets ...string) *fixture {
	t.Helper()
	f := &fixture{env: env, subject: env.Subject("cmds"), conns: map[string]*natsconn.Connector{}, acks: &acks{seen: make(chan erasure.Ack, 1000)}}
	var ds []*erasure.Dataset
	for _, name := range datasets {
		c, err := natsconn.New(name, f.subject, []string{"user_id", "email"})
		if err != nil {
			t.Fatal(err)
		}
		f.conns[name] = c
		ds = append(ds, &erasure.Dataset{Name: name, Conn: c})
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := env.Conn.EnsureStream(ctx, natsconn.Bind(ds, env.Conn)); err != nil {
		t.Fatal(err)
	}
	if err := env.Conn.ListenAcks(ctx, f.acks.apply); err != nil {
		t.Fatal(err)
	}
	return f
}

// dispatchOf is the dispatch id of the first attempt of task, as a deployment would name it.
func dispatchOf(task int64) string {
	return erasure.DispatchID(testHasher{}, "mutator-test", task, 1)
}

// testHasher stands in for a deployment's keyed hasher.
type testHasher struct{}

func (testHasher) Identifier(id erasure.Identifier) string {
	return id.Type + ":" + testHasher{}.Sum([]byte(id.Value))
}
func (testHasher) Sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (f *fixture) dispatch(t *testing.T, dataset string, task int64, ids ...erasure.Identifier) {
	t.Helper()
	if len(ids) == 0 {
		ids = []erasure.Identifier{{Type: "user_id", Value: fmt.Sprint(1000 + task)}}
	}
	err := f.conns[dataset].Dispatch(context.Background(), erasure.Command{
		TaskID: task, RequestID: "req", Dataset: dataset, Attempt: 1, Dispatch: dispatchOf(task),
		Identifiers: erasure.NewSubject(ids...), Deadline: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatalf("Dispatch task %d: %v", task, err)
	}
}

// start runs mutator.Run on its own client connection; stop cancels it and returns its error.
func (f *fixture) start(t *testing.T, dataset string, h mutator.Handler, opts ...mutator.Option) (stop func() error) {
	t.Helper()
	_, js := f.env.Client(t)
	return runOn(t, js, dataset, h, append([]mutator.Option{mutator.Subject(f.subject)}, opts...)...)
}

func runOn(t *testing.T, js jetstream.JetStream, dataset string, h mutator.Handler, opts ...mutator.Option) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mutator.Run(ctx, js, dataset, h, opts...) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRun(t *testing.T) {
	t.Run("ReportsDoneWithRemovedAndSeesIdentifiers", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			got := make(chan mutator.Command, 1)
			f.start(t, "notifications", func(_ context.Context, c mutator.Command) (int64, error) {
				got <- c
				return 2, nil
			})
			f.dispatch(t, "notifications", 1, erasure.Identifier{Type: "user_id", Value: "42"},
				erasure.Identifier{Type: "email", Value: "a@example.com"}, erasure.Identifier{Type: "email", Value: "b@example.com"})
			if a := f.acks.wait(t, 1); a != (erasure.Ack{TaskID: 1, Dispatch: dispatchOf(1), Status: "done", Removed: 2}) {
				t.Errorf("ack %+v", a)
			}
			c := <-got
			want := mutator.Identifiers{"user_id": {"42"}, "email": {"a@example.com", "b@example.com"}}
			if !reflect.DeepEqual(c.Identifiers, want) || c.Attempt != 1 || c.Delivery != 1 || c.Dataset != "notifications" {
				t.Errorf("handler got %+v", c)
			}
		})
	})
	t.Run("AckMatchesTheSchema", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			f.start(t, "notifications", func(context.Context, mutator.Command) (int64, error) {
				return 0, mutator.Permanent(errors.New("account locked by legal hold"))
			})
			f.dispatch(t, "notifications", 2)
			f.acks.wait(t, 2)
			schema, err := natstest.LoadSchema(filepath.Join("..", "docs", "schemas", "ack.schema.json"))
			if err != nil {
				t.Fatal(err)
			}
			msgs := storedAcks(t, env)
			if len(msgs) != 1 {
				t.Fatalf("%d acks stored, want 1", len(msgs))
			}
			if p := schema.Validate(msgs[0]); len(p) != 0 {
				t.Errorf("ack %s breaks the schema: %v", msgs[0], p)
			}
		})
	})
	t.Run("PermanentErrorReportsFailedAtOnce", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			var calls atomic.Int32
			f.start(t, "notifications", func(context.Context, mutator.Command) (int64, error) {
				calls.Add(1)
				return 0, mutator.Permanent(errors.New("account locked by legal hold"))
			})
			f.dispatch(t, "notifications", 3)
			a := f.acks.wait(t, 3)
			if a.Status != "failed" || a.Error != "account locked by legal hold" || calls.Load() != 1 {
				t.Errorf("ack %+v after %d calls, want failed with the reason after 1", a, calls.Load())
			}
		})
	})
	t.Run("RetryableErrorIsRetriedThenDone", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			var deliveries []uint64
			var mu sync.Mutex
			f.start(t, "notifications", func(_ context.Context, c mutator.Command) (int64, error) {
				mu.Lock()
				defer mu.Unlock()
				deliveries = append(deliveries, c.Delivery)
				if len(deliveries) < 3 {
					return 0, errors.New("database busy")
				}
				return 1, nil
			}, mutator.Backoff(func(uint64) time.Duration { return 10 * time.Millisecond }))
			f.dispatch(t, "notifications", 4)
			if a := f.acks.wait(t, 4); a.Status != "done" {
				t.Errorf("ack %+v", a)
			}
			mu.Lock()
			defer mu.Unlock()
			if !reflect.DeepEqual(deliveries, []uint64{1, 2, 3}) {
				t.Errorf("deliveries %v, want [1 2 3]", deliveries)
			}
		})
	})
	t.Run("GivesUpAfterMaxRetries", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			var calls atomic.Int32
			f.start(t, "notifications", func(context.Context, mutator.Command) (int64, error) {
				calls.Add(1)
				return 0, errors.New("database busy")
			}, mutator.MaxRetries(2), mutator.Backoff(func(uint64) time.Duration { return 10 * time.Millisecond }))
			f.dispatch(t, "notifications", 5)
			a := f.acks.wait(t, 5)
			if a.Status != "failed" || !strings.Contains(a.Error, "gave up after 2 tries: database busy") || calls.Load() != 2 {
				t.Errorf("ack %+v after %d calls", a, calls.Load())
			}
		})
	})
	t.Run("KilledMidWorkIsRedeliveredAndCompletedOnce", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			ncA, jsA := env.Client(t)
			started := make(chan struct{})
			stopA := runOn(t, jsA, "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
				close(started)
				<-ctx.Done() // never finishes: the process dies first
				return 0, ctx.Err()
			}, mutator.Subject(f.subject), mutator.AckWait(time.Second), mutator.StopTimeout(50*time.Millisecond))
			f.dispatch(t, "notifications", 6)
			<-started
			ncA.Close() // the process is gone: no ack, no nak

			var calls atomic.Int32
			f.start(t, "notifications", func(_ context.Context, c mutator.Command) (int64, error) {
				calls.Add(1)
				return 1, nil
			}, mutator.AckWait(time.Second), mutator.MaxInFlight(1))
			if a := f.acks.wait(t, 6); a.Status != "done" {
				t.Errorf("ack %+v", a)
			}
			// A later command's ack comes after any second ack of task 6 would have.
			f.dispatch(t, "notifications", 7)
			f.acks.wait(t, 7)
			if n := len(f.acks.of(6)); n != 1 || calls.Load() != 2 {
				t.Errorf("task 6 acknowledged %d times after %d handler calls; want once, 2 calls (6 and 7)", n, calls.Load())
			}
			if err := stopA(); err == nil {
				t.Error("Run on a closed connection returned nil, want an error")
			}
		})
	})
	t.Run("GracefulStopFinishesTheWorkAtHand", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			started, release := make(chan struct{}), make(chan struct{})
			stop := f.start(t, "notifications", func(ctx context.Context, c mutator.Command) (int64, error) {
				close(started)
				<-release
				return 3, ctx.Err() // nil: the stop does not cancel the handler's context
			})
			f.dispatch(t, "notifications", 8)
			<-started
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			close(release)
			if err := <-stopped; err != nil {
				t.Errorf("Run = %v, want nil after a stop", err)
			}
			if a := f.acks.wait(t, 8); a != (erasure.Ack{TaskID: 8, Dispatch: dispatchOf(8), Status: "done", Removed: 3}) {
				t.Errorf("ack %+v", a)
			}
			info := consumer(t, env, "erasure-notifications")
			if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
				t.Errorf("consumer after stop: %d ack pending, %d pending, %d redelivered; want none", info.NumAckPending, info.NumPending, info.NumRedelivered)
			}
		})
	})
	t.Run("OtherDatasetOnASharedSubjectIsLeftAlone", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications", "notifications.archive")
			var mu sync.Mutex
			var handled []int64
			f.start(t, "notifications", func(_ context.Context, c mutator.Command) (int64, error) {
				mu.Lock()
				handled = append(handled, c.TaskID)
				mu.Unlock()
				return 0, nil
			}, mutator.MaxInFlight(1))
			f.dispatch(t, "notifications.archive", 9)
			f.dispatch(t, "notifications", 10)
			f.acks.wait(t, 10)
			mu.Lock()
			defer mu.Unlock()
			if !reflect.DeepEqual(handled, []int64{10}) || len(f.acks.of(9)) != 0 {
				t.Errorf("handled %v, acks of task 9 %v; want only task 10 handled", handled, f.acks.of(9))
			}
		})
	})
	t.Run("MaxInFlightBoundsConcurrentHandlers", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			f := setup(t, env, "notifications")
			var now, peak atomic.Int32
			f.start(t, "notifications", func(context.Context, mutator.Command) (int64, error) {
				n := now.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(20 * time.Millisecond) // let the commands overlap
				now.Add(-1)
				return 1, nil
			}, mutator.MaxInFlight(3))
			for task := int64(100); task < 112; task++ {
				f.dispatch(t, "notifications", task)
			}
			for task := int64(100); task < 112; task++ {
				if len(f.acks.of(task)) == 0 {
					f.acks.wait(t, task)
				}
			}
			if p := peak.Load(); p > 3 {
				t.Errorf("%d handlers ran at once, want at most 3", p)
			}
		})
	})
	t.Run("BadArgumentsAreRefused", func(t *testing.T) {
		env := natstest.Embedded(t)
		_, js := env.Client(t)
		h := func(context.Context, mutator.Command) (int64, error) { return 0, nil }
		for name, run := range map[string]func() error{
			"BadDataset": func() error { return mutator.Run(context.Background(), js, "Bad Name", h) },
			"NoHandler":  func() error { return mutator.Run(context.Background(), js, "ok", nil) },
			"NoStream": func() error {
				return mutator.Run(context.Background(), js, "ok", h, mutator.Subject(env.Subject("none")))
			},
			"ZeroFlight": func() error { return mutator.Run(context.Background(), js, "ok", h, mutator.MaxInFlight(0)) },
		} {
			if err := run(); err == nil {
				t.Errorf("%s: Run returned nil", name)
			}
		}
	})
}

func TestIdentifiers_UnmarshalJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mutator.Identifiers
		ok   bool
	}{
		{`{"user_id":"42"}`, mutator.Identifiers{"user_id": {"42"}}, true},
		{`{"email":["a@x","b@x"],"user_id":"7"}`, mutator.Identifiers{"email": {"a@x", "b@x"}, "user_id": {"7"}}, true},
		{`{"user_id":42}`, nil, false},
		{`["42"]`, nil, false},
	} {
		var got mutator.Identifiers
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err == nil) != tc.ok || tc.ok && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func storedAcks(t *testing.T, env *natstest.Env) [][]byte {
	t.Helper()
	ctx := context.Background()
	cons, err := env.Conn.JetStream().OrderedConsumer(ctx, env.Conn.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{env.Prefix + ".ack.>"}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for m := range batch.Messages() {
		out = append(out, m.Data())
	}
	return out
}

func consumer(t *testing.T, env *natstest.Env, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := env.Conn.JetStream().Consumer(context.Background(), env.Conn.Stream(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}
