package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/webhook"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func endpoint(events ...string) webhook.Endpoint {
	return webhook.Endpoint{Name: "tickets", URL: "https://tickets.example/hook", Events: events, Secret: "whsec-0123456789abcdef"}
}

func event(typ, request string, data any) erasure.AuditEvent {
	return erasure.AuditEvent{Seq: 42, Time: at, Actor: "pipeline", Type: typ, RequestID: request, Data: erasure.EventData(data)}
}

func TestSubscriber_Messages(t *testing.T) {
	s := webhook.New(endpoint(erasure.Notifications...), "0123456789abcdef0123")
	failedAttempt := event(erasure.EventTaskAttempt, "r_1", erasure.AttemptData{Attempt: 3, Outcome: erasure.TaskFailed, Error: "DELETE http://profile/users/{user_id}: 400 Bad Request"})
	failedAttempt.TaskID, failedAttempt.Dataset = 7, "profile"
	failedAck := event(erasure.EventTaskAcked, "r_1", map[string]any{"status": "failed", "outcome": erasure.TaskFailed, "attempt": 2, "error": "user alice@example.com is locked"})
	failedAck.TaskID, failedAck.Dataset = 8, "notifications"
	retried := event(erasure.EventTaskAttempt, "r_1", erasure.AttemptData{Attempt: 1, Outcome: erasure.TaskPending, Error: "503"})
	overdue := erasure.OverdueEvent("r_1", erasure.RequestRunning, at.Add(-time.Hour), at)
	overdue.Seq = 42
	sweep := erasure.AuditEvent{Seq: 42, Time: at, Type: erasure.EventSweepFailed, Dataset: "events", Data: erasure.EventData(map[string]any{"sweep": "s_1", "error": "disk full", "requeued": []int64{1, 2, 3}})}
	for _, tc := range []struct {
		name  string
		ev    erasure.AuditEvent
		event string
		key   string
		body  string
	}{
		{"Completed", event(erasure.EventRequestCompleted, "r_1", map[string]any{"from": "running", "tasks": map[string]int{"done": 3}, "removed": 5}),
			"request.completed", "r_1", `{"id":"0123456789ab-42","type":"request.completed","time":"2026-03-01T12:00:00Z","request":{"id":"r_1","status":"completed","tasks":{"done":3},"removed":5}}`},
		{"Failed", event(erasure.EventRequestFailed, "r_1", map[string]any{"from": "running", "tasks": map[string]int{"done": 2, "failed": 1}, "removed": 0}),
			"request.failed", "r_1", `{"id":"0123456789ab-42","type":"request.failed","time":"2026-03-01T12:00:00Z","request":{"id":"r_1","status":"failed","tasks":{"done":2,"failed":1},"removed":0}}`},
		{"Overdue", overdue,
			"request.overdue", "r_1", `{"id":"0123456789ab-42","type":"request.overdue","time":"2026-03-01T12:00:00Z","request":{"id":"r_1","status":"running","deadline":"2026-03-01T11:00:00Z"}}`},
		{"TaskFailedAttempt", failedAttempt, "task.failed", "r_1",
			`{"id":"0123456789ab-42","type":"task.failed","time":"2026-03-01T12:00:00Z","request":{"id":"r_1"},"task":{"id":7,"dataset":"profile","attempt":3,"via":"attempt"}}`},
		{"TaskFailedAck", failedAck, "task.failed", "r_1",
			`{"id":"0123456789ab-42","type":"task.failed","time":"2026-03-01T12:00:00Z","request":{"id":"r_1"},"task":{"id":8,"dataset":"notifications","attempt":2,"via":"ack"}}`},
		{"SweepFailed", sweep, "sweep.failed", "sweep:events",
			`{"id":"0123456789ab-42","type":"sweep.failed","time":"2026-03-01T12:00:00Z","sweep":{"id":"s_1","dataset":"events","requeued":3}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := s.Messages(context.Background(), tc.ev)
			if err != nil || len(ms) != 1 {
				t.Fatalf("Messages = %+v, %v", ms, err)
			}
			m := ms[0]
			if m.Subscriber != "webhook:tickets" || m.Event != tc.event || m.Key != tc.key || m.URL != "https://tickets.example/hook" || m.AuditSeq != tc.ev.Seq {
				t.Errorf("message %+v", m)
			}
			if string(m.Body) != tc.body {
				t.Errorf("body\n got %s\nwant %s", m.Body, tc.body)
			}
			// Free text (errors) never goes out: it may quote anything.
			if strings.Contains(string(m.Body), "alice") || strings.Contains(string(m.Body), "error") || strings.Contains(string(m.Body), "disk") {
				t.Errorf("the body carries free text: %s", m.Body)
			}
		})
	}
	t.Run("NotANotification", func(t *testing.T) {
		for _, ev := range []erasure.AuditEvent{retried, event(erasure.EventRequestSubmitted, "r_1", map[string]any{}), event(erasure.EventSubjectHashed, "r_1", map[string]any{})} {
			if ms, err := s.Messages(context.Background(), ev); err != nil || len(ms) != 0 {
				t.Errorf("%s: %+v, %v", ev.Type, ms, err)
			}
		}
	})
	t.Run("OnlyTheEventsAskedFor", func(t *testing.T) {
		only := webhook.New(endpoint(erasure.NotifyRequestCompleted), "")
		if ms, _ := only.Messages(context.Background(), failedAttempt); len(ms) != 0 {
			t.Errorf("task.failed sent to an endpoint that asked for request.completed only")
		}
		ms, _ := only.Messages(context.Background(), event(erasure.EventRequestCompleted, "r_1", map[string]any{"tasks": map[string]int{}, "removed": 0}))
		var p webhook.Payload
		if len(ms) != 1 || json.Unmarshal(ms[0].Body, &p) != nil || p.ID != "42" {
			t.Errorf("without a deployment the id is the sequence: %+v", ms)
		}
	})
}

func TestSign_Verify(t *testing.T) {
	s := webhook.New(endpoint(erasure.Notifications...), "")
	body := []byte(`{"id":"42","type":"request.completed"}`)
	h, err := s.Headers(erasure.OutboxMessage{ID: 9, Event: "request.completed", Body: body}, at)
	if err != nil {
		t.Fatal(err)
	}
	sig := h[webhook.HeaderSignature]
	if h["Content-Type"] != "application/json" || h[webhook.HeaderEvent] != "request.completed" || h[webhook.HeaderDelivery] != "9" || !strings.HasPrefix(sig, "t=1772366400,v1=") {
		t.Fatalf("headers %v", h)
	}
	// What a receiver computes by hand: HMAC-SHA256(secret, "1772366400." + body).
	secret := endpoint().Secret
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("1772366400." + string(body)))
	if want := "t=1772366400,v1=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Fatalf("signature %s, want %s", sig, want)
	}
	if err := webhook.Verify(secret, sig, body, at.Add(2*time.Minute), 0); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		now            time.Time
	}{
		"ChangedBody":      {secret, sig, []byte(`{"id":"43","type":"request.completed"}`), at},
		"OtherSecret":      {"another-secret-0123456789", sig, body, at},
		"Replayed":         {secret, sig, body, at.Add(6 * time.Minute)},
		"FromTheFuture":    {secret, sig, body, at.Add(-6 * time.Minute)},
		"NoSignature":      {secret, "t=1772366400", body, at},
		"NoTime":           {secret, strings.Split(sig, ",")[1], body, at},
		"Garbage":          {secret, "hello", body, at},
		"OtherTimeSameSig": {secret, "t=1772366401," + strings.Split(sig, ",")[1], body, at},
	} {
		if err := webhook.Verify(tc.secret, tc.header, tc.body, tc.now, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
