package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/client"
)

// sweepConfig: an offline files dataset swept by the server (events) and one swept by an
// external job (lake), both JSON lines keyed by user.id.
const sweepConfig = `version: 1
server: { addr: %q, data_dir: %q, workers: 4 }
auth:
  tokens:
    - { name: ops, secret: "${ERASURE_SWEEP_TOKEN}", roles: [submit, operate] }
identifiers: [user_id]
defaults: { max_attempts: 5, backoff: { initial: 50ms, max: 500ms }, timeout: 5s }
datasets:
  - name: events
    owner: data-team
    connector: files
    files: { path: %q, format: jsonl, key: { field: user.id, identifier: user_id }, workers: 1, index: true }
    sweep: { every: 24h }
  - name: lake
    owner: data-team
    connector: files
    files: { path: %q, format: jsonl, key: { field: user.id, identifier: user_id } }
    sweep: { every: 168h, mode: external }
`

// writeSnapshot writes parts partitions of users each (ids from 1), rows per user, padded so
// that each row is about pad bytes.
func writeSnapshot(t *testing.T, dir string, parts, users, rows, pad int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	filler := strings.Repeat("x", pad)
	for p := 0; p < parts; p++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%04d.jsonl", p)))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for r := 0; r < rows; r++ {
			for u := 1; u <= users; u++ {
				fmt.Fprintf(w, "{\"user\":{\"id\":%d},\"part\":%d,\"row\":%d,\"pad\":%q}\n", u, p, r, filler)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// countUsers returns the rows per user id over every partition of dir.
func countUsers(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	names, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var row struct {
				User struct {
					ID json.Number `json:"id"`
				} `json:"user"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			out[row.User.ID.String()]++
		}
		f.Close()
	}
	return out
}

// waitQueued waits until the request's task on dataset is queued.
func waitQueued(t *testing.T, cl *client.Client, id, dataset string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := cl.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range r.Tasks {
			if tk.Dataset == dataset && tk.State == erasure.TaskQueued {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task of %s on %s never queued: %+v", id, dataset, r.Tasks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSweepCommands_EndToEnd(t *testing.T) {
	dir := t.TempDir()
	events, lake := filepath.Join(dir, "events"), filepath.Join(dir, "lake")
	writeSnapshot(t, events, 4, 10, 2, 10)
	writeSnapshot(t, lake, 2, 10, 1, 10)
	token := randomToken()
	t.Setenv("ERASURE_SWEEP_TOKEN", token)
	cfgPath := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(sweepConfig, "127.0.0.1:0", filepath.Join(dir, "data"), events, lake)), 0o600)
	ctx := context.Background()
	m := startMain(t, cfgPath)
	t.Setenv("ERASURE_URL", m.URL())
	t.Setenv("ERASURE_TOKEN", token)
	cl, _ := client.New(m.URL(), token)

	var ids []string
	for _, u := range []string{"2", "5", "9"} {
		code, out, errOut := run(t, "submit", "user_id="+u)
		if code != 0 {
			t.Fatalf("submit: %d %s %s", code, out, errOut)
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	for _, id := range ids {
		waitQueued(t, cl, id, "events")
		waitQueued(t, cl, id, "lake")
	}

	t.Run("RunWait", func(t *testing.T) {
		code, out, errOut := run(t, "sweep", "run", "events", "--wait")
		if code != 0 || !strings.Contains(out, "committed: 3 tasks done, 4 partitions") || !strings.Contains(out, "24 removed") {
			t.Fatalf("sweep run: %d\n%s\n%s", code, out, errOut)
		}
		got := countUsers(t, events)
		for _, u := range []string{"2", "5", "9"} {
			if got[u] != 0 {
				t.Errorf("user %s has %d rows after the sweep", u, got[u])
			}
		}
		if got["1"] != 8 || len(got) != 7 {
			t.Errorf("rows of the other users changed: %v", got)
		}
		for _, id := range ids {
			r, _ := cl.Request(ctx, id)
			for _, tk := range r.Tasks {
				if tk.Dataset == "events" && tk.State != erasure.TaskDone {
					t.Errorf("%s: events task %s", id, tk.State)
				}
			}
		}
	})
	t.Run("RunNothingQueued", func(t *testing.T) {
		if code, out, _ := run(t, "sweep", "run", "events"); code != 0 || !strings.Contains(out, "nothing queued") {
			t.Fatalf("%d %s", code, out)
		}
	})
	t.Run("List", func(t *testing.T) {
		code, out, _ := run(t, "sweep", "list", "events")
		if code != 0 || !strings.Contains(out, "committed") || !strings.Contains(out, "1 sweep of events") {
			t.Fatalf("%d %s", code, out)
		}
	})
	t.Run("Index", func(t *testing.T) {
		code, out, errOut := run(t, "sweep", "index", "events")
		if code != 0 || !strings.Contains(out, "skip index of events: 4 partitions") {
			t.Fatalf("%d %s %s", code, out, errOut)
		}
		if code, _, errOut := run(t, "sweep", "index", "nope"); code != 3 {
			t.Fatalf("index of an unknown dataset: %d %s", code, errOut)
		}
	})
	t.Run("RefusesBadInput", func(t *testing.T) {
		for _, args := range [][]string{
			{"sweep", "run"},
			{"sweep", "run", "lake"}, // swept externally: its connector could, but the mode says no
			{"sweep", "export", "lake", "--format", "csv"},
			{"sweep", "ack", "lake", "s_x", "--status", "maybe"},
		} {
			if code, _, _ := run(t, args...); code == 0 {
				t.Errorf("%v succeeded", args)
			}
		}
	})
	t.Run("ExportAck", func(t *testing.T) {
		file := filepath.Join(dir, "lake-export.jsonl")
		code, out, errOut := run(t, "sweep", "export", "lake", "-o", file)
		if code != 0 || !strings.Contains(errOut, "exported sweep s_") {
			t.Fatalf("export: %d %s %s", code, out, errOut)
		}
		b, _ := os.ReadFile(file)
		if n := strings.Count(string(b), "\n"); n != 3 || !strings.Contains(string(b), `"value":"5"`) {
			t.Fatalf("export file:\n%s", b)
		}
		if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
			t.Errorf("export file mode %v", st.Mode().Perm())
		}
		id := strings.Fields(errOut[strings.Index(errOut, "exported sweep ")+len("exported sweep "):])[0]
		for _, rid := range ids {
			if r, _ := cl.Request(ctx, rid); r.Status == erasure.RequestCompleted {
				t.Fatal("completed before the external job acknowledged")
			}
		}
		code, out, errOut = run(t, "sweep", "ack", "lake", id, "--status", "done", "--removed", "3")
		if code != 0 || !strings.Contains(out, "committed") {
			t.Fatalf("ack: %d %s %s", code, out, errOut)
		}
		for _, rid := range ids {
			if r, _ := cl.Request(ctx, rid); r.Status != erasure.RequestCompleted {
				t.Fatalf("request %s after the ack: %s", rid, r.Status)
			}
		}
		if code, _, _ := run(t, "sweep", "ack", "lake", id, "--status", "done"); code != 5 {
			t.Fatalf("second ack exit %d, want 5 (conflict)", code)
		}
	})
	t.Run("AuditVerifies", func(t *testing.T) {
		if code, out, errOut := run(t, "audit", "verify"); code != 0 {
			t.Fatalf("%d %s %s", code, out, errOut)
		}
	})
}

// TestServe_SweepSurvivesSIGKILL kills a real `erasure serve` twice during a sweep of a files
// dataset and restarts it: the sweep resumes and commits once, each task is done once, and no
// row of an erased subject survives while every other row does.
func TestServe_SweepSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	events, lake := filepath.Join(dir, "events"), filepath.Join(dir, "lake")
	const parts, users, rows = 48, 50, 60
	writeSnapshot(t, events, parts, users, rows, 300) // ≈ 1 MiB per partition, every user in every one
	writeSnapshot(t, lake, 1, 1, 1, 1)
	before := countUsers(t, events)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "erasure.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(sweepConfig, addr, filepath.Join(dir, "data"), events, lake)), 0o600)
	token := randomToken()
	cl, _ := client.New("http://"+addr, token)
	var server *child
	ctx := context.Background()
	status := func() erasure.SweepStatus {
		t.Helper()
		for try := 0; ; try++ {
			st, err := cl.SweepStatus(ctx, "events", 0)
			if err == nil {
				return *st
			}
			if try > 200 {
				t.Fatalf("sweep status: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// killAfter waits until the running sweep id has done at least n more partitions than it
	// had when called, then SIGKILLs the server and restarts it.
	killAfter := func(id string, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		base := -1
		for {
			st := status()
			if st.Running != nil && st.Running.ID == id && st.Progress != nil {
				if base < 0 {
					base = st.Progress.PartitionsDone
				}
				if st.Progress.PartitionsDone >= base+n && st.Progress.PartitionsDone < st.Progress.PartitionsTotal {
					t.Logf("SIGKILL at %d/%d partitions of sweep %s", st.Progress.PartitionsDone, st.Progress.PartitionsTotal, id)
					break
				}
			}
			for _, s := range st.Sweeps {
				if s.ID == id && s.State != erasure.SweepRunning {
					t.Fatalf("sweep %s ended (%s) before it could be interrupted; make the snapshot larger", id, s.State)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("sweep %s made no progress: %+v", id, st)
			}
			time.Sleep(2 * time.Millisecond)
		}
		server.restart()
	}

	server = startChild(t, cfgPath, cl, "ERASURE_SWEEP_TOKEN="+token)
	erased := []string{"3", "17", "42"}
	var ids []string
	for _, u := range erased {
		r, _, err := cl.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: u}), Reason: "user_request"}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		waitQueued(t, cl, id, "events")
	}
	sw, err := cl.RunSweep(ctx, "events")
	if err != nil || sw.Tasks != 3 {
		t.Fatalf("sweep run: %+v %v", sw, err)
	}
	killAfter(sw.ID, 3)  // during the first run
	killAfter(sw.ID, 10) // during the resumed run

	deadline := time.Now().Add(60 * time.Second)
	var final erasure.Sweep
	for final.State != erasure.SweepCommitted {
		for _, s := range status().Sweeps {
			if s.ID == sw.ID {
				final = s
			}
		}
		if final.State == erasure.SweepFailed {
			t.Fatalf("sweep failed: %s", final.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweep %s still %s; server output:\n%s", sw.ID, final.State, server.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := status(); len(st.Sweeps) != 1 {
		t.Fatalf("%d sweeps, want the one resumed", len(st.Sweeps))
	}
	after := countUsers(t, events)
	for _, u := range erased {
		if after[u] != 0 {
			t.Errorf("user %s: %d rows survived the sweep", u, after[u])
		}
	}
	for u, n := range before {
		if !contains(erased, u) && after[u] != n {
			t.Errorf("user %s: %d rows before, %d after", u, n, after[u])
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(events, ".*.tmp"))
	if journals, _ := os.ReadDir(filepath.Join(events, ".erasure", "sweeps")); len(leftovers)+len(journals) > 0 {
		t.Errorf("left behind: %v temporary files, %d journals", leftovers, len(journals))
	}
	// The external dataset's job reports back; then every request is complete.
	ex, err := cl.ExportSweep(ctx, "lake", "jsonl")
	if err != nil || ex.Body == nil {
		t.Fatalf("lake export %+v %v", ex, err)
	}
	io.Copy(io.Discard, ex.Body)
	ex.Body.Close()
	if _, err := cl.AckSweep(ctx, "lake", ex.Sweep, erasure.SweepAck{Status: erasure.AckDone}); err != nil {
		t.Fatal(err)
	}
	if lake, err := cl.SweepStatus(ctx, "lake", 0); err != nil || len(lake.Sweeps) != 1 || lake.Sweeps[0].State != erasure.SweepCommitted {
		t.Fatalf("lake sweeps %+v %v", lake, err)
	}
	for _, id := range ids {
		r, err := cl.Request(ctx, id)
		if err != nil || r.Status != erasure.RequestCompleted {
			t.Fatalf("request %s: %+v %v", id, r, err)
		}
	}
	if rep, err := cl.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
	done := map[int64]int{}
	err = cl.AuditEach(ctx, erasure.AuditFilter{}, func(ev erasure.AuditEvent) error {
		var d struct {
			Outcome string `json:"outcome"`
		}
		json.Unmarshal(ev.Data, &d)
		if ev.Type == erasure.EventTaskAttempt && ev.Dataset == "events" && d.Outcome == "done" {
			done[ev.TaskID]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	if len(done) != 3 {
		t.Fatalf("%d events tasks done in the trail, want 3", len(done))
	}
	for task, n := range done {
		if n != 1 {
			t.Errorf("task %d done %d times", task, n)
		}
	}
	t.Logf("sweep %s: %d partitions, %d rows scanned, %d removed, through 2 SIGKILLs; audit trail verified", final.ID, final.Partitions, final.Scanned, final.Removed)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSweepRun_ProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    erasure.SweepProgress
		want string
	}{
		{"Start", erasure.SweepProgress{PartitionsTotal: 4, BytesTotal: 4 << 20},
			"events: 0 B of 4.0 MiB (0%); 0/4 partitions, 0 rows scanned, 0 removed"},
		{"Halfway", erasure.SweepProgress{PartitionsDone: 2, PartitionsTotal: 4, BytesDone: 2 << 20, BytesTotal: 4 << 20, RowsScanned: 1000, RowsRemoved: 12, Elapsed: 2 * time.Second},
			"events: 2.0 MiB of 4.0 MiB (50%), 1.0 MiB/s, ETA 2s; 2/4 partitions, 1000 rows scanned, 12 removed"},
		{"Done", erasure.SweepProgress{PartitionsDone: 4, PartitionsTotal: 4, BytesDone: 3 << 30, BytesTotal: 3 << 30, RowsScanned: 9, RowsRemoved: 1, Elapsed: time.Second},
			"events: 3.0 GiB of 3.0 GiB (100%), 3.0 GiB/s; 4/4 partitions, 9 rows scanned, 1 removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProgress(io.Discard, "events", "")
			p.now = func() time.Time { return p.start } // the sweep's own Elapsed counts, not the CLI's
			if got := p.line(sweepStep(&tc.p)); got != tc.want {
				t.Fatalf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
