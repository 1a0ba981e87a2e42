package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"erasure"
)

// ReportStore is a store that also answers the dashboard (erasure.ReportStore).
type ReportStore interface {
	SweepStore
	erasure.ReportStore
}

// ReportOpener opens a fresh empty report store whose clock is now.
type ReportOpener func(t *testing.T, now func() time.Time) ReportStore

// RunReports runs the conformance cases of the search by identifier and by dataset
// (erasure.RequestFilter) and of erasure.ReportStore.
func RunReports(t *testing.T, open ReportOpener) {
	t.Run("SearchByIdentifier", func(t *testing.T) { testSearchByIdentifier(t, open) })
	t.Run("SearchByDataset", func(t *testing.T) { testSearchByDataset(t, open) })
	t.Run("RequestCounts", func(t *testing.T) { testRequestCounts(t, open) })
	t.Run("Activity", func(t *testing.T) { testActivity(t, open) })
	t.Run("DatasetLoads", func(t *testing.T) { testDatasetLoads(t, open) })
	t.Run("SweepPage", func(t *testing.T) { testSweepPage(t, open) })
}

func ids(rs []erasure.Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// pageAll lists every request f selects, pages of limit.
func pageAll(t *testing.T, s erasure.Store, f erasure.RequestFilter, limit int) []string {
	t.Helper()
	f.Limit = limit
	var out []string
	for pages := 0; pages < 100; pages++ {
		p, err := s.Requests(context.Background(), f)
		if err != nil {
			t.Fatalf("Requests(%+v): %v", f, err)
		}
		if len(p.Requests) > limit {
			t.Fatalf("page of %d requests, limit %d", len(p.Requests), limit)
		}
		out = append(out, ids(p.Requests)...)
		if f.Cursor = p.Next; f.Cursor == "" {
			return out
		}
	}
	t.Fatal("more than 100 pages")
	return nil
}

func testSearchByIdentifier(t *testing.T, open ReportOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	alice := erasure.Identifier{Type: "email", Value: "alice@example.com"}
	hash := Hasher.Identifier(alice)
	// Three requests name alice (one by a lookup), two do not.
	first := create(t, s, newRequest(c, subject("email", "alice@example.com", "user_id", "1"), erase("a")))
	c.Add(time.Millisecond)
	create(t, s, newRequest(c, subject("email", "bob@example.com"), erase("a")))
	c.Add(time.Millisecond)
	found := create(t, s, newRequest(c, subject("user_id", "1"),
		erasure.TaskSpec{Dataset: "users", Kind: erasure.TaskLookup, Method: erasure.MethodRealtime, Keys: []string{"user_id"}}, erase("a")))
	c.Add(time.Millisecond)
	third := create(t, s, newRequest(c, subject("email", "alice@example.com"), erase("a")))
	c.Add(time.Millisecond)
	create(t, s, newRequest(c, subject("email", "alice@example.org"), erase("a")))

	// Run everything: the first request completes (its clear values are dropped), the lookup
	// of the third finds alice's e-mail.
	for _, tk := range lease(t, s, "w", 100) {
		switch {
		case tk.Kind == erasure.TaskLookup:
			if _, err := s.FinishTasks(ctx, []erasure.TaskResult{{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: tk.Kind, Owner: "w",
				Attempt: tk.Attempts, State: erasure.TaskDone, Found: []erasure.Identifier{alice}, Inputs: 1, StartedAt: c.Now(), FinishedAt: c.Now()}}); err != nil {
				t.Fatal(err)
			}
		case tk.RequestID == first.ID:
			finish(t, s, c, erasure.TaskDone, tk)
		}
	}
	if r := get(t, s, first.ID); r.Status != erasure.RequestCompleted || len(r.Subject) != 0 {
		t.Fatalf("first request: %s with %d clear identifiers, want completed with none", r.Status, len(r.Subject))
	}

	t.Run("FindsEndedAndFoundByLookup", func(t *testing.T) {
		got := pageAll(t, s, erasure.RequestFilter{SubjectHash: hash}, 50)
		if want := []string{third.ID, found.ID, first.ID}; !slices.Equal(got, want) {
			t.Fatalf("requests of alice: %v, want %v (newest first)", got, want)
		}
	})
	t.Run("PagesByCursor", func(t *testing.T) {
		got := pageAll(t, s, erasure.RequestFilter{SubjectHash: hash}, 1)
		if want := []string{third.ID, found.ID, first.ID}; !slices.Equal(got, want) {
			t.Fatalf("paged by one: %v, want %v", got, want)
		}
	})
	t.Run("CombinesWithStatus", func(t *testing.T) {
		got := pageAll(t, s, erasure.RequestFilter{SubjectHash: hash, Status: erasure.RequestCompleted}, 50)
		if !slices.Equal(got, []string{first.ID}) {
			t.Fatalf("completed requests of alice: %v, want %s", got, first.ID)
		}
	})
	t.Run("OtherValueFindsNothing", func(t *testing.T) {
		for _, id := range []erasure.Identifier{{Type: "email", Value: "ALICE@example.com"}, {Type: "user_id", Value: "alice@example.com"}, {Type: "email", Value: "carol@example.com"}} {
			if got := pageAll(t, s, erasure.RequestFilter{SubjectHash: Hasher.Identifier(id)}, 50); len(got) != 0 {
				t.Fatalf("search for %s:… found %v", id.Type, got)
			}
		}
	})
	t.Run("ClearIdentifierIsRefused", func(t *testing.T) {
		_, err := s.Requests(ctx, erasure.RequestFilter{Identifier: &alice})
		wantCode(t, "Requests with a clear identifier", err, erasure.EINVALID)
	})
}

func testSearchByDataset(t *testing.T, open ReportOpener) {
	c := NewClock()
	s := open(t, c.Now)
	var all []*erasure.Request
	for i := 0; i < 5; i++ {
		all = append(all, create(t, s, newRequest(c, subject("user_id", itoa(i)), erase("a"), erase("b"))))
		c.Add(time.Millisecond)
	}
	// Requests 0 and 1 finish both datasets; 2 fails on b; 3 and 4 wait.
	for _, tk := range lease(t, s, "w", 100) {
		switch {
		case tk.RequestID == all[0].ID || tk.RequestID == all[1].ID:
			finish(t, s, c, erasure.TaskDone, tk)
		case tk.RequestID == all[2].ID && tk.Dataset == "b":
			finish(t, s, c, erasure.TaskFailed, tk)
		case tk.RequestID == all[2].ID:
			finish(t, s, c, erasure.TaskDone, tk)
		}
	}
	got := pageAll(t, s, erasure.RequestFilter{Dataset: "b"}, 2)
	if want := []string{all[4].ID, all[3].ID, all[2].ID}; !slices.Equal(got, want) {
		t.Fatalf("requests held up by b: %v, want %v", got, want)
	}
	got = pageAll(t, s, erasure.RequestFilter{Dataset: "b", Status: erasure.RequestFailed}, 50)
	if !slices.Equal(got, []string{all[2].ID}) {
		t.Fatalf("failed requests held up by b: %v, want %s", got, all[2].ID)
	}
	if got := pageAll(t, s, erasure.RequestFilter{Dataset: "a"}, 50); len(got) != 2 {
		t.Fatalf("requests held up by a: %v, want the two running", got)
	}
	if got := pageAll(t, s, erasure.RequestFilter{Dataset: "nope"}, 50); len(got) != 0 {
		t.Fatalf("requests held up by an unknown dataset: %v", got)
	}
	c.Add(48 * time.Hour)
	if got := pageAll(t, s, erasure.RequestFilter{Dataset: "b", Overdue: true}, 50); len(got) != 3 {
		t.Fatalf("overdue requests held up by b: %v, want 3", got)
	}
}

func testRequestCounts(t *testing.T, open ReportOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	counts, err := s.RequestCounts(ctx)
	if err != nil || len(counts) != 0 {
		t.Fatalf("empty store: %v, %v", counts, err)
	}
	var all []*erasure.Request
	for i := 0; i < 6; i++ {
		all = append(all, create(t, s, newRequest(c, subject("user_id", itoa(i)), erase("a"))))
	}
	tasks := lease(t, s, "w", 3)
	finish(t, s, c, erasure.TaskDone, tasks[0])
	finish(t, s, c, erasure.TaskFailed, tasks[1])
	if _, err := s.CancelRequest(ctx, tasks[2].RequestID, "op"); err != nil {
		t.Fatal(err)
	}
	counts, err = s.RequestCounts(ctx)
	want := map[erasure.RequestStatus]int{erasure.RequestCompleted: 1, erasure.RequestFailed: 1, erasure.RequestCancelled: 1, erasure.RequestPending: 3}
	if err != nil || !mapsEqual(counts, want) {
		t.Fatalf("RequestCounts = %v, %v; want %v", counts, err, want)
	}
	counts, err = s.RequestCounts(ctx, erasure.RequestPending, erasure.RequestRunning, erasure.RequestFailed)
	want = map[erasure.RequestStatus]int{erasure.RequestFailed: 1, erasure.RequestPending: 3}
	if err != nil || !mapsEqual(counts, want) {
		t.Fatalf("RequestCounts of the open statuses = %v, %v; want %v", counts, err, want)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func testActivity(t *testing.T, open ReportOpener) {
	c := NewClock() // 2026-03-01 12:00 UTC
	s := open(t, c.Now)
	ctx := context.Background()
	day0 := c.Now().Truncate(24 * time.Hour)
	var all []*erasure.Request
	for i := 0; i < 5; i++ {
		all = append(all, create(t, s, newRequest(c, subject("user_id", itoa(i)), erase("a"))))
	}
	tasks := lease(t, s, "w", 5)
	byReq := map[string]erasure.Task{}
	for _, tk := range tasks {
		byReq[tk.RequestID] = tk
	}
	// Day 0: two complete. Day 2: one completes, one fails, one is cancelled.
	finish(t, s, c, erasure.TaskDone, byReq[all[0].ID], byReq[all[1].ID])
	c.Add(48 * time.Hour)
	finish(t, s, c, erasure.TaskDone, byReq[all[2].ID])
	finish(t, s, c, erasure.TaskFailed, byReq[all[3].ID])
	if _, err := s.CancelRequest(ctx, all[4].ID, "op"); err != nil {
		t.Fatal(err)
	}
	c.Add(24 * time.Hour) // day 3: nothing
	days, err := s.Activity(ctx, day0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []erasure.ActivityDay{
		{Day: day0.Add(-24 * time.Hour)},
		{Day: day0, Completed: 2},
		{Day: day0.Add(24 * time.Hour)},
		{Day: day0.Add(48 * time.Hour), Completed: 1, Failed: 1, Cancelled: 1},
		{Day: day0.Add(72 * time.Hour)},
	}
	if len(days) != len(want) {
		t.Fatalf("Activity returned %d days, want %d: %+v", len(days), len(want), days)
	}
	for i := range want {
		if !days[i].Day.Equal(want[i].Day) || days[i].Completed != want[i].Completed || days[i].Failed != want[i].Failed || days[i].Cancelled != want[i].Cancelled {
			t.Errorf("day %d: %+v, want %+v", i, days[i], want[i])
		}
	}
	// A retried request is no longer counted as failed.
	if _, err := s.RetryRequest(ctx, all[3].ID, "op", erasure.RetryOptions{}); err != nil {
		t.Fatal(err)
	}
	days, _ = s.Activity(ctx, day0)
	for _, d := range days {
		if d.Failed != 0 {
			t.Fatalf("after retry: %+v still counts a failure", d)
		}
	}
}

func testDatasetLoads(t *testing.T, open ReportOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	var all []*erasure.Request
	for i := 0; i < 4; i++ {
		all = append(all, create(t, s, newRequest(c, subject("user_id", itoa(i)), erase("a"), erase("b", "a"))))
		c.Add(time.Second)
	}
	// a: request 0 done, 1 failed, 2 running, 3 pending. b: blocked behind a, except 0's pending.
	byReq := map[string]erasure.Task{}
	for _, tk := range lease(t, s, "w", 3) {
		byReq[tk.RequestID] = tk
	}
	if len(byReq) != 3 || byReq[all[3].ID].ID != 0 {
		t.Fatalf("leased %v, want the tasks on a of the three oldest requests", byReq)
	}
	finish(t, s, c, erasure.TaskDone, byReq[all[0].ID])
	finish(t, s, c, erasure.TaskFailed, byReq[all[1].ID])
	loads, err := s.DatasetLoads(ctx, []string{"b", "a", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(loads) != 3 || loads[0].Dataset != "b" || loads[1].Dataset != "a" || loads[2].Dataset != "none" {
		t.Fatalf("DatasetLoads order: %+v", loads)
	}
	a, b, none := loads[1], loads[0], loads[2]
	if a.Backlog != 2 || a.Failed != 1 || a.ByState[erasure.TaskRunning] != 1 || a.ByState[erasure.TaskPending] != 1 || a.ByState[erasure.TaskDone] != 0 {
		t.Errorf("a: %+v", a)
	}
	if a.Oldest != all[1].ID || a.OldestSince == nil || !a.OldestSince.Equal(all[1].CreatedAt) {
		t.Errorf("a's oldest: %s since %v, want %s since %v", a.Oldest, a.OldestSince, all[1].ID, all[1].CreatedAt)
	}
	if b.Backlog != 4 || b.Failed != 0 || b.ByState[erasure.TaskBlocked] != 3 || b.ByState[erasure.TaskPending] != 1 || b.Oldest != all[0].ID {
		t.Errorf("b: %+v", b)
	}
	if none.Backlog != 0 || none.Failed != 0 || none.Oldest != "" || none.OldestSince != nil {
		t.Errorf("a dataset without tasks: %+v", none)
	}
}

func testSweepPage(t *testing.T, open ReportOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	var want []string
	for i := 0; i < 5; i++ {
		ds := []string{"snap", "files"}[i%2]
		queueOffline(t, s, c, ds, 1, i)
		id := "s_" + itoa(i)
		if _, _, err := s.StartSweep(ctx, ds, id, erasure.SweepInternal, "op"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishSweep(ctx, id, erasure.SweepResult{}, nil, "op"); err != nil {
			t.Fatal(err)
		}
		want = append([]string{id}, want...)
		if i != 2 { // two sweeps start in the same millisecond: the id orders them
			c.Add(time.Second)
		}
	}
	list := func(f erasure.SweepFilter) []string {
		t.Helper()
		var out []string
		for pages := 0; pages < 20; pages++ {
			p, err := s.SweepPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, sw := range p.Sweeps {
				out = append(out, sw.ID)
			}
			if f.Cursor = p.Next; f.Cursor == "" {
				break
			}
		}
		return out
	}
	if got := list(erasure.SweepFilter{Limit: 2}); !slices.Equal(got, want) {
		t.Fatalf("sweeps paged by 2: %v, want %v", got, want)
	}
	if got := list(erasure.SweepFilter{Dataset: "snap", Limit: 1}); !slices.Equal(got, []string{"s_4", "s_2", "s_0"}) {
		t.Fatalf("sweeps of snap: %v", got)
	}
	_, err := s.SweepPage(ctx, erasure.SweepFilter{Cursor: "yesterday"})
	wantCode(t, "SweepPage with a bad cursor", err, erasure.EINVALID)
}
