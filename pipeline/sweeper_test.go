package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/connector/files"
	"erasure/pipeline"
	"erasure/store/storetest"
)

// snapshot writes parts JSON lines partitions under a new directory; partition p holds the
// users p*per+1 … (p+1)*per, two rows each.
func snapshot(t *testing.T, parts, per int) string {
	t.Helper()
	dir := t.TempDir()
	for p := 0; p < parts; p++ {
		var b strings.Builder
		for u := p*per + 1; u <= (p+1)*per; u++ {
			fmt.Fprintf(&b, "{\"user\":{\"id\":%d},\"event\":\"login\"}\n{\"user\":{\"id\":%d},\"event\":\"click\"}\n", u, u)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%03d.jsonl", p)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// usersIn returns the distinct user ids of every partition of dir.
func usersIn(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	names, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row struct {
				User struct {
					ID json.Number `json:"id"`
				} `json:"user"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err == nil {
				out[row.User.ID.String()]++
			}
		}
		f.Close()
	}
	return out
}

func filesDataset(t *testing.T, name, dir string) *erasure.Dataset {
	t.Helper()
	c, err := files.New(files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id", Identifier: "user_id"}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return &erasure.Dataset{Name: name, Owner: "data-team", Connector: "files", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: c,
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Timeout: 5 * time.Second, SweepEvery: 24 * time.Hour, SweepMode: "internal"}}
}

func (h *harness) sweeper(ds ...*erasure.Dataset) *pipeline.Sweeper {
	m := map[string]*erasure.Dataset{}
	for _, d := range ds {
		m[d.Name] = d
	}
	now := time.Now
	if h.clock != nil {
		now = h.clock.Now
	}
	return &pipeline.Sweeper{Store: h.store, Datasets: m, Now: now, Export: files.WriteExport}
}

// queue submits a request per user and runs the pipeline until its offline tasks are queued.
func (h *harness) queue(t *testing.T, users ...int) []*erasure.Request {
	t.Helper()
	var out []*erasure.Request
	for _, u := range users {
		out = append(out, h.submit(t, "user_id", fmt.Sprint(u)))
	}
	for h.step(t) > 0 {
	}
	for _, r := range out {
		for _, tk := range h.get(t, r.ID).Tasks {
			if tk.Method == erasure.MethodOffline && tk.State != erasure.TaskQueued {
				t.Fatalf("offline task of %s is %s, want queued", r.ID, tk.State)
			}
		}
	}
	return out
}

func offlineTask(t *testing.T, r *erasure.Request) erasure.Task {
	t.Helper()
	for _, tk := range r.Tasks {
		if tk.Method == erasure.MethodOffline {
			return tk
		}
	}
	t.Fatalf("request %s has no offline task", r.ID)
	return erasure.Task{}
}

func TestSweeper_RunNow(t *testing.T) {
	dir := snapshot(t, 4, 5) // users 1..20
	events := filesDataset(t, "events", dir)
	db := dataset("db", &conn{held: map[string]bool{}}, []string{"user_id"})
	h := newHarness(t, nil, db, events)
	sw := h.sweeper(events, db)
	ctx := context.Background()
	reqs := h.queue(t, 3, 7, 18)

	t.Run("TasksWaitForTheSweep", func(t *testing.T) {
		for _, r := range reqs {
			if got := h.get(t, r.ID); got.Status == erasure.RequestCompleted {
				t.Fatalf("request %s completed before any sweep", r.ID)
			}
		}
		if got := usersIn(t, dir); got["3"] != 2 || got["18"] != 2 {
			t.Fatalf("rows erased before the sweep: %v", got)
		}
	})

	t.Run("DoneOnlyAfterCommit", func(t *testing.T) {
		// Every progress report comes before the commit: the tasks must still be queued then.
		var mu sync.Mutex
		var during []string
		reports := 0
		sw.Progress = func(ctx context.Context, report erasure.SweepProgressFunc) context.Context {
			return files.ContextWithProgress(ctx, func(p files.Progress) {
				report(p)
				mu.Lock()
				defer mu.Unlock()
				reports++
				for _, r := range reqs {
					got, err := h.store.Request(context.Background(), r.ID)
					if err != nil {
						during = append(during, err.Error())
					} else if tk := offlineTask(t, got); tk.State != erasure.TaskQueued || got.Status == erasure.RequestCompleted {
						during = append(during, fmt.Sprintf("%s: task %s, request %s", r.ID, tk.State, got.Status))
					}
				}
			})
		}
		started, err := sw.RunNow(ctx, "events", "op")
		if err != nil {
			t.Fatal(err)
		}
		if started.State != erasure.SweepRunning || started.Tasks != 3 {
			t.Fatalf("started %+v", started)
		}
		ended, err := sw.WaitSweep(ctx, started.ID)
		if err != nil {
			t.Fatal(err)
		}
		sw.Wait()
		if ended == nil {
			// Ended before WaitSweep looked: read it from the store.
			ended, _ = h.store.Sweep(ctx, started.ID)
		}
		if ended.State != erasure.SweepCommitted || ended.Removed != 6 || ended.Partitions != 4 {
			t.Fatalf("ended %+v", ended)
		}
		mu.Lock()
		defer mu.Unlock()
		if reports == 0 {
			t.Fatal("the sweep reported no progress")
		}
		if len(during) > 0 {
			t.Fatalf("tasks changed before the sweep committed: %v", during)
		}
	})

	t.Run("RowsGoneRequestsCompleted", func(t *testing.T) {
		got := usersIn(t, dir)
		for _, u := range []string{"3", "7", "18"} {
			if got[u] != 0 {
				t.Errorf("user %s still has %d rows", u, got[u])
			}
		}
		if len(got) != 17 {
			t.Errorf("%d users left, want 17", len(got))
		}
		for _, r := range reqs {
			got := h.get(t, r.ID)
			if got.Status != erasure.RequestCompleted {
				t.Errorf("request %s is %s", r.ID, got.Status)
			}
			if tk := offlineTask(t, got); tk.VerifiedAt == nil || !strings.HasPrefix(tk.Note, "sweep s_") {
				t.Errorf("task %+v", tk)
			}
		}
	})

	t.Run("DatasetHealthShowsTheLastSweep", func(t *testing.T) {
		info, err := h.svc.Dataset(ctx, "events")
		if err != nil || info.LastSweep == nil || info.LastSweep.State != erasure.SweepCommitted || info.LastSweep.Removed != 6 {
			t.Fatalf("dataset info %+v, %v", info, err)
		}
		if other, _ := h.svc.Dataset(ctx, "db"); other.LastSweep != nil {
			t.Fatalf("a realtime dataset shows a sweep")
		}
	})

	t.Run("NothingQueued", func(t *testing.T) {
		s, err := sw.RunNow(ctx, "events", "op")
		if err != nil || s.Tasks != 0 {
			t.Fatalf("RunNow with nothing queued: %+v %v", s, err)
		}
		if list, _ := h.store.Sweeps(ctx, "events", 10); len(list) != 1 {
			t.Fatalf("%d sweeps stored", len(list))
		}
	})

	t.Run("BadDataset", func(t *testing.T) {
		for _, tc := range []struct{ name, code string }{{"nope", erasure.ENOTFOUND}, {"db", erasure.EINVALID}, {"../events", erasure.ENOTFOUND}} {
			if _, err := sw.RunNow(ctx, tc.name, "op"); erasure.ErrorCode(err) != tc.code {
				t.Errorf("RunNow(%q): %v, want %s", tc.name, err, tc.code)
			}
		}
	})
}

// gate is a Sweeper that blocks until released, to hold a sweep open.
type gate struct {
	release chan struct{}
	entered chan struct{}
}

func (g *gate) Close() error { return nil }
func (g *gate) Sweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return erasure.SweepResult{Removed: int64(len(batch))}, nil
	case <-ctx.Done():
		return erasure.SweepResult{}, ctx.Err()
	}
}

func TestSweeper_OneSweepPerDataset(t *testing.T) {
	g := &gate{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	d := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: g, Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second}}
	h := newHarness(t, nil, d)
	sw := h.sweeper(d)
	ctx := context.Background()
	h.queue(t, 1, 2)
	first, err := sw.RunNow(ctx, "lake", "op")
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered
	h.queue(t, 3)
	if _, err := sw.RunNow(ctx, "lake", "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("second RunNow while one runs: %v", err)
	}
	if _, _, err := sw.StartExport(ctx, "lake", "jsonl", "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("export while a sweep runs: %v", err)
	}
	live, ok := sw.Running("lake")
	if !ok || live.Sweep.ID != first.ID {
		t.Fatalf("Running = %+v %v", live, ok)
	}
	close(g.release)
	sw.Wait()
	if _, ok := sw.Running("lake"); ok {
		t.Fatal("sweep still running after it ended")
	}
	if s, _ := h.store.Sweep(ctx, first.ID); s.State != erasure.SweepCommitted || s.Tasks != 2 {
		t.Fatalf("first sweep %+v", s)
	}
	if n, _, _ := h.store.QueuedTasks(ctx, "lake"); n != 1 {
		t.Fatalf("the task queued during the sweep: %d waiting, want 1", n)
	}
}

func TestSweeper_FailingSweepLeavesTasksQueued(t *testing.T) {
	dir := snapshot(t, 3, 4)
	bad := filepath.Join(dir, "part-001.jsonl")
	good, _ := os.ReadFile(bad)
	os.WriteFile(bad, append(append([]byte{}, good...), []byte("{\"user\":{\"id\":5}, broken\n")...), 0o644)
	before := usersIn(t, dir)
	events := filesDataset(t, "events", dir)
	h := newHarness(t, nil, events)
	sw := h.sweeper(events)
	ctx := context.Background()
	reqs := h.queue(t, 1, 9)

	failed, err := sw.SweepNow(ctx, "events", "op")
	if err != nil {
		t.Fatal(err)
	}
	if failed.State != erasure.SweepFailed || !strings.Contains(failed.Error, "part-001.jsonl") {
		t.Fatalf("sweep over a corrupt partition: %+v", failed)
	}
	if stored, _ := h.store.Sweep(ctx, failed.ID); stored.State != erasure.SweepFailed || stored.Error != failed.Error {
		t.Fatalf("stored %+v", stored)
	}
	for _, r := range reqs {
		got := h.get(t, r.ID)
		tk := offlineTask(t, got)
		if tk.State != erasure.TaskQueued || tk.SweepID != "" || !strings.Contains(tk.LastError, "part-001.jsonl") || got.Status == erasure.RequestCompleted {
			t.Fatalf("after the failed sweep: request %s, task %+v", got.Status, tk)
		}
	}
	if after := usersIn(t, dir); after["1"] != before["1"] || after["9"] != before["9"] {
		t.Fatalf("a failed sweep changed the snapshot: %v → %v", before, after)
	}
	// Once the partition is repaired, the next sweep erases and completes.
	os.WriteFile(bad, good, 0o644)
	ok, err := sw.SweepNow(ctx, "events", "op")
	if err != nil || ok.State != erasure.SweepCommitted || ok.Tasks != 2 {
		t.Fatalf("sweep after the repair: %+v %v", ok, err)
	}
	if after := usersIn(t, dir); after["1"] != 0 || after["9"] != 0 {
		t.Fatalf("rows left after the sweep: %v", after)
	}
	for _, r := range reqs {
		if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("request %s is %s", r.ID, got.Status)
		}
	}
}

func TestSweeper_Schedule(t *testing.T) {
	clock := storetest.NewClock()
	dir := snapshot(t, 2, 10)
	events := filesDataset(t, "events", dir)
	h := newHarness(t, clock, events)
	sw := h.sweeper(events)
	sw.RetryFailed = 2 * time.Hour
	ctx := context.Background()
	ran := func() int { return len(sw.ScheduleOnce(ctx)) }

	if n := ran(); n != 0 {
		t.Fatalf("%d sweeps with nothing queued", n)
	}
	h.queue(t, 1)
	if n := ran(); n != 1 {
		t.Fatalf("first sweep: %d ran", n)
	}
	h.queue(t, 2)
	clock.Add(time.Hour)
	if due, why, _ := sw.Due(ctx, events); due {
		t.Fatalf("due an hour after the last sweep (every 24h, deadline in 30 days): %s", why)
	}
	clock.Add(23 * time.Hour)
	if n := ran(); n != 1 {
		t.Fatalf("sweep after 24h: %d ran", n)
	}
	// A request whose deadline comes before the next regular sweep is swept out of turn.
	r, _, err := h.svc.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "3"}), Reason: "user_request", Deadline: clock.Now().Add(6 * time.Hour), Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for h.step(t) > 0 {
	}
	clock.Add(time.Minute)
	if n := ran(); n != 1 {
		t.Fatalf("urgent sweep: %d ran", n)
	}
	if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("urgent request %s", got.Status)
	}
	// A failed sweep is not retried before RetryFailed.
	os.WriteFile(filepath.Join(dir, "part-000.jsonl"), []byte("not json\n"), 0o644)
	h.queue(t, 15)
	clock.Add(24 * time.Hour)
	if n := ran(); n != 1 {
		t.Fatalf("sweep over a broken snapshot: %d ran", n)
	}
	clock.Add(time.Hour)
	if due, why, _ := sw.Due(ctx, events); due {
		t.Fatalf("due an hour after a failure: %s", why)
	}
	clock.Add(time.Hour)
	if due, _, _ := sw.Due(ctx, events); !due {
		t.Fatal("not due after RetryFailed")
	}
	list, _ := h.store.Sweeps(ctx, "events", 10)
	var states []string
	for _, s := range list {
		states = append(states, string(s.State))
	}
	if got := strings.Join(states, " "); got != "failed committed committed committed" {
		t.Fatalf("sweeps %s", got)
	}
}

func TestSweeper_ExportAndAck(t *testing.T) {
	d := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: &conn{},
		Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second, SweepEvery: 24 * time.Hour, SweepMode: "external"}}
	h := newHarness(t, nil, d)
	sw := h.sweeper(d)
	ctx := context.Background()
	reqs := h.queue(t, 11, 12)

	t.Run("BadFormatChangesNothing", func(t *testing.T) {
		for _, f := range []string{"csv", "", "jsonl; rm -rf /"} {
			if _, _, err := sw.StartExport(ctx, "lake", f, "op"); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Fatalf("format %q: %v", f, err)
			}
		}
		if n, _, _ := h.store.QueuedTasks(ctx, "lake"); n != 2 {
			t.Fatalf("%d queued", n)
		}
	})
	t.Run("NotSweptInternally", func(t *testing.T) {
		if _, err := sw.RunNow(ctx, "lake", "op"); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("RunNow of a dataset without a sweeper: %v", err)
		}
		if due, _, _ := sw.Due(ctx, d); due {
			t.Fatal("an external dataset is never due for the schedule")
		}
	})

	var exported *erasure.Sweep
	t.Run("Export", func(t *testing.T) {
		s, write, err := sw.StartExport(ctx, "lake", "jsonl", "op")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := write(&buf)
		if err != nil || n != 2 || s.State != erasure.SweepExported || s.Tasks != 2 {
			t.Fatalf("export %+v: %d rows, %v", s, n, err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var row files.ExportRow
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("export line %q: %v", line, err)
			}
			got = append(got, fmt.Sprintf("%d:%s=%s", row.TaskID, row.Identifier, row.Value))
		}
		sort.Strings(got)
		want := []string{fmt.Sprintf("%d:user_id=11", offlineTask(t, reqs[0]).ID), fmt.Sprintf("%d:user_id=12", offlineTask(t, reqs[1]).ID)}
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("export %v, want %v", got, want)
		}
		if _, _, err := sw.StartExport(ctx, "lake", "jsonl", "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("second export while one is open: %v", err)
		}
		exported = s
	})
	t.Run("AckChecks", func(t *testing.T) {
		if _, err := sw.Ack(ctx, "other", exported.ID, true, 0, "", "x"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("ack under another dataset: %v", err)
		}
		if _, err := sw.Ack(ctx, "lake", "s_nope", true, 0, "", "x"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("ack of an unknown sweep: %v", err)
		}
		if _, err := sw.Ack(ctx, "lake", exported.ID, true, -1, "", "x"); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("negative removed: %v", err)
		}
		for _, r := range reqs {
			if got := h.get(t, r.ID); got.Status == erasure.RequestCompleted {
				t.Fatal("completed before the ack")
			}
		}
	})
	t.Run("AckDone", func(t *testing.T) {
		s, err := sw.Ack(ctx, "lake", exported.ID, true, 40, "", "ack:lake")
		if err != nil || s.State != erasure.SweepCommitted || s.Removed != 40 {
			t.Fatalf("ack %+v %v", s, err)
		}
		for _, r := range reqs {
			if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
				t.Fatalf("request %s after the ack", got.Status)
			}
		}
		if _, err := sw.Ack(ctx, "lake", exported.ID, true, 40, "", "ack:lake"); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("second ack: %v", err)
		}
	})
	t.Run("AckFailedRequeues", func(t *testing.T) {
		more := h.queue(t, 13)
		s, write, err := sw.StartExport(ctx, "lake", "parquet", "op")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := write(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		f, err := sw.Ack(ctx, "lake", s.ID, false, 0, "spark job OOM", "ack:lake")
		if err != nil || f.State != erasure.SweepFailed || f.Error != "spark job OOM" {
			t.Fatalf("failed ack %+v %v", f, err)
		}
		if tk := offlineTask(t, h.get(t, more[0].ID)); tk.State != erasure.TaskQueued || tk.SweepID != "" {
			t.Fatalf("task after a failed ack %+v", tk)
		}
	})
	t.Run("UndeliveredExportFails", func(t *testing.T) {
		s, write, err := sw.StartExport(ctx, "lake", "jsonl", "op")
		if err != nil || s.Tasks != 1 {
			t.Fatalf("%+v %v", s, err)
		}
		if _, err := write(failingWriter{}); err == nil {
			t.Fatal("write to a broken writer succeeded")
		}
		if got, _ := h.store.Sweep(ctx, s.ID); got.State != erasure.SweepFailed {
			t.Fatalf("sweep after an undelivered export: %+v", got)
		}
		if n, _, _ := h.store.QueuedTasks(ctx, "lake"); n != 1 {
			t.Fatalf("%d queued after an undelivered export, want 1", n)
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("connection reset") }

func TestSweeper_Resume(t *testing.T) {
	dir := snapshot(t, 3, 3)
	events := filesDataset(t, "events", dir)
	h := newHarness(t, nil, events)
	ctx := context.Background()
	reqs := h.queue(t, 2, 8)
	// A previous process started this sweep and died.
	left, _, err := h.store.StartSweep(ctx, "events", "s_left", "internal", "op")
	if err != nil || left.Tasks != 2 {
		t.Fatalf("%+v %v", left, err)
	}
	sw := h.sweeper(events)
	n, err := sw.Resume(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Resume = %d, %v", n, err)
	}
	sw.Wait()
	if s, _ := h.store.Sweep(ctx, "s_left"); s.State != erasure.SweepCommitted || s.Removed != 4 {
		t.Fatalf("resumed sweep %+v", s)
	}
	if got := usersIn(t, dir); got["2"] != 0 || got["8"] != 0 || len(got) != 7 {
		t.Fatalf("rows after the resumed sweep: %v", got)
	}
	for _, r := range reqs {
		if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("request %s", got.Status)
		}
	}

	t.Run("UnregisteredDatasetFails", func(t *testing.T) {
		h.queue(t, 5)
		if _, _, err := h.store.StartSweep(ctx, "events", "s_orphan", "internal", "op"); err != nil {
			t.Fatal(err)
		}
		other := h.sweeper()
		if n, err := other.Resume(ctx); err != nil || n != 0 {
			t.Fatalf("Resume = %d, %v", n, err)
		}
		if s, _ := h.store.Sweep(ctx, "s_orphan"); s.State != erasure.SweepFailed || !strings.Contains(s.Error, "not registered") {
			t.Fatalf("orphan sweep %+v", s)
		}
		if n, _, _ := h.store.QueuedTasks(ctx, "events"); n != 1 {
			t.Fatalf("%d queued, want 1", n)
		}
	})
}
