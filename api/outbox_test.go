package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/api"
)

// outbox is an erasure.OutboxService over a fixed list, recording the filters it is given.
type outbox struct {
	msgs    []erasure.OutboxMessage
	filters []erasure.OutboxFilter
	retried []string
}

func (o *outbox) OutboxMessages(ctx context.Context, f erasure.OutboxFilter) ([]erasure.OutboxMessage, error) {
	o.filters = append(o.filters, f)
	var out []erasure.OutboxMessage
	for _, m := range o.msgs {
		if (f.State == "" || m.State == f.State) && (f.Key == "" || m.Key == f.Key) && len(out) < f.Limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (o *outbox) RetryOutbox(ctx context.Context, id int64, actor string) (*erasure.OutboxMessage, error) {
	for i := range o.msgs {
		if o.msgs[i].ID == id {
			if o.msgs[i].State != erasure.OutboxDead {
				return nil, erasure.Errorf(erasure.ECONFLICT, "not dead")
			}
			o.retried = append(o.retried, actor)
			m := o.msgs[i]
			m.State = erasure.OutboxPending
			return &m, nil
		}
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "outbox message %d not found", id)
}

type resolver map[string]string

func (r resolver) ResolveRequestID(ctx context.Context, prefix string) (string, error) {
	if id, ok := r[prefix]; ok {
		return id, nil
	}
	return "", erasure.Errorf(erasure.ENOTFOUND, "no request id starts with %s", prefix)
}

func TestOutboxRoutes(t *testing.T) {
	e := newEnv(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := &outbox{msgs: []erasure.OutboxMessage{
		{ID: 2, Subscriber: "webhook:t", Key: "r_1", Event: "request.failed", URL: "https://hooks.example.com/services/T000/B000/XXXX?token=abc", Body: json.RawMessage(`{"type":"request.failed"}`), State: erasure.OutboxDead, Attempts: 20, LastError: "POST https://hooks.example.com: 500 Internal Server Error", CreatedAt: at, NextAt: at},
		{ID: 1, Subscriber: "webhook:t", Key: "r_1", Event: "task.failed", URL: "https://hooks.example.com/services/T000/B000/XXXX?token=abc", Body: json.RawMessage(`{"type":"task.failed"}`), State: erasure.OutboxDelivered, Attempts: 1, CreatedAt: at, NextAt: at, DeliveredAt: &at},
	}}
	for pattern, h := range api.OutboxRoutes(e.api, o) {
		e.api.Mount(pattern, h)
	}
	for pattern, h := range api.ResolveRoutes(e.api, resolver{"r_06h3": "r_06h3aaaaaaaaaaaaaaaaaaaaaaa"}) {
		e.api.Mount(pattern, h)
	}

	r := e.call("GET", "/v1/webhooks/deliveries?state=dead&request=r_1&subscriber=webhook:t&limit=10", tokRead, "")
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var page api.DeliveryPage
	json.Unmarshal(r.body, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].ID != 2 || page.Deliveries[0].URL != "https://hooks.example.com" || page.NextAfter != 0 {
		t.Fatalf("page %s", r.body)
	}
	if strings.Contains(string(r.body), "XXXX") || strings.Contains(string(r.body), "token") {
		t.Fatalf("the endpoint's path or query is shown: %s", r.body)
	}
	if f := o.filters[len(o.filters)-1]; f != (erasure.OutboxFilter{Subscriber: "webhook:t", Key: "r_1", State: erasure.OutboxDead, Limit: 10}) {
		t.Fatalf("filter %+v", f)
	}
	r = e.call("GET", "/v1/webhooks/deliveries?limit=1", tokRead, "")
	json.Unmarshal(r.body, &page)
	if page.NextAfter != 2 {
		t.Fatalf("a full page has no next: %s", r.body)
	}
	for _, tc := range []struct{ path, token, code string }{
		{"/v1/webhooks/deliveries", "", erasure.EUNAUTHORIZED},
		{"/v1/webhooks/deliveries", tokSubmit, erasure.EFORBIDDEN},
		{"/v1/webhooks/deliveries?state=lost", tokRead, erasure.EINVALID},
		{"/v1/webhooks/deliveries?limit=0", tokRead, erasure.EINVALID},
		{"/v1/webhooks/deliveries?request=a%20b", tokRead, erasure.EINVALID},
		{"/v1/webhooks/deliveries?colour=red", tokRead, erasure.EINVALID},
	} {
		if r := e.call("GET", tc.path, tc.token, ""); r.errorCode() != tc.code {
			t.Errorf("GET %s: %d %s, want %s", tc.path, r.status, r.body, tc.code)
		}
	}

	for _, tc := range []struct {
		id, token, code string
	}{
		{"2", tokRead, erasure.EFORBIDDEN},
		{"x", tokOperate, erasure.EINVALID},
		{"99", tokOperate, erasure.ENOTFOUND},
		{"1", tokOperate, erasure.ECONFLICT},
	} {
		if r := e.call("POST", "/v1/webhooks/deliveries/"+tc.id+"/retry", tc.token, ""); r.errorCode() != tc.code {
			t.Errorf("retry %s: %d %s, want %s", tc.id, r.status, r.body, tc.code)
		}
	}
	r = e.call("POST", "/v1/webhooks/deliveries/2/retry", tokOperate, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"state":"pending"`) || strings.Contains(string(r.body), "XXXX") || len(o.retried) != 1 || o.retried[0] != "oncall" {
		t.Fatalf("retry: %d %s %v", r.status, r.body, o.retried)
	}

	r = e.call("GET", "/v1/requests:resolve?prefix=r_06h3", tokRead, "")
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"id":"r_06h3aaaaaaaaaaaaaaaaaaaaaaa"}` {
		t.Fatalf("resolve: %d %s", r.status, r.body)
	}
	for path, code := range map[string]string{"/v1/requests:resolve?prefix=r_07": erasure.ENOTFOUND, "/v1/requests:resolve": erasure.EINVALID,
		"/v1/requests:resolve?prefix=" + strings.Repeat("a", 65): erasure.EINVALID} {
		if r := e.call("GET", path, tokRead, ""); r.errorCode() != code {
			t.Errorf("GET %s: %d %s, want %s", path, r.status, r.body, code)
		}
	}
}
