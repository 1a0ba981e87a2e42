package registry_test

import (
	"reflect"
	"testing"
	"time"

	"erasure"
	"erasure/registry"
)

func TestParse_Notify(t *testing.T) {
	cfg := mustParse(t, "x.yaml", minimal+`notify:
  - url: https://tickets.example.com/hooks/erasure?team=privacy
    events: [request.completed, request.failed]
    secret: "${WEBHOOK_SECRET}"
  - name: pager
    url: http://127.0.0.1:9000/hook
    events: [request.overdue, task.failed, sweep.failed]
    secret: ${OTHER_SECRET}
    max_attempts: 5
    backoff: { initial: 1s, max: 30s }
    timeout: 3s
`)
	want := []registry.Notify{
		{Name: "tickets.example.com", URL: "https://tickets.example.com/hooks/erasure?team=privacy", Events: []string{"request.completed", "request.failed"}, Secret: "whsec-0123456789abcdef", Line: 9},
		{Name: "pager", URL: "http://127.0.0.1:9000/hook", Events: []string{"request.overdue", "task.failed", "sweep.failed"}, Secret: "whsec-fedcba9876543210",
			MaxAttempts: 5, Backoff: erasure.Backoff{Initial: time.Second, Max: 30 * time.Second}, Timeout: 3 * time.Second, Line: 12},
	}
	if !reflect.DeepEqual(cfg.Notify, want) {
		t.Fatalf("notify = %+v\nwant %+v", cfg.Notify, want)
	}
	if s := cfg.Notify[0].String(); s != "tickets.example.com (tickets.example.com)" {
		t.Errorf("String() = %q: it must not show the path or query", s)
	}
	if cfg := mustParse(t, "x.yaml", minimal); len(cfg.Notify) != 0 {
		t.Errorf("no notify section: %+v", cfg.Notify)
	}
}
