package natsconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"erasure"
	"erasure/audit"
	"erasure/connector/nats"
	"erasure/connector/nats/natstest"
	"erasure/mutator"
)

var schemaDir = filepath.Join("..", "..", "docs", "schemas")

func loadSchema(t *testing.T, name string) natstest.Schema {
	t.Helper()
	s, err := natstest.LoadSchema(filepath.Join(schemaDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bound returns a connector for dataset on env's subject name, bound to env's Conn, with the
// stream covering its subject.
func bound(t *testing.T, env *natstest.Env, dataset, name string, keys ...string) *natsconn.Connector {
	t.Helper()
	c, err := natsconn.New(dataset, env.Subject(name), keys)
	if err != nil {
		t.Fatal(err)
	}
	subjects := natsconn.Bind([]*erasure.Dataset{{Name: dataset, Conn: c}}, env.Conn)
	if err := env.Conn.EnsureStream(context.Background(), subjects); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return c
}

// testHasher keys the dispatch ids of the commands the tests send.
var testHasher = func() erasure.Hasher {
	h, err := audit.NewHasher([]byte("natsconn-test-key-0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return h
}()

// dispatchID is the dispatch id of task's attempt in the tests' deployment.
func dispatchID(task int64, attempt int) string {
	return erasure.DispatchID(testHasher, "test-deployment", task, attempt)
}

func command(task int64, attempt int, ids ...erasure.Identifier) erasure.Command {
	return erasure.Command{
		TaskID: task, RequestID: "req_0001", Dataset: "notifications", Attempt: attempt, Dispatch: dispatchID(task, attempt),
		Identifiers: erasure.NewSubject(ids...),
		Deadline:    time.Date(2026, 12, 24, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func id(typ, v string) erasure.Identifier { return erasure.Identifier{Type: typ, Value: v} }

// stored returns every message of the env's stream on subject.
func stored(t *testing.T, env *natstest.Env, subject string) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	cons, err := env.Conn.JetStream().OrderedConsumer(ctx, env.Conn.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func TestSchemaChecker_RejectsWhatTheSchemaForbids(t *testing.T) {
	schema := loadSchema(t, "command.schema.json")
	good := `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"erasure.ack.d"}`
	if p := schema.Validate([]byte(good)); len(p) != 0 {
		t.Fatalf("a valid command is rejected: %v", p)
	}
	for name, doc := range map[string]string{
		"ExtraField":         `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a","x":1}`,
		"MissingTaskID":      `{"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"TaskIDString":       `{"task_id":"1","request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"IdentifierNumber":   `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":42},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"OneValueAsArray":    `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":["42"]},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"NoIdentifiers":      `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"DeadlineNotRFC3339": `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"24/12/2026","ack_subject":"a"}`,
		"MissingDispatch":    `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"DispatchNotHex":     `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"7-1","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"AttemptZero":        `{"task_id":1,"request_id":"r","dataset":"d","attempt":0,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a"}`,
		"CanaryFalse":        `{"task_id":1,"request_id":"r","dataset":"d","attempt":1,"dispatch":"0123456789abcdef0123456789abcdef","identifiers":{"user_id":"42"},"deadline":"2026-12-24T09:00:00Z","ack_subject":"a","canary":false}`,
	} {
		t.Run(name, func(t *testing.T) {
			if p := schema.Validate([]byte(doc)); len(p) == 0 {
				t.Errorf("schema check accepted %s", doc)
			}
		})
	}
}

func TestConnector_Dispatch(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx := context.Background()
		t.Run("CommandMatchesSchema", func(t *testing.T) {
			c := bound(t, env, "notifications", "notifications", "user_id", "email")
			cmd := command(7, 1, id("user_id", "42"), id("email", "a@example.com"), id("email", "b@example.com"), id("phone", "+3312345678"))
			if err := c.Dispatch(ctx, cmd); err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			msgs := stored(t, env, env.Subject("notifications"))
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want 1", len(msgs))
			}
			data := msgs[0].Data()
			if p := loadSchema(t, "command.schema.json").Validate(data); len(p) != 0 {
				t.Fatalf("command %s breaks the schema: %v", data, p)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"task_id": 7.0, "request_id": "req_0001", "dataset": "notifications", "attempt": 1.0, "dispatch": dispatchID(7, 1),
				"identifiers": map[string]any{"user_id": "42", "email": []any{"a@example.com", "b@example.com"}},
				"deadline":    "2026-12-24T09:00:00Z",
				"ack_subject": env.Conn.AckSubject("notifications"),
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("command\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if h := msgs[0].Headers().Get(jetstream.MsgIDHeader); h != dispatchID(7, 1) {
				t.Errorf("Nats-Msg-Id = %q, want the dispatch id %s", h, dispatchID(7, 1))
			}
		})
		t.Run("CanaryCommandSaysSo", func(t *testing.T) {
			c := bound(t, env, "canaries", "canaries", "user_id")
			cmd := command(8, 1, id("user_id", "erasure-canary-1"))
			cmd.Canary = true
			if err := c.Dispatch(ctx, cmd); err != nil {
				t.Fatalf("Dispatch: %v", err)
			}
			msgs := stored(t, env, env.Subject("canaries"))
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored", len(msgs))
			}
			data := msgs[0].Data()
			if p := loadSchema(t, "command.schema.json").Validate(data); len(p) != 0 {
				t.Fatalf("canary command %s breaks the schema: %v", data, p)
			}
			var got mutator.Command
			if err := json.Unmarshal(data, &got); err != nil || !got.Canary || !strings.Contains(string(data), `"canary":true`) {
				t.Fatalf("canary command %s (%v): want \"canary\": true, read by the mutator", data, err)
			}
		})
		t.Run("SameAttemptTwiceIsStoredOnce", func(t *testing.T) {
			c := bound(t, env, "dedup", "dedup", "user_id")
			for _, attempt := range []int{1, 1, 2, 2, 1} {
				if err := c.Dispatch(ctx, command(9, attempt, id("user_id", "42"))); err != nil {
					t.Fatalf("Dispatch attempt %d: %v", attempt, err)
				}
			}
			msgs := stored(t, env, env.Subject("dedup"))
			var ids []string
			for _, m := range msgs {
				ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
			}
			if len(ids) != 2 || ids[0] != dispatchID(9, 1) || ids[1] != dispatchID(9, 2) {
				t.Errorf("stored message ids %v, want the dispatch ids of attempts 1 and 2", ids)
			}
		})
		t.Run("UnboundIsPermanent", func(t *testing.T) {
			c, err := natsconn.New("lonely", env.Subject("lonely"), []string{"user_id"})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Dispatch(ctx, command(1, 1, id("user_id", "42")))
			if !erasure.IsPermanent(err) {
				t.Errorf("Dispatch unbound = %v, want a permanent error", err)
			}
		})
		t.Run("NoStreamIsTransient", func(t *testing.T) {
			c, err := natsconn.New("nostream", env.Subject("nostream"), []string{"user_id"})
			if err != nil {
				t.Fatal(err)
			}
			natsconn.Bind([]*erasure.Dataset{{Name: "nostream", Conn: c}}, env.Conn)
			err = c.Dispatch(ctx, command(1, 1, id("user_id", "42")))
			var tr *erasure.TransientError
			if !errors.As(err, &tr) {
				t.Errorf("Dispatch to a subject no stream captures = %v, want a transient error", err)
			}
		})
		t.Run("NoIdentifierOfItsTypesIsPermanentAndPublishesNothing", func(t *testing.T) {
			c := bound(t, env, "byemail", "byemail", "email")
			err := c.Dispatch(ctx, command(3, 1, id("user_id", "42")))
			if !erasure.IsPermanent(err) {
				t.Errorf("Dispatch = %v, want a permanent error", err)
			}
			if n := len(stored(t, env, env.Subject("byemail"))); n != 0 {
				t.Errorf("%d messages stored, want 0", n)
			}
		})
		t.Run("CheckFindsTheStream", func(t *testing.T) {
			c := bound(t, env, "checked", "checked", "user_id")
			if err := c.Check(ctx); err != nil {
				t.Errorf("Check = %v", err)
			}
			other, _ := natsconn.New("unchecked", env.Subject("unchecked"), []string{"user_id"})
			natsconn.Bind([]*erasure.Dataset{{Name: "unchecked", Conn: other}}, env.Conn)
			if err := other.Check(ctx); err == nil {
				t.Error("Check of a subject no stream captures passed")
			}
		})
	})
}

func TestConn_EnsureStream(t *testing.T) {
	natstest.Each(t, func(t *testing.T, env *natstest.Env) {
		ctx := context.Background()
		a, b := env.Subject("a"), env.Subject("b")
		if err := env.Conn.EnsureStream(ctx, []string{a}); err != nil {
			t.Fatal(err)
		}
		if err := env.Conn.EnsureStream(ctx, []string{b}); err != nil {
			t.Fatal(err)
		}
		s, err := env.Conn.JetStream().Stream(ctx, env.Conn.Stream())
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		for _, want := range []string{a, b, env.Prefix + ".ack.>"} {
			found := false
			for _, got := range cfg.Subjects {
				found = found || got == want
			}
			if !found {
				t.Errorf("stream subjects %v lack %s", cfg.Subjects, want)
			}
		}
		if cfg.Duplicates < 2*time.Minute || cfg.Storage != jetstream.FileStorage {
			t.Errorf("stream duplicates %s storage %s, want ≥ 2m and file", cfg.Duplicates, cfg.Storage)
		}
		for _, bad := range []string{env.Prefix + ".*", env.Prefix + ".>", "", "a..b", "$JS.API.x", "has space"} {
			if err := env.Conn.EnsureStream(ctx, []string{bad}); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("EnsureStream(%q) = %v, want EINVALID", bad, err)
			}
		}
	})
}
