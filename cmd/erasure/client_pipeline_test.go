package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/registry"
)

// flakyDataset erases without I/O; it fails permanently for user_id 13, and user_id "wide"
// matches 5000 rows (under its context's guard, counted before anything is erased).
type flakyDataset struct{}

func (flakyDataset) Close() error { return nil }

func (flakyDataset) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	for _, v := range s.Values("user_id") {
		switch v {
		case "13":
			return erasure.Outcome{}, erasure.Permanent(errors.New("403 Forbidden from profile-service"))
		case "wide":
			if err := erasure.GuardFrom(ctx).Check("flaky", "rows", 5000); err != nil {
				return erasure.Outcome{}, err
			}
			return erasure.Outcome{Removed: 5000}, nil
		}
	}
	return erasure.Outcome{Removed: 1}, nil
}

func (flakyDataset) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

// flakyDriver builds flakyDatasets keyed by user_id, as a connector package registers its own.
type flakyDriver struct{}

func (flakyDriver) Method() erasure.Method { return erasure.MethodRealtime }

func (flakyDriver) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	return flakyDataset{}
}

func init() { registry.Register("flaky", flakyDriver{}) }

const pipelineConfig = `version: 1
server: { addr: "127.0.0.1:0", data_dir: %q, workers: 4 }
auth:
  tokens:
    - { name: admin, secret: "${ERASURE_PIPELINE_TOKEN}", roles: [submit, operate] }
identifiers: [user_id, email]
defaults: { deadline: 720h, max_attempts: 3, backoff: { initial: 10ms, max: 1s }, timeout: 5s, guard: { max_removed: 100 } }
datasets:
  - { name: profile-service, owner: profile-team, connector: flaky, flaky: {} }
  - { name: sessions, owner: web-team, connector: flaky, flaky: {} }
`

// TestClientCommands_OverThePipeline runs the client commands against a server (serve's Main)
// over the real pipeline and SQLite store, with datasets that erase without I/O.
func TestClientCommands_OverThePipeline(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(pipelineConfig, filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERASURE_PIPELINE_TOKEN", "admin-secret-0123456789")
	m := startMain(t, cfg)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", "admin-secret-0123456789")
	first := waitFirstPoll
	waitFirstPoll = 5 * time.Millisecond
	t.Cleanup(func() { waitFirstPoll = first })

	t.Run("SubmitWaitCompletes", func(t *testing.T) {
		// stdout holds the id alone, so that id=$(erasure submit ... --wait) works; the outcome
		// is on stderr.
		code, out, errOut := run(t, "submit", "user_id=42", "email=a@example.com", "--wait", "--timeout", "1m")
		if code != 0 || !regexp.MustCompile(`^r_[0-9a-z]{26}\n$`).MatchString(out) || !regexp.MustCompile(`\nr_[0-9a-z]{26} completed: 2 of 2 tasks done, 2 removed\n$`).MatchString(errOut) {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
		code, out, _ = run(t, "status", strings.TrimSpace(out))
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
	t.Run("GuardTripIsRetriedWithForce", func(t *testing.T) {
		_, out, _ := run(t, "submit", "user_id=wide")
		id := strings.TrimSpace(out)
		code, out, errOut := run(t, "wait", id, "--timeout", "1m")
		if code != 1 || !strings.Contains(errOut, "5000 rows") || !strings.Contains(errOut, "max_removed 100") {
			t.Fatalf("wait: exit %d %q %q", code, out, errOut)
		}
		if code, out, errOut := run(t, "retry", id, "--force"); code != 0 || !strings.HasPrefix(out, "retried past the guard "+id) {
			t.Fatalf("retry --force: exit %d %q %q", code, out, errOut)
		}
		code, out, errOut = run(t, "wait", id, "--timeout", "1m")
		if code != 0 || !strings.Contains(out, "completed: 2 of 2 tasks done, 10000 removed") {
			t.Fatalf("wait after the forced retry: exit %d %q %q", code, out, errOut)
		}
		if code, _, errOut := run(t, "retry", id, "--force"); code != 5 {
			t.Fatalf("forced retry of a completed request: exit %d %q", code, errOut)
		}
		code, out, _ = run(t, "audit", "verify")
		if code != 0 {
			t.Fatalf("audit verify: exit %d %s", code, out)
		}
	})
	t.Run("IDPrefixes", func(t *testing.T) {
		var ids []string
		for _, u := range []string{"user_id=50", "user_id=51"} {
			_, out, _ := run(t, "submit", u)
			ids = append(ids, strings.TrimSpace(out))
		}
		short := ids[0][:len(ids[0])-4] // unique: the last 80 bits are random
		for _, arg := range []string{short, strings.TrimPrefix(short, "r_"), short + "…"} {
			code, out, errOut := run(t, "status", arg)
			if code != 0 || !strings.HasPrefix(out, "request "+ids[0]+" ") {
				t.Errorf("status %s: exit %d %q %q", arg, code, out, errOut)
			}
		}
		// Requests of one run share their first characters: that prefix names several.
		common := "r_"
		for i := 2; i < 28 && ids[0][i] == ids[1][i]; i++ {
			common = ids[0][:i+1]
		}
		code, _, errOut := run(t, "wait", common)
		if code != 5 || !strings.Contains(errOut, "ambiguous") || !strings.Contains(errOut, "give more characters") {
			t.Errorf("an ambiguous prefix: exit %d %q", code, errOut)
		}
		if code, _, errOut := run(t, "cancel", "r_zzzzzz"); code != 3 || !strings.Contains(errOut, "no request id starts with r_zzzzzz") {
			t.Errorf("an unknown prefix: exit %d %q", code, errOut)
		}
		// The request has completed by now: the cancel is refused, naming the request found.
		if code, out, errOut := run(t, "cancel", short); !strings.Contains(out+errOut, ids[0]) {
			t.Errorf("cancel by prefix: exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("AuditVerify", func(t *testing.T) {
		code, out, errOut := run(t, "audit", "verify")
		if code != 0 || !regexp.MustCompile(`^audit trail ok: \d+ events in \d+ blocks, head \d+:[0-9a-f]{64}\n$`).MatchString(out) {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
}
