package sqlite_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"erasure"
	"erasure/store/storetest"
)

// TestDB_ErasedHashes: only the identifiers of completed requests are erased ones, each once,
// as the keyed hashes the store keeps (never the clear values).
func TestDB_ErasedHashes(t *testing.T) {
	c := storetest.NewClock()
	db := open(t, c.Now)
	ctx := context.Background()
	h := storetest.Hasher
	id := func(typ, v string) erasure.Identifier { return erasure.Identifier{Type: typ, Value: v} }
	create := func(reqID string, ids ...erasure.Identifier) {
		t.Helper()
		_, _, err := db.CreateRequest(ctx, erasure.NewRequest{ID: reqID, Subject: erasure.NewSubject(ids...), Reason: "user_request",
			Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
			Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// finish leases every due task and ends it in state.
	finish := func(state erasure.TaskState) {
		t.Helper()
		tasks, err := db.LeaseTasks(ctx, "w", 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var results []erasure.TaskResult
		for _, task := range tasks {
			results = append(results, erasure.TaskResult{TaskID: task.ID, RequestID: task.RequestID, Dataset: task.Dataset, Kind: task.Kind,
				Owner: "w", Attempt: task.Attempts, State: state, Error: "boom", StartedAt: c.Now(), FinishedAt: c.Now()})
		}
		if _, err := db.FinishTasks(ctx, results); err != nil {
			t.Fatal(err)
		}
	}

	if got, err := db.ErasedHashes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	create("r_done1", id("user_id", "1"), id("email", "a@example.com"))
	create("r_done2", id("user_id", "1"))
	finish(erasure.TaskDone)
	create("r_failed", id("user_id", "2"))
	finish(erasure.TaskFailed)
	create("r_cancelled", id("user_id", "3"))
	if _, err := db.CancelRequest(ctx, "r_cancelled", "t"); err != nil {
		t.Fatal(err)
	}
	create("r_open", id("user_id", "4"))

	for _, r := range []struct {
		id   string
		want erasure.RequestStatus
	}{{"r_done1", erasure.RequestCompleted}, {"r_done2", erasure.RequestCompleted}, {"r_failed", erasure.RequestFailed}, {"r_cancelled", erasure.RequestCancelled}, {"r_open", erasure.RequestPending}} {
		if req, err := db.Request(ctx, r.id); err != nil || req.Status != r.want {
			t.Fatalf("%s: %+v, %v; want status %s", r.id, req, err, r.want)
		}
	}
	got, err := db.ErasedHashes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{h.Identifier(id("email", "a@example.com")), h.Identifier(id("user_id", "1"))}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("erased hashes = %v, want %v", got, want)
	}
}
