package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"erasure"
)

func TestService_SubmitBatch(t *testing.T) {
	db := dataset("db", &conn{held: map[string]bool{}}, []string{"user_id"})
	h := newHarness(t, nil, db)
	ctx := context.Background()
	before, err := h.store.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var subs []erasure.Submission
	for i := 0; i < 50; i++ {
		subs = append(subs, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: fmt.Sprint(i)}),
			Reason: "retention", IdempotencyKey: fmt.Sprintf("k%d", i), Actor: "bulk"})
	}
	subs = append(subs,
		erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "shoe_size", Value: "9"}), Reason: "retention", Actor: "bulk"},
		erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "0"}), Reason: "other reason", IdempotencyKey: "k0", Actor: "bulk"},
		erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "1"}), Reason: "retention", IdempotencyKey: "k1", Actor: "bulk"},
	)
	res, err := h.svc.SubmitBatch(ctx, subs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if r := res[i]; r.Err != nil || !r.Created || r.Request == nil || len(r.Request.Tasks) != 1 {
			t.Fatalf("submission %d: %+v", i, r)
		}
	}
	if code := erasure.ErrorCode(res[50].Err); code != erasure.EINVALID {
		t.Errorf("undeclared type: %v", res[50].Err)
	}
	if code := erasure.ErrorCode(res[51].Err); code != erasure.ECONFLICT {
		t.Errorf("a key reused with other content: %v", res[51].Err)
	}
	if r := res[52]; r.Err != nil || r.Created || r.Request.ID != res[1].Request.ID {
		t.Errorf("a key repeated with the same content: %+v", r)
	}
	after, err := h.store.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Block != before.Block+1 {
		t.Fatalf("the batch wrote %d audit blocks, want 1 (one transaction)", after.Block-before.Block)
	}
	for h.step(t) > 0 {
	}
	page, err := h.svc.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestCompleted, Limit: 500})
	if err != nil || len(page.Requests) != 50 {
		t.Fatalf("%d requests completed, want 50 (%v)", len(page.Requests), err)
	}
	for _, bad := range [][]erasure.Submission{nil, make([]erasure.Submission, erasure.MaxBatchSubmissions+1)} {
		if _, err := h.svc.SubmitBatch(ctx, bad); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("a batch of %d: %v", len(bad), err)
		}
	}
}
