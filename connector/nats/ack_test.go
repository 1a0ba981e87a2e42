package natsconn_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
)

// applied records the acknowledgements apply was called with and answers with the errors
// of next (nil when empty).
type applied struct {
	mu    sync.Mutex
	calls []call
	next  []error
	seen  chan call
}

type call struct {
	Dataset string
	Ack     erasure.Ack
}

func newApplied(next ...error) *applied { return &applied{next: next, seen: make(chan call, 1000)} }

func (a *applied) apply(_ context.Context, dataset string, ack erasure.Ack) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := call{dataset, ack}
	a.calls = append(a.calls, c)
	a.seen <- c
	if len(a.next) > 0 {
		err := a.next[0]
		a.next = a.next[1:]
		return err
	}
	return nil
}

func (a *applied) Calls() []call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]call(nil), a.calls...)
}

// waitFor waits until apply was called for task, failing the test after a generous bound.
func (a *applied) waitFor(t *testing.T, task int64) call {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case c := <-a.seen:
			if c.Ack.TaskID == task {
				return c
			}
		case <-timeout:
			t.Fatalf("apply was never called for task %d (calls: %v)", task, a.Calls())
		}
	}
}

func listen(t *testing.T, env *natstest.Env, a *applied) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := env.Conn.EnsureStream(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := env.Conn.ListenAcks(ctx, a.apply); err != nil {
		t.Fatalf("ListenAcks: %v", err)
	}
}

// publish publishes data on subject through JetStream, as a service would.
func publish(t *testing.T, env *natstest.Env, subject, data string) {
	t.Helper()
	if _, err := env.Conn.JetStream().Publish(context.Background(), subject, []byte(data)); err != nil {
		t.Fatalf("publishing on %s: %v", subject, err)
	}
}

// anyDispatch is a well-formed dispatch id, for the tests where no pipeline checks it.
const anyDispatch = "00112233445566778899aabbccddeeff"

func TestConn_ListenAcks(t *testing.T) {
	t.Run("AppliesAValidAckWithItsDataset", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			a := newApplied()
			listen(t, env, a)
			publish(t, env, env.Conn.AckSubject("accounts.users"), `{"task_id":11,"dispatch":"00112233445566778899aabbccddeeff","status":"done","removed":3}`)
			got := a.waitFor(t, 11)
			want := call{"accounts.users", erasure.Ack{TaskID: 11, Dispatch: anyDispatch, Status: "done", Removed: 3}}
			if got != want {
				t.Errorf("apply got %+v, want %+v", got, want)
			}
		})
	})
	t.Run("MalformedAcksAreRejectedAndLoggedWithoutApply", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			a := newApplied()
			listen(t, env, a)
			const secret = "alice@example.com"
			bad := []struct{ name, subject, data string }{
				{"BadJSON", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done"` + secret},
				{"NotAnObject", "ds", `["` + secret + `"]`},
				{"UnknownField", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done","email":"` + secret + `"}`},
				{"MissingTaskID", "ds", `{"status":"done"}`},
				{"TaskIDString", "ds", `{"task_id":"1","status":"done"}`},
				{"TaskIDZero", "ds", `{"task_id":0,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`},
				{"BadStatus", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"` + secret + `"}`},
				{"MissingStatus", "ds", `{"task_id":1}`},
				{"FailedWithoutError", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"failed"}`},
				{"NegativeRemoved", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done","removed":-1}`},
				{"TrailingData", "ds", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done"} {"task_id":2,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`},
				{"Empty", "ds", ``},
				{"SubjectNamesNoDataset", "Bad_Dataset", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`},
			}
			for _, b := range bad {
				publish(t, env, env.Conn.AckSubject(b.subject), b.data)
			}
			// Acks are applied in stream order: once the sentinel is applied, every malformed
			// ack before it has been handled.
			publish(t, env, env.Conn.AckSubject("ds"), `{"task_id":99,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`)
			a.waitFor(t, 99)
			if calls := a.Calls(); len(calls) != 1 {
				t.Errorf("apply called %d times, want once (for the sentinel): %+v", len(calls), calls)
			}
			if n := env.Logs.Count("acknowledgement rejected"); n != len(bad) {
				t.Errorf("%d rejections logged, want %d:\n%s", n, len(bad), strings.Join(env.Logs.Lines(), "\n"))
			}
			for _, l := range env.Logs.Lines() {
				if strings.Contains(l, secret) {
					t.Errorf("a log line carries an identifier value: %s", l)
				}
			}
		})
	})
	t.Run("RejectedByApplyIsNotDeliveredAgain", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			a := newApplied(erasure.Errorf(erasure.ENOTFOUND, "task 5 is not a task of ds"))
			listen(t, env, a)
			publish(t, env, env.Conn.AckSubject("ds"), `{"task_id":5,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`)
			publish(t, env, env.Conn.AckSubject("ds"), `{"task_id":6,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`)
			a.waitFor(t, 6)
			if calls := a.Calls(); len(calls) != 2 || calls[0].Ack.TaskID != 5 {
				t.Errorf("apply calls %+v, want task 5 once then task 6", calls)
			}
			info := consumerInfo(t, env)
			if info.NumRedelivered != 0 || info.NumPending != 0 {
				t.Errorf("ack consumer: %d redelivered, %d pending; want none", info.NumRedelivered, info.NumPending)
			}
		})
	})
	t.Run("PassingApplyFailureIsDeliveredAgain", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			a := newApplied(erasure.Errorf(erasure.EUNAVAILABLE, "store is down"))
			listen(t, env, a)
			publish(t, env, env.Conn.AckSubject("ds"), `{"task_id":8,"dispatch":"00112233445566778899aabbccddeeff","status":"failed","error":"disk full"}`)
			first := a.waitFor(t, 8)
			second := a.waitFor(t, 8)
			if first != second || second.Ack.Error != "disk full" {
				t.Errorf("deliveries %+v then %+v, want the same failed ack twice", first, second)
			}
		})
	})
	t.Run("AcksPublishedWhileNotListeningAreAppliedLater", func(t *testing.T) {
		natstest.Each(t, func(t *testing.T, env *natstest.Env) {
			if err := env.Conn.EnsureStream(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			publish(t, env, env.Conn.AckSubject("ds"), `{"task_id":21,"dispatch":"00112233445566778899aabbccddeeff","status":"done","removed":1}`)
			a := newApplied()
			listen(t, env, a)
			if got := a.waitFor(t, 21); got.Ack.Removed != 1 {
				t.Errorf("apply got %+v", got)
			}
		})
	})
}

func consumerInfo(t *testing.T, env *natstest.Env) *struct{ NumRedelivered, NumPending, NumAckPending int } {
	t.Helper()
	cons, err := env.Conn.JetStream().Consumer(context.Background(), env.Conn.Stream(), natsconn.DefaultAckConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &struct{ NumRedelivered, NumPending, NumAckPending int }{info.NumRedelivered, int(info.NumPending), info.NumAckPending}
}

func TestDecodeAck(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     erasure.Ack
		code     string
	}{
		{"Done", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done","removed":2}`, erasure.Ack{TaskID: 1, Dispatch: anyDispatch, Status: "done", Removed: 2}, ""},
		{"DoneWithoutRemoved", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`, erasure.Ack{TaskID: 1, Dispatch: anyDispatch, Status: "done"}, ""},
		{"Failed", `{"task_id":3,"dispatch":"00112233445566778899aabbccddeeff","status":"failed","error":"quota"}`, erasure.Ack{TaskID: 3, Dispatch: anyDispatch, Status: "failed", Error: "quota"}, ""},
		{"Huge", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"done","error":"` + strings.Repeat("x", natsconn.MaxAckBytes) + `"}`, erasure.Ack{}, erasure.ETOOLARGE},
		{"LongError", `{"task_id":1,"dispatch":"00112233445566778899aabbccddeeff","status":"failed","error":"` + strings.Repeat("x", natsconn.MaxAckError+1) + `"}`, erasure.Ack{}, erasure.EINVALID},
		{"Float", `{"task_id":1.5,"dispatch":"00112233445566778899aabbccddeeff","status":"done"}`, erasure.Ack{}, erasure.EINVALID},
		{"Null", `null`, erasure.Ack{}, erasure.EINVALID},
		{"NoDispatch", `{"task_id":1,"status":"done"}`, erasure.Ack{}, erasure.EINVALID},
		{"DispatchOfV1", `{"task_id":1,"dispatch":"1-1","status":"done"}`, erasure.Ack{}, erasure.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := natsconn.DecodeAck([]byte(tc.in))
			if erasure.ErrorCode(err) != tc.code || got != tc.want {
				t.Errorf("DecodeAck = %+v, %v; want %+v, code %q", got, err, tc.want, tc.code)
			}
		})
	}
}

// TestDocsConsumer_TakesPart is a consumer written from docs/async.md alone, with nats.go and
// no mutator: it reads a command as plain JSON and acknowledges it as the page says, as the
// dataset's own user on the embedded server.
func TestDocsConsumer_TakesPart(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx := context.Background()
		c := bound(t, env, "notifications", "notifications", "user_id")
		a := newApplied()
		listen(t, env, a)
		if err := c.Dispatch(ctx, command(31, 1, id("user_id", "42"))); err != nil {
			t.Fatal(err)
		}
		credsFile := env.CredentialsFile(t, "notifications") // erasure nats credentials notifications --out FILE
		url := env.URL

		// --- from docs/async.md, "A consumer without the mutator package" ---
		var creds struct {
			URL         string `json:"url"`
			User        string `json:"user"`
			Password    string `json:"password"`
			InboxPrefix string `json:"inbox_prefix"`
		}
		opts := []nats.Option{}
		if credsFile != "" { // the embedded server: credentials from erasure nats credentials
			data, err := os.ReadFile(credsFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &creds); err != nil {
				t.Fatal(err)
			}
			url = creds.URL
			opts = append(opts, nats.UserInfo(creds.User, creds.Password), nats.CustomInboxPrefix(creds.InboxPrefix))
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		subject := env.Subject("notifications") // the dataset's nats.subject
		stream, err := js.StreamNameBySubject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       "erasure-notifications", // erasure-<dataset>, dots as _
			FilterSubject: subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := cons.Next()
		if err != nil {
			t.Fatal(err)
		}
		var cmd struct {
			TaskID      int64          `json:"task_id"`
			Dispatch    string         `json:"dispatch"`
			Identifiers map[string]any `json:"identifiers"`
			AckSubject  string         `json:"ack_subject"`
		}
		if err := json.Unmarshal(msg.Data(), &cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.Identifiers["user_id"] != "42" {
			t.Fatalf("identifiers = %v", cmd.Identifiers)
		}
		removed := 1 // what erasing user 42's notifications removed
		ack, _ := json.Marshal(map[string]any{"task_id": cmd.TaskID, "dispatch": cmd.Dispatch, "status": "done", "removed": removed})
		if _, err := js.Publish(ctx, cmd.AckSubject, ack, jetstream.WithMsgID(cmd.Dispatch+"-ack")); err != nil {
			t.Fatal(err)
		}
		if err := msg.Ack(); err != nil {
			t.Fatal(err)
		}
		// --- end ---

		got := a.waitFor(t, 31)
		if got != (call{"notifications", erasure.Ack{TaskID: 31, Dispatch: dispatchID(31, 1), Status: "done", Removed: 1}}) {
			t.Errorf("apply got %+v", got)
		}
	})
}
