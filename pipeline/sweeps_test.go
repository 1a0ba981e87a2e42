package pipeline_test

import (
	"context"
	"io"
	"testing"
	"time"

	"erasure"
	"erasure/pipeline"
)

// reporting is a connector that sweeps through a gate and reports half its work done as it
// enters: what a files sweep reports, without the files.
type reporting struct{ gate }

func (r *reporting) Sweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	if report := erasure.SweepProgressFrom(ctx); report != nil {
		report(erasure.SweepProgress{PartitionsDone: 1, PartitionsTotal: 2, BytesDone: 10, BytesTotal: 20})
	}
	return r.gate.Sweep(ctx, batch)
}

func TestSweepService(t *testing.T) {
	events := filesDataset(t, "events", snapshot(t, 2, 5))
	r := &reporting{gate{release: make(chan struct{}), entered: make(chan struct{}, 1)}}
	lake := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: r,
		Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second}}
	db := dataset("db", &conn{held: map[string]bool{}}, []string{"user_id"})
	h := newHarness(t, nil, db, events, lake)
	svc := &pipeline.SweepService{Sweeper: h.sweeper(db, events, lake)}
	ctx := context.Background()
	h.queue(t, 1, 2)

	t.Run("UnknownDatasetIsNotFound", func(t *testing.T) {
		_, err1 := svc.SweepStatus(ctx, "nope", 10)
		_, err2 := svc.BuildIndex(ctx, "nope", "op")
		_, _, err3 := svc.StartExport(ctx, "nope", "jsonl", "op")
		_, err4 := svc.AckSweep(ctx, "nope", "s_x", erasure.SweepAck{Status: erasure.AckDone}, "op")
		for i, err := range []error{err1, err2, err3, err4} {
			if erasure.ErrorCode(err) != erasure.ENOTFOUND {
				t.Errorf("call %d: %v, want not found", i+1, err)
			}
		}
	})
	t.Run("RealtimeDatasetHasNoSweeps", func(t *testing.T) {
		if _, err := svc.SweepStatus(ctx, "db", 10); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("%v, want invalid", err)
		}
	})
	t.Run("IndexOfAFilesDataset", func(t *testing.T) {
		rep, err := svc.BuildIndex(ctx, "events", "op")
		if err != nil || rep.Partitions != 2 || rep.Built != 2 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
	t.Run("NoIndexIsInvalid", func(t *testing.T) {
		if _, err := svc.BuildIndex(ctx, "lake", "op"); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("%v, want invalid", err)
		}
	})
	t.Run("StatusShowsTheRunningSweepWithItsProgress", func(t *testing.T) {
		started, err := svc.RunSweep(ctx, "lake", "op")
		if err != nil || started.Tasks != 2 {
			t.Fatalf("%+v %v", started, err)
		}
		<-r.entered
		st, err := svc.SweepStatus(ctx, "lake", 10)
		if err != nil || st.Running == nil || st.Running.ID != started.ID || st.Progress == nil || st.Progress.PartitionsDone != 1 || st.Progress.BytesTotal != 20 {
			t.Fatalf("%+v %v", st, err)
		}
		close(r.release)
		svc.Sweeper.Wait()
		st, err = svc.SweepStatus(ctx, "lake", 10)
		if err != nil || st.Running != nil || st.Progress != nil || len(st.Sweeps) != 1 || st.Sweeps[0].State != erasure.SweepCommitted {
			t.Fatalf("after the sweep: %+v %v", st, err)
		}
	})
	t.Run("AckIsValidatedBeforeAnythingChanges", func(t *testing.T) {
		sw, write, err := svc.StartExport(ctx, "events", "jsonl", "op")
		if err != nil || sw.Tasks != 2 {
			t.Fatalf("%+v %v", sw, err)
		}
		if _, err := write(io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []erasure.SweepAck{
			{Status: "maybe"},
			{Status: erasure.AckDone, Removed: -1},
			{Status: erasure.AckDone, Error: "done, but"},
		} {
			if _, err := svc.AckSweep(ctx, "events", sw.ID, bad, "job"); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("ack %+v: %v, want invalid", bad, err)
			}
		}
		if got, _ := h.store.Sweep(ctx, sw.ID); got.State != erasure.SweepExported {
			t.Fatalf("a refused ack changed the sweep: %s", got.State)
		}
		ended, err := svc.AckSweep(ctx, "events", sw.ID, erasure.SweepAck{Status: erasure.AckDone, Removed: 4}, "job")
		if err != nil || ended.State != erasure.SweepCommitted || ended.Removed != 4 {
			t.Fatalf("%+v %v", ended, err)
		}
	})
}
