package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/client"
	natsconn "erasure/connector/nats"
	"erasure/registry"
	"erasure/server"
)

// memory is a dataset held in memory: user ids with data.
type memory struct {
	mu    sync.Mutex
	users map[string]bool
}

func (m *memory) Close() error { return nil }

func (m *memory) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out erasure.Outcome
	for _, id := range s.Values("user_id") {
		if m.users[id] {
			delete(m.users, id)
			out.Removed++
		}
	}
	return out, nil
}

func (m *memory) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range s.Values("user_id") {
		if m.users[id] {
			return true, nil
		}
	}
	return false, nil
}

// memoryDriver builds memory datasets holding users 1 to 9.
type memoryDriver struct{}

func (memoryDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (memoryDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	m := &memory{users: map[string]bool{}}
	for i := 1; i <= 9; i++ {
		m.users[fmt.Sprint(i)] = true
	}
	return m
}

func init() { registry.Register("memory", memoryDriver{}) }

const token = "operator-secret-0123456789"

// open opens a server over a memory dataset and, with async, a nats one on an embedded NATS.
func open(t *testing.T, async bool) *server.Server {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
nats: { port: %d }
auth:
  tokens:
    - { name: operator, secret: "${TOKEN}", roles: [submit, operate] }
identifiers: [user_id]
defaults: { backoff: { initial: 10ms, max: 100ms } }
datasets:
  - { name: profiles, owner: team, connector: memory, memory: {} }
`, filepath.Join(dir, "data"), freePort(t))
	if async {
		yml += "  - { name: notifications, owner: team, connector: nats, nats: { subject: erasure.test.notifications, identifiers: [user_id] } }\n"
	}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { return token, k == "TOKEN" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func submit(t *testing.T, s *server.Server, user string) *erasure.Request {
	t.Helper()
	r, _, err := s.Service.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: user}), Reason: "user_request"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitStatus(t *testing.T, s *server.Server, id string, want erasure.RequestStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.Service.Request(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s is %s, want %s", id, r.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServer_Components(t *testing.T) {
	t.Run("ExecutorAloneCarriesTasksAndStopsWithItsContext", func(t *testing.T) {
		s := open(t, false)
		ctx, cancel := context.WithCancel(t.Context())
		ex := s.Executor()
		if err := ex.Start(ctx); err != nil {
			t.Fatal(err)
		}
		r := submit(t, s, "4")
		waitStatus(t, s, r.ID, erasure.RequestCompleted)
		cancel()
		ex.Wait()
		// Stopped: a new request stays pending.
		r = submit(t, s, "5")
		time.Sleep(50 * time.Millisecond)
		waitStatus(t, s, r.ID, erasure.RequestPending)
	})
	t.Run("HTTPServesUntilItsContextEnds", func(t *testing.T) {
		s := open(t, false)
		ctx, cancel := context.WithCancel(t.Context())
		h := s.HTTP()
		if err := h.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c, _ := client.New(h.URL(), token)
		if err := c.Ready(t.Context()); err != nil {
			t.Fatalf("ready: %v", err)
		}
		r, _, err := c.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "6"}), Reason: "user_request"}, "")
		if err != nil || r.Status != erasure.RequestPending {
			t.Fatalf("submit without an executor: %+v %v", r, err)
		}
		cancel()
		h.Wait()
		if err := c.Ready(t.Context()); erasure.ErrorCode(err) != erasure.EUNAVAILABLE {
			t.Fatalf("ready after stop: %v, want unavailable", err)
		}
	})
	t.Run("NoNATSUnlessAConnectorWantsIt", func(t *testing.T) {
		s := open(t, false)
		if s.NATS != nil {
			t.Fatal("NATS connected for a registry without async datasets")
		}
		if err := s.AckListener().Start(t.Context()); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("ack listener without NATS: %v, want invalid", err)
		}
	})
	t.Run("NATSProvidedToTheConnectors", func(t *testing.T) {
		s := open(t, true)
		if s.NATS == nil {
			t.Fatal("no NATS for an async dataset")
		}
		// Check passes only when the connector holds the connection and the stream
		// captures its subject.
		conn := s.Config.Dataset("notifications").Conn.(*natsconn.Connector)
		if err := conn.Check(t.Context()); err != nil {
			t.Fatalf("the nats connector was not given the server's connection: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		acks := s.AckListener()
		if err := acks.Start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		acks.Wait()
	})
	t.Run("StartRunsEverythingAndCloseStopsIt", func(t *testing.T) {
		s := open(t, false)
		if s.URL() != "" {
			t.Fatalf("URL before Start: %q", s.URL())
		}
		if err := s.Start(t.Context(), "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		c, _ := client.New(s.URL(), token)
		r, _, err := c.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "7"}), Reason: "user_request"}, "")
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, s, r.ID, erasure.RequestCompleted)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Ready(t.Context()); erasure.ErrorCode(err) != erasure.EUNAVAILABLE {
			t.Fatalf("ready after Close: %v, want unavailable", err)
		}
	})
	t.Run("RunStopsWhenItsContextEnds", func(t *testing.T) {
		s := open(t, false)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- server.Run(ctx, s.OverdueWatcher(time.Hour)) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	})
}

// TestServer_MaxDeadlineFromTheRegistry: defaults.max_deadline bounds the deadline a
// submission may ask for.
func TestServer_MaxDeadlineFromTheRegistry(t *testing.T) {
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
identifiers: [user_id]
defaults: { deadline: 5d, max_deadline: 10d }
datasets:
  - { name: profiles, owner: team, connector: memory, memory: {} }
`, filepath.Join(dir, "data"))
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub := func(ahead time.Duration) error {
		_, _, err := s.Service.Submit(t.Context(), erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1"}), Reason: "user_request", Deadline: time.Now().Add(ahead)})
		return err
	}
	if err := sub(20 * 24 * time.Hour); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("a deadline 20 days ahead with max_deadline 10d: %v, want EINVALID", err)
	}
	if err := sub(9 * 24 * time.Hour); err != nil {
		t.Fatalf("a deadline 9 days ahead: %v", err)
	}
}

// TestServer_RequestSaysWhetherAnythingWasFound: a completed request says found false when no
// dataset held anything of the subject, with each task's note saying why, and found true
// otherwise; an open request says nothing.
func TestServer_RequestSaysWhetherAnythingWasFound(t *testing.T) {
	s := open(t, false)
	if err := s.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(s.URL(), token)
	nobody := submit(t, s, "12345") // the memory dataset holds users 1 to 9
	somebody := submit(t, s, "3")
	if nobody.Found != nil {
		t.Fatalf("an open request says found %v", *nobody.Found)
	}
	waitStatus(t, s, nobody.ID, erasure.RequestCompleted)
	waitStatus(t, s, somebody.ID, erasure.RequestCompleted)
	for _, tc := range []struct {
		id    string
		found bool
	}{{nobody.ID, false}, {somebody.ID, true}} {
		r, err := c.Request(t.Context(), tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Found == nil || *r.Found != tc.found {
			t.Fatalf("request %s: found %v, want %v", tc.id, r.Found, tc.found)
		}
	}
	page, err := c.Requests(t.Context(), erasure.RequestFilter{})
	if err != nil || len(page.Requests) != 2 || page.Requests[0].Found == nil {
		t.Fatalf("listing: %+v %v", page, err)
	}
}
