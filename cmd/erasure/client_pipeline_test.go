package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

// flakyDataset erases without I/O; it fails permanently for user_id 13.
type flakyDataset struct{}

func (flakyDataset) Close() error { return nil }

func (flakyDataset) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	for _, v := range s.Values("user_id") {
		if v == "13" {
			return erasure.Outcome{}, erasure.Permanent(errors.New("403 Forbidden from profile-service"))
		}
	}
	return erasure.Outcome{Removed: 1}, nil
}

func (flakyDataset) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

// TestClientCommands_OverThePipeline runs the client commands against the API over the real
// pipeline and SQLite store.
func TestClientCommands_OverThePipeline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h, _ := audit.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	policy := erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: 10 * time.Millisecond, Max: time.Second}, Timeout: 5 * time.Second}
	ds := []*erasure.Dataset{
		{Name: "profile-service", Owner: "profile-team", Connector: "http", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Policy: policy, Conn: flakyDataset{}},
		{Name: "sessions", Owner: "web-team", Connector: "redis", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Policy: policy, Conn: flakyDataset{}},
	}
	engine := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{ds[0].Name: ds[0], ds[1].Name: ds[1]}, Owner: "test", Poll: 10 * time.Millisecond}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: ds, Identifiers: []string{"user_id", "email"}, DefaultDeadline: 720 * time.Hour, Engine: engine}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); engine.Run(ctx) }()
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Tokens: []api.Token{{Name: "admin", Secret: "admin-secret", Roles: []string{"submit", "operate"}}}}).Handler())
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait(); st.Close() })
	t.Setenv("ERASURE_URL", srv.URL)
	t.Setenv("ERASURE_TOKEN", "admin-secret")
	first := waitFirstPoll
	waitFirstPoll = 5 * time.Millisecond
	t.Cleanup(func() { waitFirstPoll = first })

	t.Run("SubmitWaitCompletes", func(t *testing.T) {
		code, out, errOut := run(t, "submit", "user_id=42", "email=a@example.com", "--wait", "--timeout", "1m")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !regexp.MustCompile(`^r_[0-9a-z]{26} completed: 2 of 2 tasks done, 2 removed$`).MatchString(lines[1]) {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
		code, out, _ = run(t, "status", lines[0])
		if code != 0 || !strings.Contains(out, "status completed  overdue no") || !regexp.MustCompile(`sessions\s+erase\s+realtime\s+done\s+1\s+1\s+20`).MatchString(out) {
			t.Fatalf("status: exit %d\n%s", code, out)
		}
	})
	t.Run("FailedRequestWaitsNonZeroThenCancels", func(t *testing.T) {
		_, out, _ := run(t, "submit", "user_id=13")
		id := strings.TrimSpace(out)
		code, out, errOut := run(t, "wait", id, "--timeout", "1m")
		if code != 1 || !strings.Contains(out, id+" failed") || !strings.Contains(errOut, "403 Forbidden from profile-service") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
		if code, out, errOut := run(t, "cancel", id); code != 0 || !strings.Contains(out, "cancelled "+id) {
			t.Fatalf("cancel: exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("AuditVerify", func(t *testing.T) {
		code, out, errOut := run(t, "audit", "verify")
		if code != 0 || !regexp.MustCompile(`^audit trail ok: \d+ events in \d+ blocks, head [0-9a-f]{64}\n$`).MatchString(out) {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
}
