package client_test

import (
	"context"
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/api/apitest"
)

// sweepService is an erasure.SweepService over one offline dataset "events"; it keeps the
// calls it gets.
type sweepService struct {
	mu     sync.Mutex
	queued int
	calls  []string
	slow   time.Duration // BuildIndex takes this long
}

func (f *sweepService) call(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *sweepService) known(ds string) error {
	if ds != "events" {
		return erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not registered", ds)
	}
	return nil
}

func (f *sweepService) RunSweep(ctx context.Context, ds, actor string) (*erasure.Sweep, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.call("run by " + actor)
	return &erasure.Sweep{ID: "s_1", Dataset: ds, State: erasure.SweepRunning, Tasks: f.queued}, nil
}

func (f *sweepService) SweepStatus(ctx context.Context, ds string, limit int) (*erasure.SweepStatus, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	run := erasure.Sweep{ID: "s_1", Dataset: ds, State: erasure.SweepRunning, Tasks: limit}
	return &erasure.SweepStatus{Dataset: ds, Running: &run, Sweeps: []erasure.Sweep{run},
		Progress: &erasure.SweepProgress{PartitionsDone: 1, PartitionsTotal: 4, BytesDone: 10, BytesTotal: 40, Elapsed: time.Second}}, nil
}

func (f *sweepService) BuildIndex(ctx context.Context, ds, actor string) (*erasure.IndexReport, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	time.Sleep(f.slow)
	f.call("index by " + actor)
	return &erasure.IndexReport{Partitions: 4, Built: 3, Current: 1, Elapsed: 2 * time.Second}, nil
}

func (f *sweepService) StartExport(ctx context.Context, ds, format, actor string) (*erasure.Sweep, func(io.Writer) (int, error), error) {
	if err := f.known(ds); err != nil {
		return nil, nil, err
	}
	f.call("export " + format + " by " + actor)
	sw := &erasure.Sweep{ID: "s_2", Dataset: ds, State: erasure.SweepExported, Tasks: f.queued}
	return sw, func(w io.Writer) (int, error) {
		_, err := io.WriteString(w, `{"task_id":1,"identifier":"user_id","value":"42"}`+"\n")
		return 1, err
	}, nil
}

func (f *sweepService) AckSweep(ctx context.Context, ds, id string, ack erasure.SweepAck, actor string) (*erasure.Sweep, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.call("ack " + id + " " + string(ack.Status) + " by " + actor)
	return &erasure.Sweep{ID: id, Dataset: ds, State: erasure.SweepCommitted, SweepResult: erasure.SweepResult{Removed: ack.Removed}}, nil
}

func TestClient_Sweeps(t *testing.T) {
	svc := apitest.New([]string{"user_id"})
	sweeps := &sweepService{queued: 2}
	s := api.New(api.Config{Service: svc, Tokens: []api.Token{{Name: "ops", Secret: "ops-secret", Roles: []string{"operate"}}}})
	for pattern, h := range api.SweepRoutes(s, sweeps) {
		s.Mount(pattern, h)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c := mustClient(t, srv.URL, "ops-secret")
	ctx := t.Context()

	t.Run("Run", func(t *testing.T) {
		sw, err := c.RunSweep(ctx, "events")
		if err != nil || sw.ID != "s_1" || sw.Tasks != 2 {
			t.Fatalf("%+v %v", sw, err)
		}
		if _, err := c.RunSweep(ctx, "nope"); code(err) != erasure.ENOTFOUND {
			t.Fatalf("unknown dataset: %v", err)
		}
	})
	t.Run("StatusWithProgress", func(t *testing.T) {
		st, err := c.SweepStatus(ctx, "events", 7)
		if err != nil || st.Running == nil || st.Running.Tasks != 7 || st.Progress == nil || st.Progress.BytesTotal != 40 || st.Progress.Elapsed != time.Second {
			t.Fatalf("%+v %v", st, err)
		}
	})
	t.Run("IndexOutlivesTheClientTimeout", func(t *testing.T) {
		sweeps.slow = 300 * time.Millisecond
		c.HTTP.Timeout = 50 * time.Millisecond
		defer func() { sweeps.slow, c.HTTP.Timeout = 0, 30*time.Second }()
		rep, err := c.BuildIndex(ctx, "events")
		if err != nil || rep.Built != 3 || rep.Elapsed != 2*time.Second {
			t.Fatalf("%+v %v", rep, err)
		}
	})
	t.Run("Export", func(t *testing.T) {
		ex, err := c.ExportSweep(ctx, "events", "jsonl")
		if err != nil || ex.Sweep != "s_2" || ex.Tasks != 2 || ex.Body == nil {
			t.Fatalf("%+v %v", ex, err)
		}
		b, err := io.ReadAll(ex.Body)
		ex.Body.Close()
		if err != nil || string(b) != `{"task_id":1,"identifier":"user_id","value":"42"}`+"\n" {
			t.Fatalf("body %q %v", b, err)
		}
		if _, err := c.ExportSweep(ctx, "events", "csv"); code(err) != erasure.EINVALID {
			t.Fatalf("csv: %v", err)
		}
	})
	t.Run("ExportNothingQueued", func(t *testing.T) {
		sweeps.queued = 0
		defer func() { sweeps.queued = 2 }()
		ex, err := c.ExportSweep(ctx, "events", "parquet")
		if err != nil || ex.Sweep != "" || ex.Tasks != 0 || ex.Body != nil {
			t.Fatalf("%+v %v", ex, err)
		}
	})
	t.Run("Ack", func(t *testing.T) {
		sw, err := c.AckSweep(ctx, "events", "s_2", erasure.SweepAck{Status: erasure.AckDone, Removed: 5})
		if err != nil || sw.State != erasure.SweepCommitted || sw.Removed != 5 {
			t.Fatalf("%+v %v", sw, err)
		}
		if _, err := c.AckSweep(ctx, "events", "s_2", erasure.SweepAck{Status: "maybe"}); code(err) != erasure.EINVALID {
			t.Fatalf("bad status: %v", err)
		}
	})
	want := []string{"run by ops", "index by ops", "export jsonl by ops", "export parquet by ops", "ack s_2 done by ops"}
	sweeps.mu.Lock()
	defer sweeps.mu.Unlock()
	if len(sweeps.calls) != len(want) {
		t.Fatalf("calls %q, want %q", sweeps.calls, want)
	}
	for i := range want {
		if sweeps.calls[i] != want[i] {
			t.Fatalf("calls %q, want %q", sweeps.calls, want)
		}
	}
}
