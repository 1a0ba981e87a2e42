package kafkaconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"erasure"
)

func ackRecord(partition int32, offset, task int64) *kgo.Record {
	dispatch := strings.Repeat(fmt.Sprintf("%x", task%16), erasure.DispatchIDLen)
	return &kgo.Record{Partition: partition, Offset: offset,
		Value: fmt.Appendf(nil, `{"task_id":%d,"dispatch":%q,"status":"done"}`, task, dispatch)}
}

func testConn(parallel int) *Conn {
	return &Conn{log: slog.New(slog.DiscardHandler), closing: make(chan struct{}), ackParallel: parallel}
}

// The acknowledgements of a fetch are applied several at once (one at a time with
// WithAckParallel(1)), and every record, the malformed one too, may then be committed.
func TestApplyFetch_ParallelButInOrderPerTask(t *testing.T) {
	var records []*kgo.Record
	for off := int64(0); off < 40; off++ {
		records = append(records, ackRecord(int32(off%2), off, off%5+1)) // tasks 1..5, each on one partition
	}
	records = append(records, &kgo.Record{Partition: 0, Offset: 40, Value: []byte(`{"task_id":1,"status":"done"`)}) // malformed
	var mu sync.Mutex
	applied := map[int64]int{} // acknowledgements applied per task
	running, most := 0, 0
	apply := func(_ context.Context, a erasure.Ack) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		running--
		applied[a.TaskID]++
		mu.Unlock()
		return nil
	}
	done := testConn(8).applyFetch(t.Context(), t.Context(), records, apply)
	if len(done) != len(records) {
		t.Fatalf("%d of %d records may be committed, want all (the malformed one is done with too)", len(done), len(records))
	}
	if most < 2 {
		t.Fatalf("at most %d acknowledgement applied at once: they are not applied in parallel", most)
	}
	for task := int64(1); task <= 5; task++ {
		if applied[task] != 8 {
			t.Fatalf("task %d: %d acknowledgements applied, want 8", task, applied[task])
		}
	}
	most = 0
	testConn(1).applyFetch(t.Context(), t.Context(), records[:10], apply)
	if most != 1 {
		t.Fatalf("WithAckParallel(1): %d applied at once", most)
	}
}

// The acknowledgements of one task are applied in partition order.
func TestApplyFetch_OneTaskInOrder(t *testing.T) {
	var records []*kgo.Record
	for off := int64(0); off < 20; off++ {
		r := ackRecord(0, off, 7)
		r.Value = fmt.Appendf(nil, `{"task_id":7,"dispatch":%q,"status":"done","removed":%d}`, strings.Repeat("a", erasure.DispatchIDLen), off)
		records = append(records, r)
	}
	var got []int64
	apply := func(_ context.Context, a erasure.Ack) error {
		time.Sleep(time.Millisecond)
		got = append(got, a.Removed) // one chain: never called concurrently
		return nil
	}
	testConn(16).applyFetch(t.Context(), t.Context(), records, apply)
	for i, r := range got {
		if r != int64(i) {
			t.Fatalf("acknowledgements of one task applied out of order: %v", got)
		}
	}
}

// A listener that stops while an acknowledgement is not applied (the store is down) commits,
// on that partition, only the records before it, even when later ones were applied.
func TestApplyFetch_StoppingCommitsOnlyTheAppliedPrefix(t *testing.T) {
	records := []*kgo.Record{
		ackRecord(0, 10, 1), ackRecord(0, 11, 2), ackRecord(0, 12, 3),
		ackRecord(1, 20, 4), ackRecord(1, 21, 5),
	}
	ctx, cancel := context.WithCancel(t.Context())
	apply := func(_ context.Context, a erasure.Ack) error {
		if a.TaskID == 2 {
			time.AfterFunc(50*time.Millisecond, cancel)
			return erasure.Errorf(erasure.EUNAVAILABLE, "store is down")
		}
		return nil
	}
	done := testConn(8).applyFetch(ctx, context.WithoutCancel(ctx), records, apply)
	var got []string
	for _, r := range done {
		got = append(got, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
	}
	if strings.Join(got, " ") != "0/10 1/20 1/21" {
		t.Fatalf("records that may be committed: %v, want 0/10 1/20 1/21 (not 0/12: 0/11 before it was not applied)", got)
	}
}
