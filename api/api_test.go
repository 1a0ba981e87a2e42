package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/api/apitest"
)

const okBody = `{"subject":{"user_id":"42","email":["a@example.com","b@example.com"]},"reason":"user_request"}`

func TestAPI_Auth(t *testing.T) {
	e := newEnv(t)
	req := e.submit(okBody)
	tests := []struct {
		name, method, path, token, body string
		header                          []string
		status                          int
		code                            string
	}{
		{"NoTokenIs401", "GET", "/v1/requests", "", "", nil, 401, erasure.EUNAUTHORIZED},
		{"UnknownTokenIs401", "GET", "/v1/requests", "wrong", "", nil, 401, erasure.EUNAUTHORIZED},
		{"TokenPrefixIs401", "GET", "/v1/requests", tokRead[:5], "", nil, 401, erasure.EUNAUTHORIZED},
		{"BasicSchemeIs401", "GET", "/v1/requests", "", "", []string{"Authorization", "Basic " + tokRead}, 401, erasure.EUNAUTHORIZED},
		{"EmptyBearerIs401", "GET", "/v1/requests", "", "", []string{"Authorization", "Bearer "}, 401, erasure.EUNAUTHORIZED},
		{"ReadRoleCannotSubmit", "POST", "/v1/requests", tokRead, okBody, nil, 403, erasure.EFORBIDDEN},
		{"SubmitRoleCannotRead", "GET", "/v1/requests/" + req.ID, tokSubmit, "", nil, 403, erasure.EFORBIDDEN},
		{"ReadRoleCannotCancel", "POST", "/v1/requests/" + req.ID + "/cancel", tokRead, "", nil, 403, erasure.EFORBIDDEN},
		{"ReadRoleCannotRetry", "POST", "/v1/requests/" + req.ID + "/retry", tokRead, "", nil, 403, erasure.EFORBIDDEN},
		{"WriteRoleCannotReadAudit", "GET", "/v1/audit", tokWrite, "", nil, 403, erasure.EFORBIDDEN},
		{"AckRoleCannotReadDatasets", "GET", "/v1/datasets", tokAckAll, "", nil, 403, erasure.EFORBIDDEN},
		{"OperateImpliesRead", "GET", "/v1/requests/" + req.ID, tokOperate, "", nil, 200, ""},
		{"ReadRoleReads", "GET", "/v1/datasets", tokRead, "", nil, 200, ""},
		{"LowerCaseBearerAccepted", "GET", "/v1/datasets", "", "", []string{"Authorization", "bearer " + tokRead}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(tc.method, tc.path, tc.token, tc.body, tc.header...)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %q", r.status, r.body, tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer WWW-Authenticate challenge: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("TokenWithoutSecretNeverMatches", func(t *testing.T) {
		r := e.call("GET", "/v1/datasets", "", "", "Authorization", "Bearer  ")
		if r.status != 401 {
			t.Fatalf("got %d", r.status)
		}
	})
	t.Run("ForbiddenActionChangesNothing", func(t *testing.T) {
		e.call("POST", "/v1/requests/"+req.ID+"/cancel", tokRead, "")
		got, err := e.svc.Request(t.Context(), req.ID)
		if err != nil || got.Status != erasure.RequestPending {
			t.Fatalf("request after a forbidden cancel: %v %v", got.Status, err)
		}
	})
}

func TestAPI_SubmitBadInput(t *testing.T) {
	long := strings.Repeat("x", erasure.MaxIdentifierValue+1)
	tests := []struct {
		name    string
		body    string
		header  []string
		status  int
		code    string
		message string // a part of the message
	}{
		{"BodyTooLarge", `{"subject":{"user_id":"` + strings.Repeat("4", 5000) + `"},"reason":"user_request"}`, nil, 413, erasure.ETOOLARGE, "larger than 4096"},
		{"BodyTooLargeAfterValue", okBody + strings.Repeat(" ", 5000), nil, 413, erasure.ETOOLARGE, ""},
		{"NotJSONContentType", okBody, []string{"Content-Type", "text/plain"}, 415, api.EUNSUPPORTED, "application/json"},
		{"FormContentType", okBody, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, api.EUNSUPPORTED, ""},
		{"Latin1Charset", okBody, []string{"Content-Type", "application/json; charset=latin1"}, 415, api.EUNSUPPORTED, "UTF-8"},
		{"MalformedJSON", `{"subject":{"user_id":"42"},"reason":"user_request"`, nil, 400, erasure.EINVALID, "truncated"},
		{"SyntaxError", `{"subject":{"user_id":42x}}`, nil, 400, erasure.EINVALID, "malformed JSON"},
		{"UnknownField", `{"subject":{"user_id":"42"},"reason":"user_request","priority":"high"}`, nil, 400, erasure.EINVALID, `unknown field "priority"`},
		{"TrailingData", okBody + `{"x":1}`, nil, 400, erasure.EINVALID, "after the JSON value"},
		{"TrailingGarbage", okBody + `garbage`, nil, 400, erasure.EINVALID, "after the JSON value"},
		{"EmptyBody", ``, []string{"Content-Type", "application/json"}, 400, erasure.EINVALID, "empty"},
		{"ArrayBody", `[1,2]`, nil, 400, erasure.EINVALID, "object"},
		{"NullBody", `null`, nil, 400, erasure.EINVALID, "subject is required"},
		{"MissingSubject", `{"reason":"user_request"}`, nil, 400, erasure.EINVALID, "subject is required"},
		{"EmptySubject", `{"subject":{},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "subject is required"},
		{"SubjectNotObject", `{"subject":["user_id","42"],"reason":"user_request"}`, nil, 400, erasure.EINVALID, "subject must be an object"},
		{"DuplicateType", `{"subject":{"user_id":"42","user_id":"43"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "twice"},
		{"MalformedType", `{"subject":{"User-ID":"42"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "not valid"},
		{"UndeclaredType", `{"subject":{"phone":"+33123"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "not declared"},
		{"EmptyValue", `{"subject":{"user_id":""},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "empty value"},
		{"ValueTooLong", `{"subject":{"user_id":"` + long[:100] + `"},"reason":"user_request"}`, nil, 0, "", ""}, // within limits: accepted
		{"NumberValue", `{"subject":{"user_id":42},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "expected a string"},
		{"EmptyArray", `{"subject":{"email":[]},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "empty"},
		{"ArrayOfNumbers", `{"subject":{"email":[1]},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "array of strings"},
		{"MissingReason", `{"subject":{"user_id":"42"}}`, nil, 400, erasure.EINVALID, "reason is required"},
		{"ReasonWithControlChars", `{"subject":{"user_id":"42"},"reason":"user\u0000request"}`, nil, 400, erasure.EINVALID, "reason must be"},
		{"ReasonWithNewline", `{"subject":{"user_id":"42"},"reason":"user_request\n"}`, nil, 400, erasure.EINVALID, "reason must be"},
		{"ReasonInjection", `{"subject":{"user_id":"42"},"reason":"x'; DROP TABLE requests;--"}`, nil, 400, erasure.EINVALID, "reason must be"},
		{"ReasonTooLong", `{"subject":{"user_id":"42"},"reason":"` + strings.Repeat("a", 65) + `"}`, nil, 400, erasure.EINVALID, "reason must be"},
		{"ReasonNotString", `{"subject":{"user_id":"42"},"reason":7}`, nil, 400, erasure.EINVALID, `field "reason" must be a string`},
		{"DeadlineNotRFC3339", `{"subject":{"user_id":"42"},"reason":"user_request","deadline":"30d"}`, nil, 400, erasure.EINVALID, "RFC 3339"},
		{"DeadlineInPast", `{"subject":{"user_id":"42"},"reason":"user_request","deadline":"2001-01-01T00:00:00Z"}`, nil, 400, erasure.EINVALID, "in the past"},
		{"DeadlineZeroTime", `{"subject":{"user_id":"42"},"reason":"user_request","deadline":"0001-01-01T00:00:00Z"}`, nil, 400, erasure.EINVALID, "deadline"},
		{"DuplicateSubject", `{"subject":{"user_id":"1"},"subject":{"user_id":"2"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, `key "subject" twice`},
		{"DuplicateReason", `{"subject":{"user_id":"42"},"reason":"user_request","reason":"legal"}`, nil, 400, erasure.EINVALID, `key "reason" twice`},
		{"FieldNameInOtherCase", `{"Subject":{"user_id":"42"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "case-sensitive"},
		{"FieldNameUpperCase", `{"subject":{"user_id":"42"},"REASON":"user_request"}`, nil, 400, erasure.EINVALID, "case-sensitive"},
		{"InvalidUTF8Value", "{\"subject\":{\"user_id\":\"4\xff2\"},\"reason\":\"user_request\"}", nil, 400, erasure.EINVALID, "UTF-8"},
		{"LoneSurrogateValue", `{"subject":{"user_id":"4\ud8002"},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "surrogate"},
		{"LoneLowSurrogateValue", `{"subject":{"email":["a@x.io","\udc00"]},"reason":"user_request"}`, nil, 400, erasure.EINVALID, "surrogate"},
		{"IdempotencyKeyTooLong", okBody, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, erasure.EINVALID, "Idempotency-Key"},
		{"IdempotencyKeyWithTab", okBody, []string{"Idempotency-Key", "a\tb"}, 400, erasure.EINVALID, "printable"},
		{"IdempotencyKeyNotASCII", okBody, []string{"Idempotency-Key", "clé"}, 400, erasure.EINVALID, "printable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.call("POST", "/v1/requests", tokSubmit, tc.body, tc.header...)
			if tc.status == 0 {
				if r.status != 201 {
					t.Fatalf("got %d %s, want 201", r.status, r.body)
				}
				return
			}
			if r.status != tc.status || r.errorCode() != tc.code || !strings.Contains(r.errorMessage(), tc.message) {
				t.Fatalf("got %d %s, want %d %s containing %q", r.status, r.body, tc.status, tc.code, tc.message)
			}
			if n := e.count(); n != 0 {
				t.Fatalf("bad input created %d requests", n)
			}
			if strings.Contains(string(r.body), "42x") || strings.Contains(string(r.body), "+33123") {
				t.Fatalf("error echoes an identifier value: %s", r.body)
			}
		})
	}
	t.Run("ContentLengthOverLimitIsRefusedUnread", func(t *testing.T) {
		e := newEnv(t)
		r := e.call("POST", "/v1/requests", tokSubmit, strings.Repeat(" ", 5000)+okBody)
		if r.status != 413 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestAPI_SubmitIdempotency(t *testing.T) {
	e := newEnv(t)
	first := e.call("POST", "/v1/requests", tokSubmit, okBody, "Idempotency-Key", "ticket-1234")
	if first.status != 201 {
		t.Fatalf("first submit: %d %s", first.status, first.body)
	}
	var req erasure.Request
	json.Unmarshal(first.body, &req)
	if loc := first.header.Get("Location"); loc != "/v1/requests/"+req.ID {
		t.Errorf("Location = %q", loc)
	}

	t.Run("SameKeySameBodyIs200WithSameRequest", func(t *testing.T) {
		// The same submission written differently: other key order, spacing, value order.
		same := `{ "reason":"user_request", "subject":{"email":["b@example.com","a@example.com"], "user_id":"42"} }`
		r := e.call("POST", "/v1/requests", tokSubmit, same, "Idempotency-Key", "ticket-1234")
		var again erasure.Request
		json.Unmarshal(r.body, &again)
		if r.status != 200 || again.ID != req.ID {
			t.Fatalf("got %d id %q, want 200 id %q", r.status, again.ID, req.ID)
		}
	})
	t.Run("SameKeyOtherBodyIs409", func(t *testing.T) {
		other := `{"subject":{"user_id":"43"},"reason":"user_request"}`
		r := e.call("POST", "/v1/requests", tokSubmit, other, "Idempotency-Key", "ticket-1234")
		if r.status != 409 || r.errorCode() != erasure.ECONFLICT {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("SameKeyOtherReasonIs409", func(t *testing.T) {
		other := strings.Replace(okBody, "user_request", "legal_hold_lifted", 1)
		r := e.call("POST", "/v1/requests", tokSubmit, other, "Idempotency-Key", "ticket-1234")
		if r.status != 409 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("NoKeyCreatesAnotherRequest", func(t *testing.T) {
		r := e.call("POST", "/v1/requests", tokSubmit, okBody)
		var other erasure.Request
		json.Unmarshal(r.body, &other)
		if r.status != 201 || other.ID == req.ID {
			t.Fatalf("got %d id %q", r.status, other.ID)
		}
	})
	if n := e.count(); n != 2 {
		t.Fatalf("service holds %d requests, want 2", n)
	}
}

func TestAPI_RequestShape(t *testing.T) {
	e := newEnv(t)
	req := e.submit(`{"subject":{"user_id":"42","email":"secret.person@example.com"},"reason":"user_request","deadline":"2999-01-02T03:04:05Z"}`)
	r := e.call("GET", "/v1/requests/"+req.ID, tokRead, "")
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	var got map[string]any
	json.Unmarshal(r.body, &got)
	for _, k := range []string{"id", "status", "overdue", "reason", "deadline", "subject_hashes", "tasks"} {
		if _, ok := got[k]; !ok {
			t.Errorf("request JSON lacks %q: %s", k, r.body)
		}
	}
	if got["deadline"] != "2999-01-02T03:04:05Z" || got["status"] != "pending" {
		t.Errorf("deadline %v status %v", got["deadline"], got["status"])
	}
	task := got["tasks"].([]any)[0].(map[string]any)
	for _, k := range []string{"dataset", "method", "status", "attempts", "removed"} {
		if _, ok := task[k]; !ok {
			t.Errorf("task JSON lacks %q: %v", k, task)
		}
	}
	if strings.Contains(string(r.body), "secret.person") || strings.Contains(string(r.body), `"42"`) {
		t.Fatalf("response holds an identifier in clear: %s", r.body)
	}
	if logs := e.logs.String(); strings.Contains(logs, "secret.person") {
		t.Fatalf("logs hold an identifier in clear: %s", logs)
	}
	t.Run("UnknownIs404", func(t *testing.T) {
		r := e.call("GET", "/v1/requests/req-9999", tokRead, "")
		if r.status != 404 || r.errorCode() != erasure.ENOTFOUND {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("MalformedIDIs400", func(t *testing.T) {
		r := e.call("GET", "/v1/requests/a'%20OR%201=1", tokRead, "")
		if r.status != 400 || r.errorCode() != erasure.EINVALID {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestAPI_RequestsList(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, func(c *api.Config) { c.Now = func() time.Time { return now } })
	clock := now
	e.svc.Now = func() time.Time { return clock }
	var ids []string
	for i := range 5 {
		deadline := now.Add(time.Duration(i+1) * time.Hour).Format(time.RFC3339)
		req := e.submit(fmt.Sprintf(`{"subject":{"user_id":"%d"},"reason":"user_request","deadline":%q}`, i, deadline))
		ids = append(ids, req.ID)
	}
	e.svc.Finish(ids[0], erasure.TaskDone, "")
	e.svc.Finish(ids[1], erasure.TaskFailed, "500 from profile-service")
	clock = now.Add(200 * time.Minute) // past the deadlines of requests 0 (completed, so not overdue), 1 (failed) and 2

	list := func(t *testing.T, q string) (erasure.RequestPage, response) {
		t.Helper()
		r := e.call("GET", "/v1/requests"+q, tokRead, "")
		var p erasure.RequestPage
		json.Unmarshal(r.body, &p)
		return p, r
	}
	pageIDs := func(p erasure.RequestPage) []string {
		var out []string
		for _, r := range p.Requests {
			out = append(out, r.ID)
		}
		return out
	}
	t.Run("ByStatus", func(t *testing.T) {
		p, r := list(t, "?status=failed")
		if got := pageIDs(p); r.status != 200 || !slices.Equal(got, []string{ids[1]}) {
			t.Fatalf("got %d %v", r.status, got)
		}
		p, _ = list(t, "?status=completed")
		if got := pageIDs(p); !slices.Equal(got, []string{ids[0]}) {
			t.Fatalf("completed: %v", got)
		}
	})
	t.Run("Overdue", func(t *testing.T) {
		p, _ := list(t, "?overdue=true")
		if got := pageIDs(p); !slices.Equal(got, []string{ids[2], ids[1]}) {
			t.Fatalf("overdue: %v want %v", got, []string{ids[2], ids[1]})
		}
		for _, r := range p.Requests {
			if !r.Overdue {
				t.Errorf("%s listed as overdue without overdue=true", r.ID)
			}
		}
	})
	t.Run("EmptyListIsArray", func(t *testing.T) {
		_, r := list(t, "?status=cancelled")
		if !strings.Contains(string(r.body), `"requests":[]`) {
			t.Fatalf("body %s", r.body)
		}
	})
	t.Run("CursorPagesThroughAll", func(t *testing.T) {
		var seen []string
		cursor, pages := "", 0
		for {
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			p, r := list(t, q)
			if r.status != 200 {
				t.Fatalf("page %d: %d %s", pages, r.status, r.body)
			}
			if len(p.Requests) > 2 {
				t.Fatalf("page of %d with limit=2", len(p.Requests))
			}
			seen = append(seen, pageIDs(p)...)
			pages++
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		want := slices.Clone(ids)
		slices.Reverse(want)
		if pages != 3 || !slices.Equal(seen, want) {
			t.Fatalf("%d pages %v, want 3 pages %v", pages, seen, want)
		}
	})
	for _, tc := range []struct{ name, q, msg string }{
		{"UnknownStatus", "?status=done", "status must be"},
		{"BadOverdue", "?overdue=maybe", "overdue must be"},
		{"ZeroLimit", "?limit=0", "limit must be"},
		{"HugeLimit", "?limit=100000", "limit must be"},
		{"TextLimit", "?limit=ten", "limit must be"},
		{"UnknownParameter", "?state=failed", `unknown query parameter "state"`},
		{"RepeatedParameter", "?status=failed&status=pending", "more than once"},
		{"BadCursor", "?cursor=zzz", "cursor"},
	} {
		t.Run("BadFilter/"+tc.name, func(t *testing.T) {
			_, r := list(t, tc.q)
			if r.status != 400 || !strings.Contains(r.errorMessage(), tc.msg) {
				t.Fatalf("got %d %s, want 400 with %q", r.status, r.body, tc.msg)
			}
		})
	}
}

func TestAPI_CancelRetry(t *testing.T) {
	e := newEnv(t)
	a, b := e.submit(okBody), e.submit(okBody)
	status := func(r response) erasure.RequestStatus {
		var req erasure.Request
		json.Unmarshal(r.body, &req)
		return req.Status
	}
	steps := []struct {
		name, path string
		status     int
		code       string
		want       erasure.RequestStatus
	}{
		{"CancelOpenRequest", "/v1/requests/" + a.ID + "/cancel", 200, "", erasure.RequestCancelled},
		{"CancelAgainIs409", "/v1/requests/" + a.ID + "/cancel", 409, erasure.ECONFLICT, ""},
		{"RetryCancelledIs409", "/v1/requests/" + a.ID + "/retry", 409, erasure.ECONFLICT, ""},
		{"RetryWithoutFailureIs409", "/v1/requests/" + b.ID + "/retry", 409, erasure.ECONFLICT, ""},
		{"CancelUnknownIs404", "/v1/requests/req-9999/cancel", 404, erasure.ENOTFOUND, ""},
		{"RetryUnknownIs404", "/v1/requests/req-9999/retry", 404, erasure.ENOTFOUND, ""},
		{"CancelMalformedIDIs400", "/v1/requests/%3Cscript%3E/cancel", 400, erasure.EINVALID, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := e.call("POST", s.path, tokOperate, "")
			if r.status != s.status || r.errorCode() != s.code || (s.want != "" && status(r) != s.want) {
				t.Fatalf("got %d %s, want %d %q %q", r.status, r.body, s.status, s.code, s.want)
			}
		})
	}
	t.Run("RetryFailedReopens", func(t *testing.T) {
		e.svc.Finish(b.ID, erasure.TaskFailed, "permanent: 403 from profile-service")
		r := e.call("POST", "/v1/requests/"+b.ID+"/retry", tokOperate, "")
		if r.status != 200 || status(r) == erasure.RequestFailed {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("ActorIsTheTokenName", func(t *testing.T) {
		evs, _ := e.svc.Audit(t.Context(), erasure.AuditFilter{RequestID: a.ID})
		if last := evs[len(evs)-1]; last.Type != erasure.EventRequestCancelled || last.Actor != "oncall" {
			t.Fatalf("last event %s by %s", last.Type, last.Actor)
		}
	})
}

func TestAPI_Ack(t *testing.T) {
	e := newEnv(t)
	req := e.submit(okBody)
	var profile, notif int64
	for _, tk := range req.Tasks {
		switch tk.Dataset {
		case "profile-service":
			profile = tk.ID
		case "notifications":
			notif = tk.ID
		}
	}
	// with returns an acknowledgement body carrying the dispatch id of task id.
	with := func(id int64, fields string) string {
		return fmt.Sprintf(`{"dispatch":%q,%s}`, apitest.DispatchOf(id), fields)
	}
	done := with(notif, `"status":"done","removed":3`)
	ack := func(id int64) string { return fmt.Sprintf("/v1/tasks/%d/ack", id) }
	tests := []struct {
		name, path, token, body string
		status                  int
		code                    string
	}{
		{"OtherDatasetScopeIs404LikeAnUnknownTask", ack(profile), tokAckNotif, with(profile, `"status":"done"`), 404, erasure.ENOTFOUND},
		{"NoAckRoleIs403", ack(notif), tokOperate, done, 403, erasure.EFORBIDDEN},
		{"NoTokenIs401", ack(notif), "", done, 401, erasure.EUNAUTHORIZED},
		{"UnknownTaskIs404", ack(9999), tokAckNotif, with(9999, `"status":"done"`), 404, erasure.ENOTFOUND},
		{"MalformedTaskIDIs400", "/v1/tasks/abc/ack", tokAckNotif, done, 400, erasure.EINVALID},
		{"NegativeTaskIDIs400", "/v1/tasks/-1/ack", tokAckNotif, done, 400, erasure.EINVALID},
		{"BadStatusIs400", ack(notif), tokAckNotif, with(notif, `"status":"ok"`), 400, erasure.EINVALID},
		{"FailedWithoutErrorIs400", ack(notif), tokAckNotif, with(notif, `"status":"failed"`), 400, erasure.EINVALID},
		{"NegativeRemovedIs400", ack(notif), tokAckNotif, with(notif, `"status":"done","removed":-1`), 400, erasure.EINVALID},
		{"UnknownFieldIs400", ack(notif), tokAckNotif, with(notif, `"status":"done","attempt":5`), 400, erasure.EINVALID},
		{"TaskIDOfAnotherTaskIs400", ack(notif), tokAckNotif, with(notif, fmt.Sprintf(`"task_id":%d,"status":"done"`, notif+1000)), 400, erasure.EINVALID},
		{"NoDispatchIs400", ack(notif), tokAckNotif, `{"status":"done"}`, 400, erasure.EINVALID},
		{"MalformedDispatchIs400", ack(notif), tokAckNotif, `{"dispatch":"1-1","status":"done"}`, 400, erasure.EINVALID},
		{"DispatchOfAnotherTaskIs404", ack(notif), tokAckNotif, with(notif+1, `"status":"done"`), 404, erasure.ENOTFOUND},
		{"ScopedTokenAcksItsDataset", ack(notif), tokAckNotif, with(notif, fmt.Sprintf(`"task_id":%d,"status":"done","removed":3`, notif)), 200, ""},
		{"AckAgainIsNoop", ack(notif), tokAckNotif, done, 200, ""},
		{"WildcardAcksAnyDataset", ack(profile), tokAckAll, with(profile, `"status":"failed","error":"disk full"`), 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("POST", tc.path, tc.token, tc.body)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %q", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	t.Run("AckedTaskIsDone", func(t *testing.T) {
		tk, _ := e.svc.Task(t.Context(), notif)
		if tk.State != erasure.TaskDone || tk.Removed != 3 {
			t.Fatalf("task %s removed %d", tk.State, tk.Removed)
		}
	})
	t.Run("CancelledTaskIs409", func(t *testing.T) {
		other := e.submit(okBody)
		e.call("POST", "/v1/requests/"+other.ID+"/cancel", tokOperate, "")
		var id int64
		for _, tk := range other.Tasks {
			if tk.Dataset == "notifications" {
				id = tk.ID
			}
		}
		r := e.call("POST", ack(id), tokAckNotif, with(id, `"status":"done"`))
		if r.status != 409 || r.errorCode() != erasure.ECONFLICT {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestAPI_Datasets(t *testing.T) {
	e := newEnv(t)
	r := e.call("GET", "/v1/datasets", tokRead, "")
	var list api.DatasetList
	json.Unmarshal(r.body, &list)
	if r.status != 200 || len(list.Datasets) != 2 || list.Datasets[1].Name != "notifications" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"One", "/v1/datasets/notifications", 200},
		{"UnknownIs404", "/v1/datasets/billing", 404},
		{"MalformedNameIs400", "/v1/datasets/..%2F..%2Fetc", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("GET", tc.path, tokRead, "")
			if r.status != tc.status {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
}

func TestAPI_Audit(t *testing.T) {
	e := newEnv(t)
	a, b := e.submit(okBody), e.submit(okBody)
	e.call("POST", "/v1/requests/"+a.ID+"/cancel", tokOperate, "")
	page := func(t *testing.T, q string) (api.AuditPage, response) {
		r := e.call("GET", "/v1/audit"+q, tokRead, "")
		var p api.AuditPage
		json.Unmarshal(r.body, &p)
		return p, r
	}
	t.Run("All", func(t *testing.T) {
		p, r := page(t, "")
		// submitted ×2, two task.cancelled, request.cancelled
		if r.status != 200 || len(p.Events) != 5 || p.NextAfter != 0 {
			t.Fatalf("got %d, %d events, next %d", r.status, len(p.Events), p.NextAfter)
		}
	})
	t.Run("OneRequest", func(t *testing.T) {
		p, _ := page(t, "?request="+b.ID)
		if len(p.Events) != 1 || p.Events[0].RequestID != b.ID {
			t.Fatalf("events %+v", p.Events)
		}
	})
	t.Run("Paged", func(t *testing.T) {
		var seqs []int64
		q := "?limit=2"
		for {
			p, r := page(t, q)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			for _, ev := range p.Events {
				seqs = append(seqs, ev.Seq)
			}
			if p.NextAfter == 0 {
				break
			}
			q = fmt.Sprintf("?limit=2&after=%d", p.NextAfter)
		}
		if !slices.Equal(seqs, []int64{1, 2, 3, 4, 5}) {
			t.Fatalf("seqs %v", seqs)
		}
	})
	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?request=a%20b", "?seq=3"} {
		t.Run("BadQuery"+q, func(t *testing.T) {
			if _, r := page(t, q); r.status != 400 {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
}

func TestAPI_Probes(t *testing.T) {
	e := newEnv(t)
	t.Run("HealthzNeedsNoToken", func(t *testing.T) {
		if r := e.call("GET", "/healthz", "", ""); r.status != 200 {
			t.Fatalf("got %d", r.status)
		}
	})
	t.Run("ReadyzFollowsService", func(t *testing.T) {
		if r := e.call("GET", "/readyz", "", ""); r.status != 200 {
			t.Fatalf("ready: got %d", r.status)
		}
		e.svc.SetReady(errors.New("dial tcp 127.0.0.1:5432: connection refused"))
		r := e.call("GET", "/readyz", "", "")
		if r.status != 503 || r.errorCode() != erasure.EUNAVAILABLE || strings.Contains(string(r.body), "5432") {
			t.Fatalf("not ready: got %d %s", r.status, r.body)
		}
		if r := e.call("GET", "/healthz", "", ""); r.status != 200 {
			t.Fatalf("healthz while not ready: %d", r.status)
		}
	})
	t.Run("MetricsCountRequestsByRoute", func(t *testing.T) {
		e.submit(okBody)
		e.call("GET", "/v1/requests", "", "")
		r := e.call("GET", "/metrics", "", "")
		for _, want := range []string{
			`erasure_http_requests_total{code="201",method="POST",route="POST /v1/requests"} 1`,
			`erasure_http_requests_total{code="401",method="GET",route="GET /v1/requests"} 1`,
			`erasure_http_request_duration_seconds_count{method="POST",route="POST /v1/requests"} 1`,
			`go_goroutines`,
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func TestAPI_Routing(t *testing.T) {
	e := newEnv(t)
	t.Run("UnknownPathIs404JSON", func(t *testing.T) {
		r := e.call("GET", "/v1/nothing", tokRead, "")
		if r.status != 404 || r.errorCode() != erasure.ENOTFOUND {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("WrongMethodIs405JSON", func(t *testing.T) {
		r := e.call("DELETE", "/v1/requests", tokRead, "")
		if r.status != 405 || r.header.Get("Allow") != "GET, POST" || r.errorCode() != api.EMETHOD {
			t.Fatalf("got %d allow %q %s", r.status, r.header.Get("Allow"), r.body)
		}
	})
	t.Run("RequestIDIsEchoed", func(t *testing.T) {
		r := e.call("GET", "/healthz", "", "", "X-Request-Id", "abc-123")
		if r.header.Get("X-Request-Id") != "abc-123" {
			t.Fatalf("X-Request-Id %q", r.header.Get("X-Request-Id"))
		}
		if !strings.Contains(e.logs.String(), `"request_id":"abc-123"`) {
			t.Fatalf("log lacks the request id: %s", e.logs.String())
		}
	})
}

func TestAPI_MountedRoutes(t *testing.T) {
	var srv *api.Server
	records := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, err := srv.Authorize(r, api.RoleWrite)
		if err != nil {
			api.WriteError(w, r, err)
			return
		}
		api.WriteJSON(w, 200, map[string]string{"actor": actor, "path": r.URL.Path})
	})
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dashboard")) })
	e := newEnv(t, func(c *api.Config) {
		c.Records = records
		c.Extra = map[string]http.Handler{"GET /ui/": ui}
	})
	srv = e.api
	if r := e.call("GET", "/ui/", "", ""); r.status != 200 || string(r.body) != "dashboard" {
		t.Fatalf("extra route: %d %s", r.status, r.body)
	}
	if r := e.call("POST", "/v1/records/sierra/archive", tokRead, "{}"); r.status != 403 {
		t.Fatalf("read token on records: %d %s", r.status, r.body)
	}
	if r := e.call("POST", "/v1/records/sierra/archive", tokWrite, "{}"); r.status != 200 || !strings.Contains(string(r.body), "records-writer") {
		t.Fatalf("write token on records: %d %s", r.status, r.body)
	}
}

func TestAPI_InternalErrorsDoNotLeak(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Service = failing{c.Service} })
	r := e.call("GET", "/v1/datasets", tokRead, "")
	if r.status != 500 || r.errorMessage() != "internal error" || strings.Contains(string(r.body), "sqlite") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "database is locked") {
		t.Fatalf("the internal error is not logged for operators: %s", e.logs.String())
	}
}
