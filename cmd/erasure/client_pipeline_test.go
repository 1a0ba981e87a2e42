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
defaults: { deadline: 720h, max_attempts: 3, backoff: { initial: 10ms, max: 1s }, timeout: 5s }
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
		if code != 0 || !regexp.MustCompile(`^audit trail ok: \d+ events in \d+ blocks, head \d+:[0-9a-f]{64}\n$`).MatchString(out) {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
}
