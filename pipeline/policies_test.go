package pipeline_test

import (
	"context"
	"testing"
	"time"

	"erasure"
	"erasure/pipeline"
	"erasure/store/storetest"
)

// retainer is a dataset whose rows are times: Expire removes those before the cutoff.
type retainer struct {
	conn
	rows []time.Time
	err  error
}

func (r *retainer) Expire(ctx context.Context, cutoff time.Time, approve func(int64) error) (erasure.RetentionResult, error) {
	if r.err != nil {
		return erasure.RetentionResult{}, r.err
	}
	var keep []time.Time
	for _, t := range r.rows {
		if !t.Before(cutoff) {
			keep = append(keep, t)
		}
	}
	res := erasure.RetentionResult{Expired: int64(len(r.rows) - len(keep))}
	if err := approve(res.Expired); err != nil {
		return res, err
	}
	res.Removed, r.rows = res.Expired, keep
	return res, nil
}

func newPolicies(t *testing.T, c *storetest.Clock, ds ...*erasure.Dataset) (*harness, *pipeline.Policies) {
	h := newHarness(t, c, ds...)
	p := &pipeline.Policies{Store: h.store, Datasets: ds, Identifiers: []string{"user_id", "email"}, Hasher: h.svc.Hasher, Suppression: h.svc.Hasher,
		IdentifierTypes: []erasure.IdentifierType{{Name: "email", Normalize: erasure.NormalizeLower, Trim: true}}, Now: c.Now}
	return h, p
}

func TestPolicies_RetentionSchedule(t *testing.T) {
	c := storetest.NewClock()
	r := &retainer{}
	for i := 0; i < 10; i++ {
		r.rows = append(r.rows, c.Now().AddDate(0, 0, -100*i))
	}
	d := dataset("events", &r.conn, []string{"user_id"})
	d.Conn, d.Retention = r, &erasure.Retention{OlderThan: 400 * 24 * time.Hour, Every: 24 * time.Hour}
	_, p := newPolicies(t, c, d)
	ctx := context.Background()

	// A guard that refuses: nothing removed, the run failed with its reason.
	p.Guard = func(d *erasure.Dataset, n int64) error {
		return erasure.Errorf(erasure.ECONFLICT, "guard: %d rows is more than %s allows", n, d.Name)
	}
	if run, err := p.RunRetention(ctx, "events", false, "op"); erasure.ErrorCode(err) != erasure.ECONFLICT || run.State != erasure.RetentionFailed || run.Expired != 5 || len(r.rows) != 10 {
		t.Fatalf("refused run %+v, %v; rows %d", run, err, len(r.rows))
	}
	// A dry run never asks the guard.
	if run, err := p.RunRetention(ctx, "events", true, "op"); err != nil || run.State != erasure.RetentionDone || run.Expired != 5 || run.Removed != 0 {
		t.Fatalf("dry run %+v, %v", run, err)
	}
	p.Guard = nil
	// The last run (the dry run) started now: nothing is due.
	if n := p.RetentionDue(ctx); n != 0 {
		t.Fatalf("ran %d before it was due", n)
	}
	c.Add(24 * time.Hour)
	if n := p.RetentionDue(ctx); n != 1 || len(r.rows) != 4 {
		t.Fatalf("ran %d, rows %d; want one run leaving 4 rows (the cutoff moved a day)", n, len(r.rows))
	}
	// A failed run is tried again within an hour, not a day.
	r.err = erasure.Transientf("database restarting")
	c.Add(24 * time.Hour)
	if n := p.RetentionDue(ctx); n != 0 {
		t.Fatalf("a failed run counted as run: %d", n)
	}
	r.err = nil
	c.Add(59 * time.Minute)
	if n := p.RetentionDue(ctx); n != 0 {
		t.Fatal("retried within the hour")
	}
	c.Add(time.Minute)
	if n := p.RetentionDue(ctx); n != 1 {
		t.Fatal("a failed run was not retried after an hour")
	}
	runs, _ := p.RetentionRuns(ctx, "events", 10)
	if len(runs) != 5 {
		t.Fatalf("%d runs stored, want 5", len(runs))
	}
	if _, err := p.RunRetention(ctx, "nope", false, "op"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("unknown dataset: %v", err)
	}
	plain := dataset("plain", &conn{}, []string{"user_id"})
	_, p2 := newPolicies(t, c, plain)
	if _, err := p2.RunRetention(ctx, "plain", false, "op"); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("dataset without retention: %v", err)
	}
}

// TestPolicies_IdentifiersInCanonicalForm: a hold and a suppression check match the
// identifiers as intake stored them, whatever their case and spaces.
func TestPolicies_IdentifiersInCanonicalForm(t *testing.T) {
	c := storetest.NewClock()
	a := dataset("a", &conn{held: map[string]bool{}}, []string{"email"})
	h, p := newPolicies(t, c, a)
	h.svc.IdentifierTypes = p.IdentifierTypes
	ctx := context.Background()
	hold, err := p.AddHold(ctx, erasure.HoldSpec{Identifier: erasure.Identifier{Type: "email", Value: "  Ann@Example.COM "}, All: true, Reason: "case"}, "legal")
	if err != nil {
		t.Fatal(err)
	}
	r := h.submit(t, "email", "ann@example.com")
	if got := h.get(t, r.ID); got.Status != erasure.RequestHeld || len(got.Tasks[0].HeldBy) != 1 || got.Tasks[0].HeldBy[0] != hold.ID {
		t.Fatalf("request %s, tasks %+v", got.Status, got.Tasks)
	}
	if _, err := p.AddHold(ctx, erasure.HoldSpec{Identifier: erasure.Identifier{Type: "phone", Value: "1"}, All: true, Reason: "x"}, "legal"); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("undeclared type: %v", err)
	}
	if _, err := p.ReleaseHold(ctx, "h_nope", "legal"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("bad hold id: %v", err)
	}
	if _, err := p.CheckSuppressed(ctx, nil); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("empty check: %v", err)
	}
	if _, err := p.Unsuppress(ctx, []erasure.Identifier{{Type: "email", Value: "x@y"}}, " ", "op"); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("unsuppress without reason: %v", err)
	}
}
