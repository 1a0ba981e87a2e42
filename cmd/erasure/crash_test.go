package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
	"erasure/client"
)

// TestMain lets the test binary act as `erasure` itself when ERASURE_TEST_MAIN=1, so the crash
// test runs the real serve command in a child process it can SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("ERASURE_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// crashConfig: two HTTP datasets on a service in the test process (which outlives the
// server's deaths), one of them slow, the second erased after the first.
const crashConfig = `version: 1
server: { addr: %q, data_dir: %q, workers: 8 }
auth:
  tokens:
    - { name: crash, secret: "${ERASURE_CRASH_TOKEN}", roles: [submit, read, operate] }
identifiers: [user_id]
defaults: { max_attempts: 50, backoff: { initial: 50ms, max: 500ms }, timeout: 5s }
datasets:
  - name: profiles
    owner: team
    connector: http
    http:
      erase:  { method: DELETE, url: "%s/profiles/{user_id}" }
      verify: { method: GET, url: "%s/profiles/{user_id}" }
  - name: slow-archive
    owner: team
    connector: http
    after: [profiles]
    http:
      erase:  { method: DELETE, url: "%s/slow/{user_id}" }
`

// TestServe_SurvivesSIGKILL submits hundreds of requests to a real `erasure serve` process
// while killing it with SIGKILL at random moments, restarts it each time, and checks that no
// accepted request is lost, that no task is completed twice, and that the audit trail verifies.
func TestServe_SurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const requests = 300
	const kills = 6
	// The estate: deleting is idempotent, and every DELETE is counted per subject.
	var mu sync.Mutex
	deletes := map[string]int{}
	svc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		id := parts[len(parts)-1]
		if parts[1] == "slow" {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		mu.Lock()
		deletes[parts[1]+"/"+id]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	estate := &http.Server{Handler: svc}
	go estate.Serve(ln)
	defer estate.Close()
	base := "http://" + ln.Addr().String()

	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(crashConfig, addr, filepath.Join(dir, "data"), base, base, base)), 0o600)
	token := randomToken()
	cl, _ := client.New("http://"+addr, token)
	server := startChild(t, cfg, cl, "ERASURE_CRASH_TOKEN="+token)

	// Submitters: each request has an idempotency key, so a submission cut by a crash is
	// simply sent again; only 2xx answers count as accepted.
	var accepted sync.Map // key → request id
	var submitted atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < requests; i += 4 {
				key := fmt.Sprintf("crash-%d", i)
				sub := erasure.Submission{Subject: []erasure.Identifier{{Type: "user_id", Value: fmt.Sprint(i)}}, Reason: "user_request"}
				for {
					r, _, err := cl.Submit(ctx, sub, key)
					if err == nil {
						accepted.Store(key, r.ID)
						submitted.Add(1)
						// Spread submissions over the kills.
						time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(w)
	}
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		server.restart()
	}
	wg.Wait()
	// One more kill with everything submitted and work in flight.
	server.restart()

	deadline := time.Now().Add(90 * time.Second)
	ids := map[string]string{}
	accepted.Range(func(k, v any) bool { ids[k.(string)] = v.(string); return true })
	if len(ids) != requests {
		t.Fatalf("%d requests accepted, want %d", len(ids), requests)
	}
	for key, id := range ids {
		for {
			r, err := cl.Request(ctx, id)
			if err != nil {
				t.Fatalf("accepted request %s (%s) lost: %v", id, key, err)
			}
			if r.Status == erasure.RequestCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %s still %s: %+v", id, r.Status, r.Tasks)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The audit trail verifies, and records exactly one successful attempt per task.
	rep, err := cl.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
	doneAttempts := map[int64]int{}
	tasksOf := map[string]int{}
	err = cl.AuditEach(ctx, erasure.AuditFilter{}, func(ev erasure.AuditEvent) error {
		if ev.Type == erasure.EventTaskAttempt {
			var d struct {
				Outcome string `json:"outcome"`
			}
			json.Unmarshal(ev.Data, &d)
			if d.Outcome == "done" {
				doneAttempts[ev.TaskID]++
				tasksOf[ev.RequestID]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	for task, n := range doneAttempts {
		if n != 1 {
			t.Errorf("task %d completed %d times", task, n)
		}
	}
	for _, id := range ids {
		if tasksOf[id] != 2 {
			t.Errorf("request %s: %d tasks completed in the audit trail, want 2", id, tasksOf[id])
		}
	}
	mu.Lock()
	for i := 0; i < requests; i++ {
		if deletes[fmt.Sprintf("profiles/%d", i)] == 0 || deletes[fmt.Sprintf("slow/%d", i)] == 0 {
			t.Errorf("subject %d was not erased from both datasets", i)
		}
	}
	mu.Unlock()
	t.Logf("%d requests through %d SIGKILLs: all completed, %d audit events verified", requests, kills+1, rep.Head.Events)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
