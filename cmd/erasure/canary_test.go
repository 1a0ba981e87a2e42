package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/client"
)

const canaryConfig = `version: 1
server: { addr: "127.0.0.1:0", data_dir: %q, workers: 4 }
auth:
  tokens:
    - { name: admin, secret: "${ERASURE_CANARY_TOKEN}", roles: [submit, operate, read] }
identifiers: [user_id]
defaults: { max_attempts: 1, timeout: 5s }
datasets:
  - name: warehouse.events
    owner: data-team
    connector: files
    files: { path: %q, format: jsonl, key: { field: user_id, identifier: user_id } }
    canary: { every: 24h, timeout: 30s }
  - name: profile-service
    owner: profile-team
    connector: http
    http: { erase: { url: "%s/users/{user_id}" } }
    canary: { every: 24h, timeout: 30s, plant: { url: "%s/users", body: '{{"id": "{user_id}"}}', check: { url: "%s/users/{user_id}" } } }
`

// brokenProfiles is a service whose DELETE answers 204 and deletes nothing.
type brokenProfiles struct {
	mu    sync.Mutex
	users map[string]bool
}

func (s *brokenProfiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		id := regexp.MustCompile(`"id": "([^"]+)"`).FindSubmatch(b)
		if id == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.users[string(id[1])] = true
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		if s.users[strings.TrimPrefix(r.URL.Path, "/users/")] {
			w.Write([]byte(`{}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestCanaryCommands runs `erasure canary run|list` against a server (serve's Main) with a
// healthy files dataset and an HTTP service whose DELETE deletes nothing.
func TestCanaryCommands(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "snapshot")
	os.MkdirAll(snap, 0o755)
	os.WriteFile(filepath.Join(snap, "part-0.jsonl"), []byte(`{"user_id":"1"}`+"\n"), 0o644)
	svc := httptest.NewServer(&brokenProfiles{users: map[string]bool{}})
	t.Cleanup(svc.Close)
	cfg := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(canaryConfig, filepath.Join(dir, "data"), snap, svc.URL, svc.URL, svc.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ERASURE_CANARY_TOKEN", "admin-secret-0123456789")
	m := startMain(t, cfg)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", "admin-secret-0123456789")

	t.Run("ScheduledAtStart", func(t *testing.T) {
		// Canaries that never ran are due at once: the server's schedule runs them.
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, out, _ := run(t, "canary", "list")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if lastLine(out) == "2 canaries: 1 passed, 1 failed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the schedule did not run both canaries:\n%s", out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("OneDatasetPasses", func(t *testing.T) {
		code, out, errOut := run(t, "canary", "run", "warehouse.events")
		if code != 0 || !regexp.MustCompile(`warehouse\.events\s+ok\s`).MatchString(out) || lastLine(out) != "1 canaries: 1 passed, 0 failed" {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("AllWithABrokenServiceFailsLoudly", func(t *testing.T) {
		code, out, errOut := run(t, "canary", "run")
		if code != 1 || !regexp.MustCompile(`profile-service\s+failed at check\s.*still there after its erasure completed`).MatchString(out) ||
			!regexp.MustCompile(`warehouse\.events\s+ok\s`).MatchString(out) || !strings.Contains(errOut, "1 of 2 canaries failed") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		code, out, _ = run(t, "datasets", "list")
		if code != 0 || !regexp.MustCompile(`profile-service\s.*\sfailed\s`).MatchString(out) || !strings.Contains(lastLine(out), "1 canary failing") {
			t.Fatalf("datasets list: exit %d\n%s", code, out)
		}
		resp, err := http.Get(m.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range []string{`erasure_canary_ok{dataset="profile-service"} 0`, `erasure_canary_ok{dataset="warehouse.events"} 1`} {
			if !strings.Contains(string(b), line) {
				t.Errorf("metrics lack %s", line)
			}
		}
		c, err := client.FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		evs, err := c.Audit(t.Context(), erasure.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, ev := range evs {
			if ev.Type == "canary.failed" && ev.Dataset == "profile-service" {
				failed++
			}
		}
		if failed != 2 { // the scheduled run and this one
			t.Fatalf("%d canary.failed events for profile-service, want 2", failed)
		}
		if code, out, _ := run(t, "requests", "list"); code == 0 && strings.Contains(out, "canary") {
			t.Fatalf("canary requests listed among the users':\n%s", out)
		}
	})
	t.Run("UnknownDatasetIs3", func(t *testing.T) {
		if code, _, _ := run(t, "canary", "run", "nope"); code != 3 {
			t.Fatalf("exit %d", code)
		}
	})
}
