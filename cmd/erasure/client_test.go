package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/api/apitest"
)

// clientEnv is an API over an in-memory service, with ERASURE_URL and ERASURE_TOKEN set for
// the client commands.
type clientEnv struct {
	svc *apitest.Service
	url string
}

func newClientEnv(t *testing.T) *clientEnv {
	t.Helper()
	svc := apitest.New([]string{"user_id", "email"},
		erasure.DatasetInfo{Name: "profile-service", Owner: "profile-team", Connector: "http", Method: erasure.MethodRealtime,
			Health: erasure.DatasetStats{Backlog: 3, Failures: 1, FailedAttempts: 7, LastError: "DELETE http://profile/users/{user_id}: 503 Service Unavailable",
				FailingSince: &failingSince}},
		erasure.DatasetInfo{Name: "notifications", Owner: "messaging-team", Connector: "nats", Method: erasure.MethodAsync},
	)
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Tokens: []api.Token{
		{Name: "admin", Secret: "admin-secret", Roles: []string{"submit", "operate"}},
		{Name: "viewer", Secret: "viewer-secret", Roles: []string{"read"}},
	}}).Handler())
	t.Cleanup(srv.Close)
	t.Setenv("ERASURE_URL", srv.URL)
	t.Setenv("ERASURE_TOKEN", "admin-secret")
	first, max := waitFirstPoll, waitMaxPoll
	waitFirstPoll, waitMaxPoll = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { waitFirstPoll, waitMaxPoll = first, max })
	return &clientEnv{svc: svc, url: srv.URL}
}

// run runs the CLI and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

var requestIDLine = regexp.MustCompile(`^req-\d{4}\n$`)

var failingSince = time.Date(2026, 3, 1, 11, 50, 0, 0, time.UTC)

func TestClientCommands_Submit(t *testing.T) {
	e := newClientEnv(t)
	t.Run("PrintsTheRequestID", func(t *testing.T) {
		code, out, errOut := run(t, "submit", "user_id=42", "email=a@example.com", "email=b@example.com")
		if code != 0 || !requestIDLine.MatchString(out) {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
		if !strings.HasPrefix(lastLine(errOut), "submitted "+strings.TrimSpace(out)+": 3 identifiers, 2 tasks planned") {
			t.Fatalf("stderr %q", errOut)
		}
		req, err := e.svc.Request(t.Context(), strings.TrimSpace(out))
		if err != nil || req.Reason != "user_request" || req.SubmittedBy != "admin" || len(req.SubjectHashes) != 3 {
			t.Fatalf("stored %+v %v", req, err)
		}
	})
	t.Run("ReasonAndDeadline", func(t *testing.T) {
		code, out, errOut := run(t, "submit", "user_id=43", "--reason", "legal hold lifted", "--deadline", "7d")
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		req, _ := e.svc.Request(t.Context(), strings.TrimSpace(out))
		if want := time.Now().Add(7 * 24 * time.Hour); req.Reason != "legal hold lifted" || req.Deadline.Before(want.Add(-time.Minute)) || req.Deadline.After(want.Add(time.Minute)) {
			t.Fatalf("reason %q deadline %s", req.Reason, req.Deadline)
		}
	})
	t.Run("IdempotencyKeyReturnsTheSameRequest", func(t *testing.T) {
		_, first, _ := run(t, "submit", "user_id=44", "--idempotency-key", "ticket-9")
		code, again, errOut := run(t, "submit", "user_id=44", "--idempotency-key", "ticket-9")
		if code != 0 || again != first || !strings.Contains(errOut, "already submitted") {
			t.Fatalf("exit %d %q vs %q, stderr %q", code, again, first, errOut)
		}
		code, _, errOut = run(t, "submit", "user_id=45", "--idempotency-key", "ticket-9")
		if code != 5 || !strings.Contains(errOut, "idempotency key") {
			t.Fatalf("other content under the key: exit %d %q", code, errOut)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"NoIdentifier", []string{"submit"}, 2, "TYPE=VALUE"},
		{"NotTypeValue", []string{"submit", "42"}, 2, "not TYPE=VALUE"},
		{"MalformedType", []string{"submit", "User=42"}, 2, "not valid"},
		{"EmptyValue", []string{"submit", "user_id="}, 2, "empty value"},
		{"UndeclaredType", []string{"submit", "phone=+33100"}, 2, "not declared"},
		{"BadReason", []string{"submit", "user_id=1", "--reason", "Asked by mail: a@example.com"}, 2, "reason must be"},
		{"BadDeadline", []string{"submit", "user_id=1", "--deadline", "soon"}, 2, "--deadline"},
		{"PastDeadline", []string{"submit", "user_id=1", "--deadline", "2001-01-01T00:00:00Z"}, 2, "in the past"},
		{"UnknownFlag", []string{"submit", "user_id=1", "--priority", "high"}, 2, "priority"},
	} {
		t.Run("Refuses/"+tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) || out != "" {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d with %q", code, out, errOut, tc.code, tc.msg)
			}
			if tc.name != "UnknownFlag" && strings.Count(errOut, "\n") != 1 {
				t.Fatalf("error is not one line: %q", errOut)
			}
			if strings.Contains(errOut, "+33100") {
				t.Fatalf("error shows an identifier value: %q", errOut)
			}
		})
	}
	t.Run("Refuses/WrongRole", func(t *testing.T) {
		t.Setenv("ERASURE_TOKEN", "viewer-secret")
		if code, _, errOut := run(t, "submit", "user_id=1"); code != 4 || !strings.Contains(errOut, "submit role") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
	t.Run("Refuses/NoToken", func(t *testing.T) {
		t.Setenv("ERASURE_TOKEN", "")
		if code, _, errOut := run(t, "submit", "user_id=1"); code != 4 || !strings.Contains(errOut, "missing bearer token") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
	t.Run("Refuses/ServerDown", func(t *testing.T) {
		t.Setenv("ERASURE_URL", "http://127.0.0.1:1")
		code, _, errOut := run(t, "submit", "user_id=1")
		if code != 6 || !strings.Contains(errOut, "cannot reach the erasure API at http://127.0.0.1:1") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
	t.Run("Refuses/BadURL", func(t *testing.T) {
		t.Setenv("ERASURE_URL", "127.0.0.1:8080")
		if code, _, errOut := run(t, "submit", "user_id=1"); code != 2 || !strings.Contains(errOut, "ERASURE_URL") && !strings.Contains(errOut, "not an http(s) URL") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
}

func TestClientCommands_Wait(t *testing.T) {
	e := newClientEnv(t)
	// finishAfter makes the service end a request on its third read, as the pipeline would.
	finishAfter := func(state erasure.TaskState, lastError string) {
		e.svc.AfterRequest = func(id string, reads int) {
			if reads == 3 {
				e.svc.Finish(id, state, lastError)
			}
		}
	}
	t.Run("SubmitWaitCompleted", func(t *testing.T) {
		finishAfter(erasure.TaskDone, "")
		code, out, errOut := run(t, "submit", "user_id=42", "--wait")
		if code != 0 || !requestIDLine.MatchString(out) || !strings.HasSuffix(errOut, "completed: 2 of 2 tasks done, 2 removed\n") {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
		if !strings.Contains(errOut, "pending: 0 of 2 tasks done, 2 open") {
			t.Fatalf("no progress line on stderr: %q", errOut)
		}
	})
	t.Run("FailedExitsNonZeroNamingTheTask", func(t *testing.T) {
		finishAfter(erasure.TaskFailed, "permanent: 403 Forbidden from profile-service")
		_, out, _ := run(t, "submit", "user_id=43")
		id := strings.TrimSpace(out)
		code, out, errOut := run(t, "wait", id)
		if code != 1 || !strings.Contains(out, id+" failed: 0 of 2 tasks done, 2 failed") ||
			!strings.Contains(errOut, "403 Forbidden") || !strings.Contains(errOut, "erasure retry "+id) {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
	})
	t.Run("CancelledExitsNonZero", func(t *testing.T) {
		e.svc.AfterRequest = nil
		_, out, _ := run(t, "submit", "user_id=44")
		id := strings.TrimSpace(out)
		run(t, "cancel", id)
		if code, out, _ := run(t, "wait", id); code != 1 || !strings.Contains(out, "cancelled") {
			t.Fatalf("exit %d stdout %q", code, out)
		}
	})
	t.Run("TimeoutExitsNonZero", func(t *testing.T) {
		e.svc.AfterRequest = nil
		_, out, _ := run(t, "submit", "user_id=45")
		id := strings.TrimSpace(out)
		code, _, errOut := run(t, "wait", id, "--timeout", "20ms")
		if code != 1 || !strings.Contains(errOut, "did not end within 20ms") {
			t.Fatalf("exit %d stderr %q", code, errOut)
		}
	})
	t.Run("UnknownRequestIs3", func(t *testing.T) {
		if code, _, errOut := run(t, "wait", "req-9999"); code != 3 || !strings.Contains(errOut, "not found") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
	t.Run("NeedsOneID", func(t *testing.T) {
		if code, _, _ := run(t, "wait"); code != 2 {
			t.Fatalf("exit %d", code)
		}
	})
}

func TestClientCommands_StatusCancelRetry(t *testing.T) {
	e := newClientEnv(t)
	_, out, _ := run(t, "submit", "user_id=42")
	id := strings.TrimSpace(out)
	t.Run("Status", func(t *testing.T) {
		e.svc.Finish(id, erasure.TaskFailed, "500 Internal Server Error\nfrom profile")
		code, out, errOut := run(t, "status", id)
		if code != 0 {
			t.Fatalf("exit %d %s", code, errOut)
		}
		for _, want := range []string{
			"request " + id + "  status failed  overdue no",
			"DATASET", "LAST ERROR", "profile-service", "notifications", "500 Internal Server Error",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "from profile") {
			t.Errorf("a last error spans several lines:\n%s", out)
		}
		if last := lastLine(out); last != id+" failed: 0 of 2 tasks done, 2 failed, 0 removed" {
			t.Errorf("last line %q", last)
		}
	})
	t.Run("StatusUnknownIs3", func(t *testing.T) {
		if code, _, _ := run(t, "status", "req-9999"); code != 3 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("Retry", func(t *testing.T) {
		code, out, errOut := run(t, "retry", id)
		if code != 0 || !strings.HasPrefix(out, "retried "+id+"; now "+id+" pending") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
		if code, _, errOut := run(t, "retry", id); code != 5 || !strings.Contains(errOut, "no failed task") {
			t.Fatalf("retry with nothing failed: exit %d %q", code, errOut)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		code, out, _ := run(t, "cancel", id)
		if code != 0 || out != "cancelled "+id+"; now "+id+" cancelled: 0 of 2 tasks done, 2 cancelled, 0 removed\n" {
			t.Fatalf("exit %d %q", code, out)
		}
		if code, _, errOut := run(t, "cancel", id); code != 5 || !strings.Contains(errOut, "already cancelled") {
			t.Fatalf("cancel again: exit %d %q", code, errOut)
		}
	})
	t.Run("ReadTokenCannotCancel", func(t *testing.T) {
		t.Setenv("ERASURE_TOKEN", "viewer-secret")
		if code, _, _ := run(t, "cancel", id); code != 4 {
			t.Fatalf("exit %d", code)
		}
	})
}

func TestClientCommands_DatasetsList(t *testing.T) {
	newClientEnv(t)
	code, out, errOut := run(t, "datasets", "list")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") ||
		!regexp.MustCompile(`^profile-service\s+profile-team\s+http\s+realtime\s+3\s+1\s+-\s+7\s+2026-03-01T11:50:00Z\s+-\s+DELETE http://profile/users/\{user_id\}: 503 Service Unavailable$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^notifications\s+messaging-team\s+nats\s+async\s+0\s+0\s+-\s+0\s+-\s+-\s*$`).MatchString(lines[2]) ||
		lines[3] != "2 datasets, 3 tasks in backlog, 1 failed; 1 failing now" {
		t.Fatalf("output:\n%s", out)
	}
}

func TestClientCommands_AuditVerify(t *testing.T) {
	e := newClientEnv(t)
	var ids []string
	for _, u := range []string{"user_id=1", "user_id=2", "user_id=3"} {
		_, out, _ := run(t, "submit", u)
		ids = append(ids, strings.TrimSpace(out))
	}
	run(t, "cancel", ids[1]) // two task.cancelled and request.cancelled: 6 events
	t.Run("IntactTrail", func(t *testing.T) {
		code, out, errOut := run(t, "audit", "verify")
		if code != 0 || !regexp.MustCompile(`^audit trail ok: 6 events in 0 blocks, head 0:[0-9a-f]{64}\n$`).MatchString(out) {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("OneRequest", func(t *testing.T) {
		code, out, _ := run(t, "audit", "verify", "--request", ids[1])
		if code != 0 || !strings.HasPrefix(out, "request "+ids[1]+": 4 events in the trail\naudit trail ok: 6 events") {
			t.Fatalf("exit %d %q", code, out)
		}
		if code, _, _ := run(t, "audit", "verify", "--request", "req-9999"); code != 3 {
			t.Fatalf("unknown request: exit %d", code)
		}
	})
	t.Run("TamperedEventIsNamed", func(t *testing.T) {
		e.svc.TamperAudit(4, func(ev *erasure.AuditEvent) { ev.Actor = "someone-else" })
		code, out, errOut := run(t, "audit", "verify")
		if code != 1 || out != "" || !strings.Contains(errOut, "audit trail BROKEN: audit event 4: hash does not match its content") ||
			!strings.Contains(errOut, "verified up to block 0, 3 events") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
}
