// Package natstest runs tests of the nats connector and of its users against both NATS servers
// erasure supports: the embedded one (started in a temporary directory on a random port) and
// the real one at ERASURE_TEST_NATS. Every environment has its own stream, subject prefix and
// acknowledgement prefix, so tests can share the real server; the stream is deleted after.
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"erasure/connector/nats"
	"erasure/internal/testenv"
	"erasure/registry"
)

// Env is one NATS server with a private stream and subject prefix.
type Env struct {
	Conn *natsconn.Conn
	// URL reaches the server from a separate client connection.
	URL string
	// Prefix is this environment's subject prefix; acknowledgements go under Prefix+".ack".
	Prefix string
	// Logs holds what Conn logged.
	Logs *Recorder

	embedded bool
}

// Subject returns a command subject private to this environment.
func (e *Env) Subject(name string) string { return e.Prefix + "." + name }

// Client opens a separate connection to the server as erasure itself (with its credentials on
// the embedded server), closed at the end of the test, and returns its JetStream context.
func (e *Env) Client(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	var opts []nats.Option
	if e.Embedded() {
		creds, err := e.Conn.AdminCredentials()
		if err != nil {
			t.Fatal(err)
		}
		opts = creds.Options()
	}
	return e.connect(t, opts...)
}

// Embedded reports whether the environment is the embedded server (which requires
// credentials), not the external one.
func (e *Env) Embedded() bool { return e.embedded }

// Credentials returns the credentials of dataset's user on the embedded server. On the
// external test server, which has no users, they hold its URL alone.
func (e *Env) Credentials(t testing.TB, dataset string) natsconn.Credentials {
	t.Helper()
	if !e.Embedded() {
		return natsconn.Credentials{URL: e.URL}
	}
	creds, err := e.Conn.Credentials(dataset)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// CredentialsFile writes dataset's credentials (Credentials) to a file, as `erasure nats
// credentials DATASET --out FILE` does, and returns its path; "" on the external server.
func (e *Env) CredentialsFile(t testing.TB, dataset string) string {
	t.Helper()
	if !e.Embedded() {
		return ""
	}
	data, err := json.Marshal(e.Credentials(t, dataset))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), dataset+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientAs opens a separate connection as dataset's user (see Credentials).
func (e *Env) ClientAs(t testing.TB, dataset string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	creds := e.Credentials(t, dataset)
	var opts []nats.Option
	if e.Embedded() {
		opts = creds.Options()
	}
	return e.connect(t, opts...)
}

func (e *Env) connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(e.URL, append([]nats.Option{nats.Name("erasure-test-client")}, opts...)...)
	if err != nil {
		t.Fatalf("connecting a client to %s: %v", e.URL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Each runs f as the subtests "embedded" and "external", each with a fresh Env. The external
// one skips when ERASURE_TEST_NATS is unset (fails with ERASURE_TEST_REQUIRE_SERVICES=1).
func Each(t *testing.T, f func(t *testing.T, env *Env)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { f(t, Embedded(t)) })
	t.Run("external", func(t *testing.T) { f(t, External(t)) })
}

// Embedded starts an embedded server for the test.
func Embedded(t testing.TB) *Env {
	t.Helper()
	return open(t, registry.NATS{Port: -1}, t.TempDir())
}

// External connects to the server at ERASURE_TEST_NATS.
func External(t testing.TB) *Env {
	t.Helper()
	url := testenv.Address(t, "ERASURE_TEST_NATS")
	return open(t, registry.NATS{URL: url}, "")
}

func open(t testing.TB, cfg registry.NATS, dir string) *Env {
	t.Helper()
	logs := &Recorder{}
	cfg.Stream = testenv.Name("ERASURE_TEST")
	prefix := testenv.Name("t")
	conn, err := natsconn.Connect(cfg, dir, slog.New(logs), natsconn.WithAckPrefix(prefix+".ack"))
	if err != nil {
		if cfg.URL != "" {
			testenv.Unavailable(t, "ERASURE_TEST_NATS", err)
		}
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := conn.DeleteStream(ctx); err != nil {
			t.Errorf("deleting stream %s: %v", conn.Stream(), err)
		}
		conn.Close()
	})
	url := cfg.URL
	if url == "" {
		url = conn.ClientURL()
	}
	return &Env{Conn: conn, URL: url, Prefix: prefix, Logs: logs, embedded: cfg.URL == ""}
}

// Recorder is a slog.Handler that keeps every record, rendered as text, for assertions.
type Recorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
	group string
	root  *Recorder
}

func (r *Recorder) base() *Recorder {
	if r.root != nil {
		return r.root
	}
	return r
}

// Enabled implements slog.Handler; every level is kept.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s%s=%v", r.group, a.Key, a.Value)
		return true
	})
	root := r.base()
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	root.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &Recorder{root: r.base(), group: r.group, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(name string) slog.Handler {
	return &Recorder{root: r.base(), group: r.group + name + ".", attrs: r.attrs}
}

// Lines returns the records so far.
func (r *Recorder) Lines() []string {
	root := r.base()
	root.mu.Lock()
	defer root.mu.Unlock()
	return append([]string(nil), root.lines...)
}

// Count returns how many records contain s.
func (r *Recorder) Count(s string) int {
	n := 0
	for _, l := range r.Lines() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
