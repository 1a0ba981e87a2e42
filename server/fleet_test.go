package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
	"erasure/internal/testenv"
	"erasure/registry"
	"erasure/server"
)

const auditKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// config parses a configuration of one memory dataset with the given store section.
func config(t *testing.T, storeSection string) *registry.Config {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q, lease: 2s }
%s
audit: { key: "${AUDIT_KEY}", signing_key: "${SIGNING_KEY}" }
auth:
  tokens:
    - { name: operator, secret: "${TOKEN}", roles: [submit, operate] }
identifiers: [user_id]
defaults: { backoff: { initial: 10ms, max: 100ms }, timeout: 1s }
datasets:
  - { name: profiles, owner: team, connector: memory, memory: {} }
`, filepath.Join(dir, "data"), storeSection)
	env := map[string]string{"TOKEN": token, "AUDIT_KEY": auditKey, "SIGNING_KEY": "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openConfig(t *testing.T, cfg *registry.Config) *server.Server {
	t.Helper()
	s, err := server.Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pgStore returns the store section of a fresh PostgreSQL schema.
func pgStore(t *testing.T) string {
	return fmt.Sprintf("store: { dsn: %q }", testenv.PostgresSchema(t, "fleet"))
}

func TestServer_SQLiteDataDirHasOneOwner(t *testing.T) {
	cfg := config(t, "")
	first := openConfig(t, cfg)
	_, err := server.Open(t.Context(), cfg, nil)
	if erasure.ErrorCode(err) != erasure.ECONFLICT || !strings.Contains(err.Error(), "in use by process") || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("a second server on the data dir: %v; want ECONFLICT naming the process and the way out", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := openConfig(t, cfg)
	if again.Shared {
		t.Fatal("SQLite reported as shared")
	}
	if err := again.StartWorker(t.Context()); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("a worker on SQLite: %v, want EINVALID", err)
	}
}

func TestServer_SharedStore(t *testing.T) {
	t.Run("NeedsTheAuditKeyInTheConfiguration", func(t *testing.T) {
		cfg := config(t, pgStore(t))
		cfg.Audit.Key = ""
		if _, err := server.Open(t.Context(), cfg, nil); erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), "audit.key") {
			t.Fatalf("shared store without audit.key: %v", err)
		}
		cfg = config(t, pgStore(t))
		cfg.Audit.SigningKey = ""
		if _, err := server.Open(t.Context(), cfg, nil); erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), "audit.signing_key") {
			t.Fatalf("shared store without audit.signing_key: %v", err)
		}
	})
	t.Run("ProcessesShareTheDataDirAndTheWork", func(t *testing.T) {
		section := pgStore(t)
		cfg := config(t, section)
		a := openConfig(t, cfg)
		b := openConfig(t, config(t, section)) // no data dir lock on a shared store
		if !a.Shared || a.Deployment != b.Deployment {
			t.Fatalf("shared %v, deployments %q and %q", a.Shared, a.Deployment, b.Deployment)
		}
		// a's engine holds a task (its process is slow); b starts and must not take it.
		r := submit(t, a, "3")
		held, err := a.Store.LeaseTasks(t.Context(), "slow-process", 10, time.Hour)
		if err != nil || len(held) != 1 {
			t.Fatalf("lease: %+v %v", held, err)
		}
		if err := b.StartWorker(t.Context()); err != nil {
			t.Fatal(err)
		}
		other := submit(t, a, "4")
		waitStatus(t, b, other.ID, erasure.RequestCompleted)
		got, err := b.Service.Request(t.Context(), r.ID)
		if err != nil || got.Tasks[0].State != erasure.TaskRunning || got.Tasks[0].Attempts != 1 {
			t.Fatalf("a starting worker took over another's lease: %+v %v", got.Tasks, err)
		}
	})
}

func TestLeadership_OneLeaderAndATakeover(t *testing.T) {
	section := pgStore(t)
	var servers []*server.Server
	var leaderships []*server.Leadership
	var running atomic.Int64 // leader parts running at once, over all processes
	var most atomic.Int64
	for i := 0; i < 3; i++ {
		s := openConfig(t, config(t, section))
		l := &server.Leadership{Election: server.StoreElection{DB: s.Store}, Retry: 50 * time.Millisecond, Grace: 2 * time.Second,
			Parts: []func() server.Component{func() server.Component { return &counting{running: &running, most: &most} }}}
		ctx, cancel := context.WithCancel(t.Context())
		if err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); l.Wait() })
		servers = append(servers, s)
		leaderships = append(leaderships, l)
	}
	leader := func() int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, who := 0, -1
			for i, l := range leaderships {
				if l.Leading() {
					n, who = n+1, i
				}
			}
			if n == 1 {
				return who
			}
			if n > 1 {
				t.Fatalf("%d processes lead at once", n)
			}
			if time.Now().After(deadline) {
				t.Fatal("nobody leads")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first := leader()
	// The leader's connection to the store breaks (its session is ended on the server): the
	// lock is free at once; the leader notices within a ping and stops its parts before the
	// next leader, after its grace, starts its own.
	start := time.Now()
	var killed int
	err := servers[(first+1)%3].Store.SQL().QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('erasure.leader:' || current_schema(), 0)`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("ending the leader's session: %d sessions, %v", killed, err)
	}
	next := -1
	for next = leader(); next == first; next = leader() {
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the takeover took %s", took)
	}
	if most.Load() != 1 {
		t.Fatalf("%d leader parts ran at once, want 1", most.Load())
	}
	if leaderships[first].Leading() || leaderships[first].Terms() != 1 {
		t.Fatalf("the old leader still leads (%d terms)", leaderships[first].Terms())
	}
	t.Logf("process %d led, died; process %d leads %s later", first, next, time.Since(start).Round(time.Millisecond))
}

// counting is a leader part counting how many run at once.
type counting struct {
	running, most *atomic.Int64
	done          chan struct{}
}

func (c *counting) Start(ctx context.Context) error {
	n := c.running.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	c.done = make(chan struct{})
	go func() { <-ctx.Done(); c.running.Add(-1); close(c.done) }()
	return nil
}

func (c *counting) Wait() {
	if c.done != nil {
		<-c.done
	}
}

// flaky is an election whose leads are lost on demand.
type flaky struct{ lost chan chan struct{} }

type flakyLead struct{ lost chan struct{} }

func (l flakyLead) Lost() <-chan struct{} { return l.lost }
func (l flakyLead) Release()              {}

// TryLead leads when the test put a lost channel in f.lost for the lead to come.
func (f *flaky) TryLead(ctx context.Context) (server.Lead, error) {
	select {
	case c := <-f.lost:
		return flakyLead{c}, nil
	default:
		return nil, nil
	}
}

func TestLeadership_LostLeadStopsItsParts(t *testing.T) {
	f := &flaky{lost: make(chan chan struct{}, 1)}
	var running, most atomic.Int64
	l := &server.Leadership{Election: f, Retry: 10 * time.Millisecond,
		Parts: []func() server.Component{func() server.Component { return &counting{running: &running, most: &most} }}}
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); l.Wait() }()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	lostFirst := make(chan struct{})
	f.lost <- lostFirst
	waitFor("the first lead", func() bool { return l.Leading() && running.Load() == 1 })
	close(lostFirst)
	waitFor("the parts to stop", func() bool { return !l.Leading() && running.Load() == 0 })
	f.lost <- make(chan struct{})
	waitFor("the second lead", func() bool { return l.Leading() && running.Load() == 1 && l.Terms() == 2 })
}
