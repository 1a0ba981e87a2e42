package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"erasure"
	"erasure/connector/files"
)

// unitSnapshot writes parts JSON lines partitions (two under a subdirectory); partition p
// holds users p*10+1 … p*10+10, one row each.
func unitSnapshot(t *testing.T, parts int) string {
	t.Helper()
	dir := t.TempDir()
	for p := 0; p < parts; p++ {
		var b strings.Builder
		for u := p*10 + 1; u <= p*10+10; u++ {
			fmt.Fprintf(&b, "{\"user_id\":%d,\"v\":\"x\"}\n", u)
		}
		name := fmt.Sprintf("part-%02d.jsonl", p)
		if p < 2 {
			name = "day=1/" + name
		}
		writeFile(t, filepath.Join(dir, name), []byte(b.String()))
	}
	return dir
}

func users(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, b := range tree(t, dir) {
		if strings.HasPrefix(filepath.Base(name), ".") {
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if i := strings.Index(l, `"user_id":`); i >= 0 {
				out[strings.TrimRight(strings.SplitN(l[i+10:], ",", 2)[0], "}")]++
			}
		}
	}
	return out
}

func jsonConn(t *testing.T, dir string) *files.Connector {
	return newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}, Workers: 2})
}

func TestPartitionedSweep(t *testing.T) {
	ctx := context.Background()
	erased := []string{"3", "17", "42"}

	t.Run("UnitsOnSeveralWorkersThenOneCommit", func(t *testing.T) {
		dir := unitSnapshot(t, 5)
		before := users(t, dir)
		coordinator := jsonConn(t, dir)
		plan, err := coordinator.PlanSweep(ctx, batch(erased...))
		if err != nil {
			t.Fatal(err)
		}
		if plan.ID == "" || len(plan.Units) != 5 || plan.Units[0].Name != "day=1/part-00.jsonl" || plan.Units[0].Size == 0 {
			t.Fatalf("plan %+v", plan)
		}
		// Each unit on a connector of its own, as workers in other processes; one unit twice
		// at once (a lease taken over from a slow worker).
		var wg sync.WaitGroup
		var mu sync.Mutex
		results := make([]erasure.SweepResult, len(plan.Units))
		for i, u := range plan.Units {
			for k := 0; k < 1+btoi(i == 1); k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := jsonConn(t, dir).SweepUnit(ctx, plan.ID, u.Name)
					if err != nil {
						t.Errorf("unit %s: %v", u.Name, err)
					}
					mu.Lock()
					results[i] = res // the unit run twice writes the same result twice
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		if got := users(t, dir); got["3"] != 1 || got["42"] != 1 {
			t.Fatalf("rows erased before the commit: %v", got)
		}
		var removed int64
		for _, r := range results {
			removed += r.Removed
		}
		if removed != 3 {
			t.Fatalf("units removed %d rows, want 3", removed)
		}
		res, err := coordinator.CommitSweep(ctx, plan.ID, batch(erased...))
		if err != nil {
			t.Fatal(err)
		}
		if res.Removed != 3 || res.Partitions != 5 || res.Scanned != 50 {
			t.Fatalf("commit result %+v", res)
		}
		// Each subject's task reports its own rows, counted by the units in other processes.
		if want := map[int64]int64{1: 1, 2: 1, 3: 1}; !reflect.DeepEqual(res.PerTask, want) {
			t.Fatalf("rows per task %v, want %v", res.PerTask, want)
		}
		after := users(t, dir)
		for u, n := range before {
			want := n
			if contains(erased, u) {
				want = 0
			}
			if after[u] != want {
				t.Errorf("user %s: %d rows, want %d", u, after[u], want)
			}
		}
		noLeftovers(t, dir)
	})

	t.Run("CommitSweepsUnitsNotDoneAndNewPartitions", func(t *testing.T) {
		dir := unitSnapshot(t, 4)
		c := jsonConn(t, dir)
		plan, err := c.PlanSweep(ctx, batch(erased...))
		if err != nil {
			t.Fatal(err)
		}
		// Only one unit ran (its worker died before the others); a partition arrived since.
		if _, err := c.SweepUnit(ctx, plan.ID, plan.Units[0].Name); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "part-99.jsonl"), []byte("{\"user_id\":42}\n{\"user_id\":43}\n"))
		if _, err := c.CommitSweep(ctx, plan.ID, batch(erased...)); err != nil {
			t.Fatal(err)
		}
		if got := users(t, dir); got["3"]+got["17"]+got["42"] != 0 || got["43"] != 1 || got["18"] != 1 {
			t.Fatalf("after commit: %v", got)
		}
		noLeftovers(t, dir)
	})

	t.Run("PlanGoneUnitWritesNothingCommitSweepsWhole", func(t *testing.T) {
		dir := unitSnapshot(t, 3)
		c := jsonConn(t, dir)
		plan, err := c.PlanSweep(ctx, batch(erased...))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AbortSweep(ctx, plan.ID); err != nil {
			t.Fatal(err)
		}
		noLeftovers(t, dir)
		if _, err := jsonConn(t, dir).SweepUnit(ctx, plan.ID, plan.Units[0].Name); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("unit of an aborted plan: %v, want ENOTFOUND", err)
		}
		if _, err := c.SweepUnit(ctx, plan.ID, plan.Units[0].Name); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("unit of an aborted plan (cached): %v, want ENOTFOUND", err)
		}
		noLeftovers(t, dir)
		if got := users(t, dir); got["3"] != 1 {
			t.Fatalf("an aborted plan erased rows: %v", got)
		}
		res, err := c.CommitSweep(ctx, plan.ID, batch(erased...))
		if err != nil || res.Removed != 2 {
			t.Fatalf("commit of a plan that is gone: %+v %v; want the batch swept whole (2 rows)", res, err)
		}
		if got := users(t, dir); got["3"]+got["17"] != 0 {
			t.Fatalf("after commit: %v", got)
		}
		noLeftovers(t, dir)
	})

	t.Run("NothingToErase", func(t *testing.T) {
		dir := unitSnapshot(t, 2)
		c := jsonConn(t, dir)
		none := []erasure.SweepSubject{{TaskID: 1, Subject: erasure.NewSubject(erasure.Identifier{Type: "email", Value: "a@example.com"})}}
		plan, err := c.PlanSweep(ctx, none)
		if err != nil || plan.ID != "" || len(plan.Units) != 0 {
			t.Fatalf("plan without keys: %+v %v", plan, err)
		}
		if res, err := c.CommitSweep(ctx, plan.ID, none); err != nil || !reflect.DeepEqual(res, erasure.SweepResult{}) {
			t.Fatalf("commit without keys: %+v %v", res, err)
		}
		noLeftovers(t, dir)
	})

	t.Run("BadUnitNamesAreRefused", func(t *testing.T) {
		dir := unitSnapshot(t, 2)
		c := jsonConn(t, dir)
		plan, err := c.PlanSweep(ctx, batch(erased...))
		if err != nil {
			t.Fatal(err)
		}
		outside := filepath.Join(filepath.Dir(dir), "outside.jsonl")
		os.WriteFile(outside, []byte("{\"user_id\":3}\n"), 0o644)
		for _, name := range []string{"../outside.jsonl", outside, "day=1/../part-02.jsonl", ".erasure/lock", "", "part-00.csv", "./part-02.jsonl"} {
			if _, err := c.SweepUnit(ctx, plan.ID, name); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("unit %q: %v, want EINVALID", name, err)
			}
		}
		if _, err := c.SweepUnit(ctx, "../../etc", plan.Units[0].Name); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("plan id with a path: %v, want EINVALID", err)
		}
		if b, _ := os.ReadFile(outside); string(b) != "{\"user_id\":3}\n" {
			t.Fatalf("a file outside the snapshot changed: %q", b)
		}
		c.AbortSweep(ctx, plan.ID)
		noLeftovers(t, dir)
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
