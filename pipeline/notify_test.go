package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
	"erasure/pipeline"
	"erasure/store/sqlite"
	"erasure/store/storetest"
)

func openStore(t *testing.T, now func() time.Time) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), sqlite.Options{Hasher: storetest.Hasher, Chain: storetest.Chain, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// audited appends n events to the store's trail (a request each).
func audited(t *testing.T, db *sqlite.DB, c *storetest.Clock, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		id := pipeline.NewRequestID(c.Now())
		_, _, err := db.CreateRequest(context.Background(), erasure.NewRequest{ID: id, Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "7"}),
			Reason: "user_request", Deadline: c.Now().Add(time.Hour), SubmittedBy: "t",
			Tasks: []erasure.TaskSpec{{Dataset: "a", Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Keys: []string{"user_id"}}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// everything is a subscriber told of every event, whose messages are POSTed to url.
type everything struct {
	name, url string
	fail      error
	seen      int
}

func (e *everything) Name() string { return e.name }

func (e *everything) Messages(ctx context.Context, ev erasure.AuditEvent) ([]erasure.OutboxMessage, error) {
	if e.fail != nil {
		return nil, e.fail
	}
	e.seen++
	return []erasure.OutboxMessage{{Key: ev.RequestID, Event: ev.Type, URL: e.url, Body: json.RawMessage(`{"type":"` + ev.Type + `"}`)}}, nil
}

func (e *everything) Headers(m erasure.OutboxMessage, now time.Time) (map[string]string, error) {
	return map[string]string{"X-Test": "yes"}, nil
}

func TestNotifier(t *testing.T) {
	ctx := context.Background()
	t.Run("WithoutSubscribersTheCursorFollowsTheHead", func(t *testing.T) {
		c := storetest.NewClock()
		db := openStore(t, c.Now)
		audited(t, db, c, 3)
		n := &pipeline.Notifier{Store: db}
		if _, err := n.Once(ctx); err != nil {
			t.Fatal(err)
		}
		head, _ := db.AuditHead(ctx)
		if cur, _ := db.NotifyCursor(ctx); cur != head.Events || cur != 3 {
			t.Fatalf("cursor %d, head %d", cur, head.Events)
		}
		// A subscriber added now is told of what happens from now on.
		sub := &everything{name: "webhook:late", url: "http://127.0.0.1:1/"}
		n = &pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{sub}}
		audited(t, db, c, 1)
		if read, err := n.Once(ctx); err != nil || read != 1 || sub.seen != 1 {
			t.Fatalf("Once read %d events (%v), the subscriber saw %d; want the one new event", read, err, sub.seen)
		}
	})
	t.Run("MessagesWithTheirCursor", func(t *testing.T) {
		c := storetest.NewClock()
		db := openStore(t, c.Now)
		ids := audited(t, db, c, 4)
		sub := &everything{name: "webhook:a", url: "http://127.0.0.1:1/"}
		n := &pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{sub}, Batch: 3}
		if read, err := n.Once(ctx); err != nil || read != 3 {
			t.Fatalf("first batch: %d, %v", read, err)
		}
		if read, err := n.Once(ctx); err != nil || read != 1 {
			t.Fatalf("second batch: %d, %v", read, err)
		}
		ms, _ := db.OutboxMessages(ctx, erasure.OutboxFilter{})
		if len(ms) != 4 || ms[0].Key != ids[3] || ms[0].Subscriber != "webhook:a" || ms[0].AuditSeq != 4 || ms[3].AuditSeq != 1 {
			t.Fatalf("outbox %+v", ms)
		}
	})
	t.Run("ASubscriberErrorMovesNothing", func(t *testing.T) {
		c := storetest.NewClock()
		db := openStore(t, c.Now)
		audited(t, db, c, 2)
		n := &pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{&everything{name: "drp:x", fail: errors.New("store busy")}}}
		if _, err := n.Once(ctx); err == nil || !strings.Contains(err.Error(), "store busy") {
			t.Fatalf("Once: %v", err)
		}
		if cur, _ := db.NotifyCursor(ctx); cur != 0 {
			t.Fatalf("the cursor moved to %d", cur)
		}
	})
}

func TestDeliverer(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock()
	var posts atomic.Int64
	var lastHeader atomic.Value
	status := atomic.Int64{}
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		lastHeader.Store(r.Header.Get("X-Test") + " " + r.Header.Get("Content-Type"))
		switch code := int(status.Load()); code {
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(code)
		case http.StatusFound:
			http.Redirect(w, r, "/elsewhere", code)
		default:
			w.WriteHeader(code)
		}
	}))
	defer srv.Close()
	db := openStore(t, c.Now)
	ids := audited(t, db, c, 1)
	sub := &everything{name: "webhook:a", url: srv.URL + "/hook?token=secret-in-the-query"}
	if _, err := (&pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{sub}}).Once(ctx); err != nil {
		t.Fatal(err)
	}
	d := &pipeline.Deliverer{Store: db, Subscribers: []erasure.Subscriber{sub}, MaxAttempts: 3, Now: c.Now, Rand: rand.New(rand.NewPCG(1, 2)),
		Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}}
	message := func() erasure.OutboxMessage {
		ms, _ := db.OutboxMessages(ctx, erasure.OutboxFilter{Key: ids[0]})
		if len(ms) != 1 {
			t.Fatalf("outbox %+v", ms)
		}
		return ms[0]
	}

	// A 503 with Retry-After: the next attempt waits at least that long.
	if n, err := d.Once(ctx); err != nil || n != 1 {
		t.Fatalf("Once: %d %v", n, err)
	}
	m := message()
	if m.State != erasure.OutboxPending || m.Attempts != 1 || m.NextAt.Sub(c.Now()) < 120*time.Second || m.LastError != "POST "+srv.URL+": 503 Service Unavailable" {
		t.Fatalf("after a 503: %+v", m)
	}
	if strings.Contains(m.LastError, "secret") || lastHeader.Load() != "yes application/json" {
		t.Fatalf("last error %q, headers %v", m.LastError, lastHeader.Load())
	}
	// A redirect is not followed: it is a failed attempt.
	status.Store(http.StatusFound)
	c.Add(121 * time.Second)
	d.Once(ctx)
	if m = message(); m.Attempts != 2 || !strings.Contains(m.LastError, "302 Found") || posts.Load() != 2 {
		t.Fatalf("after a redirect: %+v (%d posts)", m, posts.Load())
	}
	// The last attempt fails: the message is dead.
	status.Store(http.StatusBadRequest)
	c.Add(time.Minute)
	d.Once(ctx)
	if m = message(); m.State != erasure.OutboxDead || m.Attempts != 3 || !strings.Contains(m.LastError, "gave up after 3 attempts") {
		t.Fatalf("after the last attempt: %+v", m)
	}
	// Retried by an operator, it goes out.
	status.Store(http.StatusNoContent)
	if _, err := db.RetryOutbox(ctx, m.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	d.Once(ctx)
	if m = message(); m.State != erasure.OutboxDelivered || m.Attempts != 1 || m.DeliveredAt == nil {
		t.Fatalf("after the operator's retry: %+v", m)
	}

	t.Run("SubscriberGoneIsDead", func(t *testing.T) {
		audited(t, db, c, 1)
		(&pipeline.Notifier{Store: db, Subscribers: []erasure.Subscriber{sub}}).Once(ctx)
		orphan := &pipeline.Deliverer{Store: db, Now: c.Now}
		orphan.Once(ctx)
		// The new request's event and the operator's retry above: two messages, both dead.
		dead, _ := db.OutboxMessages(ctx, erasure.OutboxFilter{State: erasure.OutboxDead})
		if len(dead) != 2 {
			t.Fatalf("dead %+v", dead)
		}
		for _, m := range dead {
			if !strings.Contains(m.LastError, "webhook:a is no longer configured") || m.Attempts != 1 {
				t.Errorf("dead %+v", m)
			}
		}
	})
}
