package erasure_test

import (
	"fmt"
	"testing"

	"erasure"
)

func TestSubject(t *testing.T) {
	s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "2"}, erasure.Identifier{Type: "email", Value: "a@x"}, erasure.Identifier{Type: "user_id", Value: "2"})
	if len(s) != 2 || s[0].Type != "email" {
		t.Fatalf("not sorted or not deduplicated: %v", s)
	}
	s2, added := s.With(erasure.Identifier{Type: "user_id", Value: "3"}, erasure.Identifier{Type: "user_id", Value: "2"})
	if len(added) != 1 || len(s2.Values("user_id")) != 2 || !s2.HasAll([]string{"email", "user_id"}) || s2.Has("phone") {
		t.Fatalf("With: %v added %v", s2, added)
	}
	if got := s2.Only([]string{"user_id"}); len(got) != 2 {
		t.Fatalf("Only: %v", got)
	}
	if got := s2.Types(); len(got) != 2 || got[0] != "email" {
		t.Fatalf("Types: %v", got)
	}
}

func TestIdentifier_Validate(t *testing.T) {
	for _, bad := range []erasure.Identifier{{Type: "", Value: "1"}, {Type: "User", Value: "1"}, {Type: "a;b", Value: "1"}, {Type: "user_id", Value: ""}, {Type: "user_id", Value: "\xff"}} {
		if erasure.ErrorCode(bad.Validate()) != erasure.EINVALID {
			t.Errorf("%q=%q accepted", bad.Type, bad.Value)
		}
	}
	if err := (erasure.Identifier{Type: "user_id", Value: "'; DROP TABLE users; --"}).Validate(); err != nil {
		t.Errorf("an odd but valid value refused: %v", err)
	}
}

func task(ds string, kind erasure.TaskKind, state erasure.TaskState, after ...string) erasure.Task {
	return erasure.Task{ID: int64(len(ds)), Dataset: ds, Kind: kind, State: state, After: after}
}

func TestRunnable(t *testing.T) {
	tests := []struct {
		name  string
		tasks []erasure.Task
		want  int
	}{
		{"NoDependencies", []erasure.Task{task("a", erasure.TaskErase, erasure.TaskBlocked)}, 1},
		{"WaitsForAfter", []erasure.Task{task("a", erasure.TaskErase, erasure.TaskRunning), task("bb", erasure.TaskErase, erasure.TaskBlocked, "a")}, 0},
		{"AfterDone", []erasure.Task{task("a", erasure.TaskErase, erasure.TaskDone), task("bb", erasure.TaskErase, erasure.TaskBlocked, "a")}, 1},
		{"AfterSkippedCounts", []erasure.Task{task("a", erasure.TaskErase, erasure.TaskSkipped), task("bb", erasure.TaskErase, erasure.TaskBlocked, "a")}, 1},
		{"AfterFailedBlocks", []erasure.Task{task("a", erasure.TaskErase, erasure.TaskFailed), task("bb", erasure.TaskErase, erasure.TaskBlocked, "a")}, 0},
		{"WaitsForLookups", []erasure.Task{task("a", erasure.TaskLookup, erasure.TaskPending), task("bb", erasure.TaskErase, erasure.TaskBlocked)}, 0},
		{"LookupDoneOfAnotherDatasetDoesNotSatisfyAfter", []erasure.Task{task("a", erasure.TaskLookup, erasure.TaskDone), task("bb", erasure.TaskErase, erasure.TaskBlocked, "a")}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(erasure.Runnable(tc.tasks)); got != tc.want {
				t.Fatalf("%d runnable, want %d", got, tc.want)
			}
		})
	}
}

func TestRequestStatusOf(t *testing.T) {
	tests := []struct {
		name      string
		cancelled bool
		tasks     []erasure.Task
		want      erasure.RequestStatus
	}{
		{"NothingStarted", false, []erasure.Task{{State: erasure.TaskPending}, {State: erasure.TaskBlocked}}, erasure.RequestPending},
		{"OneRunning", false, []erasure.Task{{State: erasure.TaskRunning, Attempts: 1}, {State: erasure.TaskBlocked}}, erasure.RequestRunning},
		{"AllDoneOrSkipped", false, []erasure.Task{{State: erasure.TaskDone}, {State: erasure.TaskSkipped}}, erasure.RequestCompleted},
		{"FailedAndNothingActive", false, []erasure.Task{{State: erasure.TaskFailed, Attempts: 3}, {State: erasure.TaskBlocked}}, erasure.RequestFailed},
		{"FailedButOthersActive", false, []erasure.Task{{State: erasure.TaskFailed, Attempts: 3}, {State: erasure.TaskDispatched, Attempts: 1}}, erasure.RequestRunning},
		{"Cancelled", true, []erasure.Task{{State: erasure.TaskCancelled}}, erasure.RequestCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := erasure.RequestStatusOf(tc.cancelled, tc.tasks); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	err := erasure.Errorf(erasure.ENOTFOUND, "request %s not found", "r_1")
	if erasure.ErrorCode(err) != erasure.ENOTFOUND || erasure.ErrorMessage(err) != "request r_1 not found" {
		t.Fatal(err)
	}
	if erasure.ErrorCode(erasure.Transientf("x")) != erasure.EINTERNAL || erasure.ErrorMessage(erasure.Transientf("secret")) != "internal error" {
		t.Fatal("non-domain errors must not leak")
	}
	if !erasure.IsPermanent(erasure.Permanentf("403")) || erasure.IsPermanent(erasure.Transientf("503")) {
		t.Fatal("classification")
	}
}

func TestSuppressionFilter(t *testing.T) {
	f := erasure.NewSuppressionFilter("email", 1000, 0.01)
	for i := 0; i < 1000; i++ {
		f.Add(fmt.Sprintf("email:%032x", i))
	}
	for i := 0; i < 1000; i++ {
		if !f.MayHold(fmt.Sprintf("email:%032x", i)) {
			t.Fatalf("element %d not found", i)
		}
	}
	fp := 0
	for i := 1000; i < 21000; i++ {
		if f.MayHold(fmt.Sprintf("email:%032x", i)) {
			fp++
		}
	}
	if rate := float64(fp) / 20000; rate > 0.02 {
		t.Fatalf("false-positive rate %.4f for a filter sized for 0.01", rate)
	}
	if f.Count != 1000 || f.Format != erasure.SuppressionFilterFormat || uint64(len(f.Filter))*8 != f.Bits {
		t.Fatalf("%+v", f)
	}
}

func TestSplitIdentifier(t *testing.T) {
	id, err := erasure.SplitIdentifier("email:a:b@example.com")
	if err != nil || id.Type != "email" || id.Value != "a:b@example.com" {
		t.Fatalf("%+v %v", id, err)
	}
	for _, bad := range []string{"email", "email:", ":x", "Email:x"} {
		if _, err := erasure.SplitIdentifier(bad); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
