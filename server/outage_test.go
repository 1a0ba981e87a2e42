package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"erasure"
	"erasure/client"
	_ "erasure/connector/http"
	_ "erasure/connector/redis"
	"erasure/internal/testenv"
	"erasure/registry"
	"erasure/server"
	"erasure/store/sqlite"
)

// logBuffer keeps a server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tcpProxy forwards connections to a service; down cuts them all and refuses new ones, as a
// network outage or a dead server would.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if down || err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.setDown() })
	return p
}

func (p *tcpProxy) setDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// privateNATS runs a NATS server with JetStream for one test.
func privateNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("the private NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

var (
	repeatedGroup = regexp.MustCompile(`(?:^| )([a-z_]+)\.([a-z_]+\.)*([a-z_]+)=`)
	foldedMessage = regexp.MustCompile(`msg="?(DEBUG|INFO|WARN|ERROR) `)
)

// checkLogLines fails t for a line whose attribute keys repeat a group ("nats.nats.url"), that
// holds another logger's line in its message, or that holds secret.
func checkLogLines(t *testing.T, logs, secret string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, secret) {
			t.Errorf("a log line holds an identifier: %s", line)
		}
		if foldedMessage.MatchString(line) {
			t.Errorf("a log line is folded into another's message: %s", line)
		}
		for _, m := range repeatedGroup.FindAllStringSubmatch(line, -1) {
			parts := strings.Split(strings.TrimSuffix(strings.TrimSpace(m[0]), "="), ".")
			for i := 1; i < len(parts); i++ {
				if parts[i] == parts[i-1] {
					t.Errorf("attribute %s repeats its group: %s", strings.TrimSpace(m[0]), line)
				}
			}
		}
	}
}

// TestOutage_Visible: while an HTTP service, Redis and NATS are down, the server stays ready
// (it still takes requests), each dataset's health counts its failed attempts with the last
// error and since when, each failed attempt logs a line (without identifiers), and the attempts
// metric counts them per dataset; while the store cannot write, /readyz fails.
func TestOutage_Visible(t *testing.T) {
	redisURL, err := url.Parse(testenv.Address(t, "ERASURE_TEST_REDIS"))
	if err != nil {
		t.Fatal(err)
	}
	redisProxy := newTCPProxy(t, redisURL.Host)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	ns := privateNATS(t)
	prefix := testenv.Name("outage")

	dir := t.TempDir()
	redisTarget := *redisURL
	redisTarget.Host = redisProxy.ln.Addr().String()
	yml := fmt.Sprintf(`version: 1
server: { data_dir: %q }
nats: { url: %q, stream: %s, ack_prefix: %s.ack }
auth:
  tokens:
    - { name: operator, secret: "${TOKEN}", roles: [submit, operate] }
identifiers: [user_id]
defaults: { max_attempts: 10000, backoff: { initial: 20ms, max: 100ms }, timeout: 1s }
datasets:
  - name: web
    owner: team
    connector: http
    http: { erase: { method: DELETE, url: "%s/users/{user_id}" } }
  - { name: cache, owner: team, connector: redis, redis: { url: %q, keys: ["%s:{user_id}"] } }
  - { name: messages, owner: team, connector: nats, nats: { subject: %s.messages, identifiers: [user_id] } }
`, filepath.Join(dir, "data"), ns.ClientURL(), strings.ToUpper(prefix), prefix, web.URL, redisTarget.String(), prefix, prefix)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(log) // the connectors that log through the default logger write here too
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(yml), func(k string) (string, bool) { return token, k == "TOKEN" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(s.URL(), token)
	ctx := t.Context()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("not ready before the outage: %v", err)
	}

	// The outage.
	web.Close()
	redisProxy.setDown()
	ns.Shutdown()
	const secret = "outage-subject-5150"
	r, _, err := c.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: secret}), Reason: "user_request"}, "")
	if err != nil {
		t.Fatalf("submit during the outage: %v", err)
	}
	t.Cleanup(func() { c.Cancel(context.Background(), r.ID) })

	health := map[string]erasure.DatasetStats{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ds, err := c.Datasets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		failing := 0
		for _, d := range ds {
			health[d.Name] = d.Health
			if d.Health.FailedAttempts > 1 && d.Health.FailingSince != nil && d.Health.LastError != "" {
				failing++
			}
		}
		if failing == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the datasets' health does not show the outage: %+v\nlogs:\n%s", health, logs.String())
		}
	}
	for name, want := range map[string]string{"web": "DELETE " + web.URL + "/users/{user_id}", "cache": "redis", "messages": "nats"} {
		h := health[name]
		if !strings.Contains(h.LastError, want) || h.LastErrorAt == nil || h.FailingSince.After(*h.LastErrorAt) {
			t.Errorf("%s: health %+v; want a last error about %q", name, h, want)
		}
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("a dataset outage made the server unready: %v", err)
	}

	out := logs.String()
	for _, ds := range []string{"web", "cache", "messages"} {
		if !strings.Contains(out, `msg="attempt failed; will retry" executor.dataset=`+ds+" ") {
			t.Errorf("no log line for a failed attempt on %s:\n%s", ds, out)
		}
	}
	var metrics strings.Builder
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	for _, ds := range []string{"web", "cache", "messages"} {
		if !regexp.MustCompile(`erasure_task_attempts_total\{dataset="` + ds + `",outcome="pending"\} [1-9]`).MatchString(metrics.String()) {
			t.Errorf("the attempts metric does not count %s's failures", ds)
		}
	}

	// The store cannot write: another process holds its write lock (as a stuck writer would).
	raw, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "data", "erasure.db"), "FULL"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the last answer, reused for a second, is stale
	start := time.Now()
	err = c.Ready(ctx)
	if erasure.ErrorCode(err) != erasure.EUNAVAILABLE || !strings.Contains(erasure.ErrorMessage(err), "store") {
		t.Errorf("ready while the store cannot write: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("readiness took %s to answer", took)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for deadline := time.Now().Add(20 * time.Second); c.Ready(ctx) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready once the store writes again: %v", c.Ready(ctx))
		}
	}
	checkLogLines(t, logs.String(), secret)
}
