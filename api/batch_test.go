package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"erasure"
	"erasure/api"
)

func batchOf(items ...string) string { return `{"requests":[` + strings.Join(items, ",") + `]}` }

func item(user, key string) string {
	return fmt.Sprintf(`{"subject":{"user_id":%q},"reason":"retention","idempotency_key":%q}`, user, key)
}

func (e *env) batch(body string) (response, api.BatchResponse) {
	e.t.Helper()
	r := e.call("POST", "/v1/requests:batch", tokSubmit, body)
	var out api.BatchResponse
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &out); err != nil {
			e.t.Fatalf("batch response: %v\n%s", err, r.body)
		}
	}
	return r, out
}

func TestAPI_SubmitBatch(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 1 << 20 })

	t.Run("PerItemResults", func(t *testing.T) {
		e.submit(okBody) // a request submitted alone before
		body := batchOf(
			item("1", "k1"),
			item("2", "k2"),
			item("1", "k1"), // the same key and content again: the first's request
			`{"subject":{"user_id":"3"},"reason":"retention","idempotency_key":"k1"}`, // the key, other content
			`{"subject":{"user_id":"4"},"reason":"retention","colour":"red"}`,         // an unknown field
			`{"subject":{"phone":"5"},"reason":"retention"}`,                          // an undeclared type
			`{"subject":{"user_id":"6"},"reason":"retention","deadline":"2001-01-01T00:00:00Z"}`,
			`{"subject":{"user_id":"7"},"reason":"Not A Label"}`,
			`{"subject":{"user_id":"8"},"reason":"retention","idempotency_key":"tab\there"}`,
			`[1,2]`,
			item("9", ""), // no key: always a new request
		)
		r, out := e.batch(body)
		if r.status != 200 {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		wantStatus := []int{201, 201, 200, 409, 400, 400, 400, 400, 400, 400, 201}
		if len(out.Results) != len(wantStatus) {
			t.Fatalf("%d results for %d submissions", len(out.Results), len(wantStatus))
		}
		for i, it := range out.Results {
			if it.Index != i || it.Status != wantStatus[i] {
				t.Errorf("result %d: %+v, want status %d", i, it, wantStatus[i])
			}
			if (it.Status >= 400) != (it.Error != nil) || (it.Status < 400) != (it.ID != "") {
				t.Errorf("result %d: status %d with id %q and error %+v", i, it.Status, it.ID, it.Error)
			}
		}
		if out.Results[2].ID != out.Results[0].ID {
			t.Errorf("the same key twice gave %s and %s", out.Results[0].ID, out.Results[2].ID)
		}
		if out.Created != 3 || out.Existing != 1 || out.Failed != 7 {
			t.Errorf("counts %d created, %d existing, %d failed", out.Created, out.Existing, out.Failed)
		}
		if msg := out.Results[4].Error.Message; !strings.Contains(msg, "colour") {
			t.Errorf("unknown field message %q", msg)
		}
		for _, it := range out.Results {
			if it.Error != nil && strings.Contains(it.Error.Message, `"5"`) {
				t.Errorf("an error message shows an identifier value: %q", it.Error.Message)
			}
		}
		// Nothing of the refused submissions was stored.
		page, _ := e.svc.Requests(t.Context(), erasure.RequestFilter{Limit: 100})
		if len(page.Requests) != 4 { // the single one and the batch's three
			t.Fatalf("%d requests stored, want 4", len(page.Requests))
		}
	})

	t.Run("TheBatchItselfIsRefusedWhole", func(t *testing.T) {
		page, _ := e.svc.Requests(t.Context(), erasure.RequestFilter{Limit: 500})
		before := len(page.Requests)
		many := make([]string, erasure.MaxBatchSubmissions+1)
		for i := range many {
			many[i] = `{}`
		}
		for name, tc := range map[string]struct {
			body, token string
			status      int
		}{
			"Empty":           {`{"requests":[]}`, tokSubmit, 400},
			"NoRequests":      {`{}`, tokSubmit, 400},
			"UnknownField":    {`{"requests":[` + item("1", "x") + `],"dry_run":true}`, tokSubmit, 400},
			"NotAnObject":     {`[` + item("1", "x") + `]`, tokSubmit, 400},
			"Malformed":       {`{"requests":[` + item("1", "x"), tokSubmit, 400},
			"TooMany":         {batchOf(many...), tokSubmit, 400},
			"ReadRoleRefused": {batchOf(item("1", "y")), tokRead, 403},
		} {
			t.Run(name, func(t *testing.T) {
				r := e.call("POST", "/v1/requests:batch", tc.token, tc.body)
				if r.status != tc.status || r.errorCode() == "" {
					t.Fatalf("got %d %s, want %d with an error", r.status, r.body, tc.status)
				}
			})
		}
		t.Run("TooLarge", func(t *testing.T) {
			r := e.call("POST", "/v1/requests:batch", tokSubmit, batchOf(item(strings.Repeat("9", api.MaxBatchBody), "z")))
			if r.status != 413 {
				t.Fatalf("got %d, want 413", r.status)
			}
		})
		page, _ = e.svc.Requests(t.Context(), erasure.RequestFilter{Limit: 500})
		if len(page.Requests) != before {
			t.Fatalf("refused batches stored %d requests", len(page.Requests)-before)
		}
	})

	t.Run("TenThousand", func(t *testing.T) {
		items := make([]string, erasure.MaxBatchSubmissions)
		for i := range items {
			items[i] = item(fmt.Sprint(100000+i), fmt.Sprintf("bulk-%d", i))
		}
		r, out := e.batch(batchOf(items...))
		if r.status != 200 || out.Created != erasure.MaxBatchSubmissions || out.Failed != 0 {
			t.Fatalf("batch of %d: %d, %d created, %d failed", len(items), r.status, out.Created, out.Failed)
		}
	})
}
