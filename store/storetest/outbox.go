package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
)

// OutboxStore is a store that also keeps the outbox, marks overdue requests, finds requests by
// id prefix and probes its writes.
type OutboxStore interface {
	erasure.Store
	erasure.OutboxStore
	erasure.OverdueStore
	erasure.RequestIDStore
	erasure.WriteProbe
	// ReleaseOutboxLeases makes every leased message due now (a single-node server starting
	// up owns the deliveries of the process before it).
	ReleaseOutboxLeases(ctx context.Context) (int, error)
}

// OutboxOpener opens a fresh empty outbox store whose clock is now.
type OutboxOpener func(t *testing.T, now func() time.Time) OutboxStore

// OutboxHandles opens n handles on one fresh, empty outbox store (see Handles).
type OutboxHandles func(t *testing.T, n int, now func() time.Time) []OutboxStore

// RunOutbox runs the conformance cases of erasure.OutboxStore, erasure.OverdueStore,
// erasure.RequestIDStore and erasure.WriteProbe.
func RunOutbox(t *testing.T, open OutboxOpener) {
	t.Run("EnqueueMovesTheCursor", func(t *testing.T) { testOutboxEnqueue(t, open) })
	t.Run("CursorConflict", func(t *testing.T) { testOutboxCursorConflict(t, open) })
	t.Run("OneAtATimeInOrderPerKey", func(t *testing.T) { testOutboxOrder(t, open) })
	t.Run("ExpiredLeaseIsTakenOver", func(t *testing.T) { testOutboxLease(t, open) })
	t.Run("ReleasedLeasesAreDueAtOnce", func(t *testing.T) { testOutboxRelease(t, open) })
	t.Run("RetryWaitsForItsTime", func(t *testing.T) { testOutboxRetry(t, open) })
	t.Run("DeadHoldsItsKeyUntilRetried", func(t *testing.T) { testOutboxDead(t, open) })
	t.Run("Listing", func(t *testing.T) { testOutboxListing(t, open) })
	t.Run("OverdueMarkedOnce", func(t *testing.T) { testOverdueMarked(t, open) })
	t.Run("RequestIDPrefix", func(t *testing.T) { testRequestIDPrefix(t, open) })
	t.Run("ProbeWrite", func(t *testing.T) { testProbeWrite(t, open) })
	t.Run("TrailReadFromEveryCursor", func(t *testing.T) { testAuditFromCursor(t, open) })
}

// testAuditFromCursor: the notifier reads the trail after its cursor, which may fall inside a
// block; every position gives the events after it, in order.
func testAuditFromCursor(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		create(t, s, newRequest(c, subject("user_id", itoa(i)), erase("a"), erase("b")))
	}
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...) // one block of many events
	head, err := s.AuditHead(ctx)
	if err != nil || head.Events < 10 {
		t.Fatalf("head %+v %v", head, err)
	}
	for after := int64(0); after <= head.Events; after++ {
		evs, err := s.Audit(ctx, erasure.AuditFilter{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		want := min(3, int(head.Events-after))
		if len(evs) != want || want > 0 && (evs[0].Seq != after+1 || evs[len(evs)-1].Seq != after+int64(want)) {
			t.Fatalf("after %d: %d events from %v, want %d from %d", after, len(evs), evs, want, after+1)
		}
	}
}

// msg returns a message of subscriber sub and key, caused by audit event seq.
func msg(sub, key string, seq int64) erasure.OutboxMessage {
	return erasure.OutboxMessage{Subscriber: sub, Key: key, Event: erasure.NotifyRequestCompleted, URL: "http://receiver.invalid/hook",
		Body: json.RawMessage(fmt.Sprintf(`{"seq":%d,"key":%q}`, seq, key)), AuditSeq: seq}
}

// enqueue moves the cursor from where it is to the largest AuditSeq of msgs (or by one).
func enqueue(t *testing.T, s OutboxStore, msgs ...erasure.OutboxMessage) {
	t.Helper()
	from, err := s.NotifyCursor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	to := from + 1
	for _, m := range msgs {
		to = max(to, m.AuditSeq)
	}
	if err := s.EnqueueOutbox(context.Background(), from, to, msgs); err != nil {
		t.Fatalf("EnqueueOutbox(%d, %d): %v", from, to, err)
	}
}

func leaseOutbox(t *testing.T, s OutboxStore, owner string, n int) []erasure.OutboxMessage {
	t.Helper()
	got, err := s.LeaseOutbox(context.Background(), owner, n, time.Minute)
	if err != nil {
		t.Fatalf("LeaseOutbox: %v", err)
	}
	return got
}

// bodies names leased messages by their key and audit seq, in lease order.
func bodies(ms []erasure.OutboxMessage) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s/%d", m.Key, m.AuditSeq))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func deliver(t *testing.T, s OutboxStore, owner string, ms ...erasure.OutboxMessage) {
	t.Helper()
	for _, m := range ms {
		if err := s.FinishOutbox(context.Background(), m.ID, owner, true, false, time.Time{}, ""); err != nil {
			t.Fatalf("FinishOutbox(%d delivered): %v", m.ID, err)
		}
	}
}

func testOutboxEnqueue(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	if cur, err := s.NotifyCursor(ctx); err != nil || cur != 0 {
		t.Fatalf("a new store's cursor is %d, %v; want 0", cur, err)
	}
	if err := s.EnqueueOutbox(ctx, 0, 5, []erasure.OutboxMessage{msg("webhook:a", "r_1", 2), msg("webhook:a", "r_1", 5)}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.NotifyCursor(ctx); cur != 5 {
		t.Fatalf("cursor %d after enqueueing up to 5", cur)
	}
	// Events that cause no message still move the cursor.
	if err := s.EnqueueOutbox(ctx, 5, 9, nil); err != nil {
		t.Fatal(err)
	}
	all, err := s.OutboxMessages(ctx, erasure.OutboxFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("listing %v %+v", err, all)
	}
	m := all[1]
	if m.State != erasure.OutboxPending || m.Attempts != 0 || !m.NextAt.Equal(c.Now().Truncate(time.Millisecond)) || !m.CreatedAt.Equal(m.NextAt) ||
		m.AuditSeq != 2 || string(m.Body) != `{"seq":2,"key":"r_1"}` || m.DeliveredAt != nil || m.Subscriber != "webhook:a" || m.URL != "http://receiver.invalid/hook" {
		t.Fatalf("stored message %+v", m)
	}
	t.Run("BadInputChangesNothing", func(t *testing.T) {
		noURL := msg("webhook:a", "r_1", 10)
		noURL.URL = ""
		notJSON := msg("webhook:a", "r_1", 10)
		notJSON.Body = json.RawMessage(`{"seq":`)
		for name, tc := range map[string]struct {
			from, to int64
			msgs     []erasure.OutboxMessage
		}{
			"CursorBackwards":   {9, 8, nil},
			"NoURL":             {9, 10, []erasure.OutboxMessage{noURL}},
			"BodyNotJSON":       {9, 10, []erasure.OutboxMessage{notJSON}},
			"EventBeforeCursor": {9, 10, []erasure.OutboxMessage{msg("webhook:a", "r_1", 9)}},
			"EventAfterTarget":  {9, 10, []erasure.OutboxMessage{msg("webhook:a", "r_1", 11)}},
		} {
			if err := s.EnqueueOutbox(ctx, tc.from, tc.to, tc.msgs); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("%s: %v, want EINVALID", name, err)
			}
		}
		if cur, _ := s.NotifyCursor(ctx); cur != 9 {
			t.Errorf("cursor moved to %d", cur)
		}
		if all, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{}); len(all) != 2 {
			t.Errorf("%d messages after refused input", len(all))
		}
	})
}

func testOutboxCursorConflict(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	enqueue(t, s, msg("webhook:a", "r_1", 3))
	// A notifier that read the cursor before another moved it must not write its messages.
	err := s.EnqueueOutbox(ctx, 0, 3, []erasure.OutboxMessage{msg("webhook:a", "r_1", 3)})
	if erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("enqueue from a stale cursor: %v, want ECONFLICT", err)
	}
	if all, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{}); len(all) != 1 {
		t.Fatalf("%d messages after a conflict, want 1", len(all))
	}
	if cur, _ := s.NotifyCursor(ctx); cur != 3 {
		t.Fatalf("cursor %d after a conflict, want 3", cur)
	}
}

func testOutboxOrder(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	enqueue(t, s, msg("webhook:a", "r_A", 1), msg("webhook:a", "r_B", 2), msg("webhook:a", "r_A", 3), msg("webhook:b", "r_A", 4), msg("webhook:a", "r_A", 5))
	// Only the oldest message of each subscriber and key goes out.
	got := leaseOutbox(t, s, "d1", 10)
	if b := bodies(got); b != "r_A/1 r_A/4 r_B/2" {
		t.Fatalf("first lease %q, want the heads r_A/1 r_A/4 r_B/2", b)
	}
	for _, m := range got {
		if m.Attempts != 1 {
			t.Errorf("leased message %d has %d attempts, want 1", m.ID, m.Attempts)
		}
	}
	if more := leaseOutbox(t, s, "d2", 10); len(more) != 0 {
		t.Fatalf("while the heads are out, %s was leased", bodies(more))
	}
	// The next of a key goes once the one before is delivered, not before.
	var a1 erasure.OutboxMessage
	for _, m := range got {
		if m.AuditSeq == 1 {
			a1 = m
		}
	}
	deliver(t, s, "d1", a1)
	if next := leaseOutbox(t, s, "d2", 10); bodies(next) != "r_A/3" {
		t.Fatalf("after r_A/1 was delivered the lease took %q, want r_A/3", bodies(next))
	} else {
		deliver(t, s, "d2", next...)
	}
	if next := leaseOutbox(t, s, "d2", 10); bodies(next) != "r_A/5" {
		t.Fatalf("then %q, want r_A/5", bodies(next))
	}
	delivered, _ := s.OutboxMessages(context.Background(), erasure.OutboxFilter{State: erasure.OutboxDelivered})
	if len(delivered) != 2 || delivered[0].DeliveredAt == nil || delivered[0].LastError != "" {
		t.Fatalf("delivered messages %+v", delivered)
	}
}

func testOutboxLease(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	enqueue(t, s, msg("webhook:a", "r_1", 1))
	first := leaseOutbox(t, s, "d1", 1)
	if len(first) != 1 {
		t.Fatalf("leased %d", len(first))
	}
	c.Add(59 * time.Second)
	if got := leaseOutbox(t, s, "d2", 1); len(got) != 0 {
		t.Fatalf("a message was leased again before its lease expired")
	}
	c.Add(2 * time.Second)
	second := leaseOutbox(t, s, "d2", 1)
	if len(second) != 1 || second[0].ID != first[0].ID || second[0].Attempts != 2 {
		t.Fatalf("after the lease expired: %+v, want the message again at attempt 2", second)
	}
	// The first holder lost its lease: its outcome is not written.
	if err := s.FinishOutbox(ctx, first[0].ID, "d1", true, false, time.Time{}, ""); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("the old holder's finish: %v, want ENOTFOUND", err)
	}
	deliver(t, s, "d2", second...)
	if err := s.FinishOutbox(ctx, first[0].ID, "d2", true, false, time.Time{}, ""); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("a second finish: %v, want ENOTFOUND", err)
	}
	if err := s.FinishOutbox(ctx, first[0].ID, "d2", true, true, time.Time{}, ""); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("delivered and dead: %v, want EINVALID", err)
	}
}

func testOutboxRelease(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	enqueue(t, s, msg("webhook:a", "r_1", 1), msg("webhook:a", "r_2", 2), msg("webhook:a", "r_3", 3))
	held := leaseOutbox(t, s, "gone", 2)
	if n, err := s.ReleaseOutboxLeases(context.Background()); err != nil || n != 2 {
		t.Fatalf("ReleaseOutboxLeases = %d, %v; want the 2 leased messages", n, err)
	}
	if again := leaseOutbox(t, s, "new", 5); len(held) != 2 || len(again) != 3 {
		t.Fatalf("after the release %s were leased, want all three", bodies(again))
	}
	if err := s.FinishOutbox(context.Background(), held[0].ID, "gone", true, false, time.Time{}, ""); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("the released holder's finish: %v, want ENOTFOUND", err)
	}
}

func testOutboxRetry(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	enqueue(t, s, msg("webhook:a", "r_1", 1), msg("webhook:a", "r_1", 2))
	m := leaseOutbox(t, s, "d1", 5)
	if len(m) != 1 {
		t.Fatalf("leased %d", len(m))
	}
	if err := s.FinishOutbox(ctx, m[0].ID, "d1", false, false, c.Now().Add(30*time.Second), "POST http://receiver.invalid/hook: 503\nService Unavailable"); err != nil {
		t.Fatal(err)
	}
	if got := leaseOutbox(t, s, "d1", 5); len(got) != 0 {
		t.Fatalf("%s leased before the retry is due (the failed one holds its key)", bodies(got))
	}
	all, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{State: erasure.OutboxPending})
	var failed erasure.OutboxMessage
	for _, x := range all {
		if x.ID == m[0].ID {
			failed = x
		}
	}
	if failed.LastError != "POST http://receiver.invalid/hook: 503 Service Unavailable" || failed.Attempts != 1 || !failed.NextAt.Equal(c.Now().Add(30*time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("after a failed attempt: %+v", failed)
	}
	c.Add(31 * time.Second)
	again := leaseOutbox(t, s, "d1", 5)
	if len(again) != 1 || again[0].ID != m[0].ID || again[0].Attempts != 2 {
		t.Fatalf("the retry: %+v", again)
	}
}

func testOutboxDead(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	enqueue(t, s, msg("webhook:a", "r_1", 1), msg("webhook:a", "r_1", 2), msg("webhook:a", "r_2", 3))
	got := leaseOutbox(t, s, "d1", 5)
	var head erasure.OutboxMessage
	for _, m := range got {
		if m.Key == "r_1" {
			head = m
		} else {
			deliver(t, s, "d1", m)
		}
	}
	if err := s.FinishOutbox(ctx, head.ID, "d1", false, true, time.Time{}, "gave up after 1 attempt: 410 Gone"); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if more := leaseOutbox(t, s, "d1", 5); len(more) != 0 {
		t.Fatalf("%s went out while the message before it is dead", bodies(more))
	}
	if _, err := s.RetryOutbox(ctx, head.ID+100, "operator"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("retry of an unknown message: %v", err)
	}
	pending, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{State: erasure.OutboxPending})
	if len(pending) != 1 {
		t.Fatalf("pending %+v", pending)
	}
	if _, err := s.RetryOutbox(ctx, pending[0].ID, "operator"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("retry of a pending message: %v, want ECONFLICT", err)
	}
	before, _ := s.AuditHead(ctx)
	m, err := s.RetryOutbox(ctx, head.ID, "operator")
	if err != nil || m.State != erasure.OutboxPending || m.Attempts != 0 {
		t.Fatalf("retry of the dead message: %+v, %v", m, err)
	}
	evs, _ := s.Audit(ctx, erasure.AuditFilter{After: before.Events})
	if len(evs) != 1 || evs[0].Type != erasure.EventOutboxRetried || evs[0].Actor != "operator" || evs[0].RequestID != "r_1" {
		t.Fatalf("the retry's audit events %+v", evs)
	}
	VerifyTrail(t, s)
	if got := leaseOutbox(t, s, "d1", 5); bodies(got) != "r_1/1" {
		t.Fatalf("after the retry %q went out, want r_1/1 first", bodies(got))
	} else {
		deliver(t, s, "d1", got...)
	}
	if got := leaseOutbox(t, s, "d1", 5); bodies(got) != "r_1/2" {
		t.Fatalf("then %q, want r_1/2", bodies(got))
	}
}

func testOutboxListing(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	for i := int64(1); i <= 7; i++ {
		enqueue(t, s, msg("webhook:"+[]string{"a", "b"}[i%2], "r_"+fmt.Sprint(i%3), i))
	}
	var seen []int64
	after := int64(0)
	for page := 0; page < 10; page++ {
		got, err := s.OutboxMessages(ctx, erasure.OutboxFilter{Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			seen = append(seen, m.AuditSeq)
		}
		if len(got) < 3 {
			break
		}
		after = got[len(got)-1].ID
	}
	if fmt.Sprint(seen) != "[7 6 5 4 3 2 1]" {
		t.Fatalf("paged listing %v, want newest first", seen)
	}
	got, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{Subscriber: "webhook:b", Key: "r_1"})
	if len(got) != 2 || got[0].AuditSeq != 7 || got[1].AuditSeq != 1 {
		t.Fatalf("by subscriber and key: %+v", got)
	}
	if got, _ := s.OutboxMessages(ctx, erasure.OutboxFilter{State: erasure.OutboxDead}); len(got) != 0 {
		t.Fatalf("dead: %+v", got)
	}
	if _, err := s.OutboxMessages(ctx, erasure.OutboxFilter{State: "lost"}); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("unknown state: %v", err)
	}
}

func testOverdueMarked(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	soon := newRequest(c, subject("user_id", "1"), erase("a"))
	soon.Deadline = c.Now().Add(time.Hour)
	late := create(t, s, soon)
	done := newRequest(c, subject("user_id", "2"), erase("a"))
	done.Deadline = c.Now().Add(time.Hour)
	ended := create(t, s, done)
	create(t, s, newRequest(c, subject("user_id", "3"), erase("a"))) // due in 24 h
	for _, tk := range lease(t, s, "w", 10) {
		if tk.RequestID == ended.ID {
			finish(t, s, c, erasure.TaskDone, tk)
		} else {
			finish(t, s, c, erasure.TaskPending, tk)
		}
	}
	if ids, err := s.MarkOverdue(ctx, 10); err != nil || len(ids) != 0 {
		t.Fatalf("before any deadline passed: %v, %v", ids, err)
	}
	c.Add(2 * time.Hour)
	head, _ := s.AuditHead(ctx)
	ids, err := s.MarkOverdue(ctx, 10)
	if err != nil || len(ids) != 1 || ids[0] != late.ID {
		t.Fatalf("MarkOverdue = %v, %v; want only the open request past its deadline (%s)", ids, err, late.ID)
	}
	if again, err := s.MarkOverdue(ctx, 10); err != nil || len(again) != 0 {
		t.Fatalf("a second MarkOverdue = %v, %v; want none (once per request)", again, err)
	}
	evs, _ := s.Audit(ctx, erasure.AuditFilter{After: head.Events})
	if len(evs) != 1 || evs[0].Type != erasure.EventRequestOverdue || evs[0].RequestID != late.ID {
		t.Fatalf("events %+v", evs)
	}
	var d struct {
		Deadline time.Time `json:"deadline"`
		Status   string    `json:"status"`
		Late     string    `json:"late"`
	}
	if err := json.Unmarshal(evs[0].Data, &d); err != nil || !d.Deadline.Equal(soon.Deadline.Truncate(time.Millisecond)) || d.Status != "running" || d.Late != "1h" {
		t.Fatalf("overdue event data %s (%v)", evs[0].Data, err)
	}
	if n, _ := erasure.NotificationOf(evs[0]); n != erasure.NotifyRequestOverdue {
		t.Fatalf("the overdue event is notification %q", n)
	}
	VerifyTrail(t, s)
}

func testRequestIDPrefix(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	for _, id := range []string{"r_06h3aaa", "r_06h3aab", "r_06h4zzz", "r_07"} {
		nr := newRequest(c, subject("user_id", id), erase("a"))
		nr.ID = id
		create(t, s, nr)
	}
	for prefix, want := range map[string]string{"r_06h3": "[r_06h3aaa r_06h3aab]", "r_06h3aab": "[r_06h3aab]", "r_06": "[r_06h3aaa r_06h3aab r_06h4zzz]", "r_08": "[]", "r_06h3aab0": "[]"} {
		got, err := s.RequestIDsWithPrefix(ctx, prefix, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			got = []string{}
		}
		if fmt.Sprint(got) != want {
			t.Errorf("prefix %s: %v, want %s", prefix, got, want)
		}
	}
	if got, _ := s.RequestIDsWithPrefix(ctx, "r_0", 2); len(got) != 2 {
		t.Errorf("limit 2 gave %v", got)
	}
	if _, err := s.RequestIDsWithPrefix(ctx, "", 2); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Errorf("empty prefix: %v", err)
	}
}

func testProbeWrite(t *testing.T, open OutboxOpener) {
	c := NewClock()
	s := open(t, c.Now)
	for i := 0; i < 3; i++ {
		if err := s.ProbeWrite(context.Background()); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ProbeWrite(ctx); err == nil {
		t.Fatalf("a probe with a cancelled context succeeded")
	}
}

// RunOutboxConcurrent runs the outbox's concurrent cases: deliverers on their own handles
// leasing at once deliver every message once and each key's in order; notifiers racing for the
// cursor enqueue each event's message once; watchers mark each overdue request once.
func RunOutboxConcurrent(t *testing.T, open OutboxHandles) {
	t.Run("DeliverersKeepOrderPerKey", func(t *testing.T) { testConcurrentDeliverers(t, open) })
	t.Run("NotifiersRacingForTheCursor", func(t *testing.T) { testConcurrentNotifiers(t, open) })
	t.Run("WatchersMarkOnce", func(t *testing.T) { testConcurrentOverdue(t, open) })
}

func testConcurrentDeliverers(t *testing.T, open OutboxHandles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	const keys, perKey = 8, 6
	var msgs []erasure.OutboxMessage
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			msgs = append(msgs, msg("webhook:a", fmt.Sprintf("r_%d", k), int64(len(msgs)+1)))
		}
	}
	enqueue(t, hs[0], msgs...)
	var mu sync.Mutex
	inFlight := map[string]bool{}
	delivered := map[string][]int64{}
	total := 0
	var wg sync.WaitGroup
	errs := make(chan error, len(hs))
	for w, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("d%d", w)
			for idle := 0; ; {
				mu.Lock()
				finished := total == len(msgs)
				mu.Unlock()
				if finished || len(errs) > 0 {
					return
				}
				got, err := s.LeaseOutbox(context.Background(), owner, 3, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					if idle++; idle > 5000 {
						errs <- fmt.Errorf("%s: nothing to lease for too long", owner)
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				idle = 0
				mu.Lock()
				for _, m := range got {
					if inFlight[m.Key] {
						mu.Unlock()
						errs <- fmt.Errorf("two messages of %s out at once", m.Key)
						return
					}
					inFlight[m.Key] = true
				}
				mu.Unlock()
				for _, m := range got {
					mu.Lock()
					inFlight[m.Key] = false
					delivered[m.Key] = append(delivered[m.Key], m.AuditSeq)
					total++
					mu.Unlock()
					if err := s.FinishOutbox(context.Background(), m.ID, owner, true, false, time.Time{}, ""); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k, seqs := range delivered {
		if len(seqs) != perKey || !slices.IsSorted(seqs) {
			t.Errorf("key %s delivered %v, want %d messages in order", k, seqs, perKey)
		}
	}
}

func testConcurrentNotifiers(t *testing.T, open OutboxHandles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	const events = 40
	var wg sync.WaitGroup
	errs := make(chan error, len(hs))
	for w, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cur, err := s.NotifyCursor(context.Background())
				if err != nil {
					errs <- err
					return
				}
				if cur >= events {
					return
				}
				err = s.EnqueueOutbox(context.Background(), cur, cur+1, []erasure.OutboxMessage{msg(fmt.Sprintf("webhook:%d", w), "r_1", cur+1)})
				if err != nil && erasure.ErrorCode(err) != erasure.ECONFLICT {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := hs[0].OutboxMessages(context.Background(), erasure.OutboxFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, m := range all {
		seen[m.AuditSeq]++
	}
	if len(all) != events || len(seen) != events {
		t.Fatalf("%d messages for %d distinct events, want %d of each", len(all), len(seen), events)
	}
}

func testConcurrentOverdue(t *testing.T, open OutboxHandles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	const n = 30
	for i := 0; i < n; i++ {
		nr := newRequest(c, subject("user_id", itoa(i)), erase("a"))
		nr.Deadline = c.Now().Add(time.Hour)
		create(t, hs[0], nr)
	}
	c.Add(2 * time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	marked := map[string]int{}
	errs := make(chan error, len(hs))
	for _, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ids, err := s.MarkOverdue(context.Background(), 4)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, id := range ids {
					marked[id]++
				}
				left := len(marked) < n
				mu.Unlock()
				if len(ids) == 0 && !left {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, k := range marked {
		if k != 1 {
			t.Errorf("request %s marked %d times", id, k)
		}
	}
	evs, _ := hs[0].Audit(context.Background(), erasure.AuditFilter{})
	overdue := 0
	for _, ev := range evs {
		if ev.Type == erasure.EventRequestOverdue {
			overdue++
		}
	}
	if len(marked) != n || overdue != n {
		t.Fatalf("%d requests marked, %d request.overdue events; want %d of each", len(marked), overdue, n)
	}
	VerifyTrail(t, hs[0])
}
