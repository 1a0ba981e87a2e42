package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"erasure"
	"erasure/api"
	"erasure/api/apitest"
	"erasure/client"
)

func newServer(t *testing.T) (*apitest.Service, string) {
	t.Helper()
	svc := apitest.New([]string{"user_id", "email"},
		erasure.DatasetInfo{Name: "profile-service", Owner: "profile-team", Connector: "http", Method: erasure.MethodRealtime},
		erasure.DatasetInfo{Name: "notifications", Owner: "messaging-team", Connector: "nats", Method: erasure.MethodAsync},
	)
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Tokens: []api.Token{
		{Name: "admin", Secret: "admin-secret", Roles: []string{"submit", "operate"}},
		{Name: "notif", Secret: "notif-secret", Roles: []string{"ack:notifications"}},
	}}).Handler())
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) string { return erasure.ErrorCode(err) }

func TestClient_Routes(t *testing.T) {
	svc, url := newServer(t)
	c := mustClient(t, url, "admin-secret")
	ctx := t.Context()
	sub := erasure.Submission{
		Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}, erasure.Identifier{Type: "email", Value: "a@example.com"}, erasure.Identifier{Type: "email", Value: "b@example.com"}),
		Reason:  "user_request", Deadline: time.Now().Add(time.Hour).Truncate(time.Second),
	}
	req, created, err := c.Submit(ctx, sub, "k1")
	if err != nil || !created || len(req.Tasks) != 2 || !req.Deadline.Equal(sub.Deadline) {
		t.Fatalf("submit: %+v created=%v err=%v", req, created, err)
	}
	t.Run("SubmitSendsEveryIdentifier", func(t *testing.T) {
		if len(req.SubjectHashes) != 3 {
			t.Fatalf("hashes %v", req.SubjectHashes)
		}
	})
	t.Run("SubmitAgainIsNotCreated", func(t *testing.T) {
		again, created, err := c.Submit(ctx, sub, "k1")
		if err != nil || created || again.ID != req.ID {
			t.Fatalf("again: %v %v %v", again.ID, created, err)
		}
	})
	t.Run("Request", func(t *testing.T) {
		got, err := c.Request(ctx, req.ID)
		if err != nil || got.ID != req.ID || got.Tasks[0].Dataset != "profile-service" {
			t.Fatalf("%+v %v", got, err)
		}
	})
	t.Run("RequestsPages", func(t *testing.T) {
		c.Submit(ctx, sub, "")
		p, err := c.Requests(ctx, erasure.RequestFilter{Limit: 1, Status: erasure.RequestPending})
		if err != nil || len(p.Requests) != 1 || p.Next == "" {
			t.Fatalf("page 1: %+v %v", p, err)
		}
		p2, err := c.Requests(ctx, erasure.RequestFilter{Limit: 1, Cursor: p.Next})
		if err != nil || len(p2.Requests) != 1 || p2.Requests[0].ID != req.ID || p2.Next != "" {
			t.Fatalf("page 2: %+v %v", p2, err)
		}
	})
	t.Run("AckWithScopedToken", func(t *testing.T) {
		notif := mustClient(t, url, "notif-secret")
		tk, err := notif.Ack(ctx, erasure.Ack{TaskID: req.Tasks[1].ID, Dispatch: apitest.DispatchOf(req.Tasks[1].ID), Status: "done", Removed: 2})
		if err != nil || tk.State != erasure.TaskDone || tk.Removed != 2 {
			t.Fatalf("%+v %v", tk, err)
		}
		_, err = notif.Ack(ctx, erasure.Ack{TaskID: req.Tasks[0].ID, Dispatch: apitest.DispatchOf(req.Tasks[0].ID), Status: "done"})
		if code(err) != erasure.ENOTFOUND {
			t.Fatalf("ack of another dataset: %v, want not found (as for a task that does not exist)", err)
		}
	})
	t.Run("RetryAndCancel", func(t *testing.T) {
		if _, err := c.Retry(ctx, req.ID); code(err) != erasure.ECONFLICT {
			t.Fatalf("retry without failure: %v", err)
		}
		svc.Finish(req.ID, erasure.TaskFailed, "boom")
		if r, err := c.Retry(ctx, req.ID); err != nil || r.Status == erasure.RequestFailed {
			t.Fatalf("retry: %v %v", r, err)
		}
		if r, err := c.Cancel(ctx, req.ID); err != nil || r.Status != erasure.RequestCancelled {
			t.Fatalf("cancel: %v %v", r, err)
		}
	})
	t.Run("Datasets", func(t *testing.T) {
		ds, err := c.Datasets(ctx)
		if err != nil || len(ds) != 2 {
			t.Fatalf("%v %v", ds, err)
		}
		d, err := c.Dataset(ctx, "notifications")
		if err != nil || d.Method != erasure.MethodAsync {
			t.Fatalf("%v %v", d, err)
		}
		if _, err := c.Dataset(ctx, "billing"); code(err) != erasure.ENOTFOUND {
			t.Fatalf("unknown dataset: %v", err)
		}
	})
	t.Run("AuditIteratesEveryPage", func(t *testing.T) {
		c.AuditPageSize = 2
		evs, err := c.Audit(ctx, erasure.AuditFilter{})
		all, _ := svc.Audit(ctx, erasure.AuditFilter{})
		if err != nil || len(evs) != len(all) || len(all) < 5 {
			t.Fatalf("got %d events of %d: %v", len(evs), len(all), err)
		}
		for i := range evs {
			if evs[i].Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: pages lost or repeated events", i+1, evs[i].Seq)
			}
		}
		if rep, err := c.VerifyAudit(ctx); err != nil || !rep.OK {
			t.Fatalf("audit trail: %+v %v", rep, err)
		}
		some, err := c.Audit(ctx, erasure.AuditFilter{RequestID: req.ID, After: 1, Limit: 3})
		if err != nil || len(some) != 3 || some[0].Seq <= 1 || some[0].RequestID != req.ID {
			t.Fatalf("filtered: %+v %v", some, err)
		}
	})
	t.Run("Do", func(t *testing.T) {
		var out map[string]string
		status, err := c.Do(ctx, http.MethodGet, "/healthz", nil, &out)
		if err != nil || status != 200 || out["status"] != "ok" {
			t.Fatalf("%d %v %v", status, out, err)
		}
	})
}

func TestClient_Errors(t *testing.T) {
	_, url := newServer(t)
	ctx := t.Context()
	t.Run("ServerCodeAndMessage", func(t *testing.T) {
		c := mustClient(t, url, "admin-secret")
		_, _, err := c.Submit(ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "phone", Value: "1"}), Reason: "user_request"}, "")
		var e *erasure.Error
		if !errors.As(err, &e) || e.Code != erasure.EINVALID || e.Message != "identifier type phone is not declared in the registry" {
			t.Fatalf("%#v", err)
		}
	})
	t.Run("BadToken", func(t *testing.T) {
		c := mustClient(t, url, "nope")
		if _, err := c.Datasets(ctx); code(err) != erasure.EUNAUTHORIZED {
			t.Fatalf("%v", err)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		c := mustClient(t, "http://127.0.0.1:1", "x")
		if _, err := c.Datasets(ctx); code(err) != erasure.EUNAVAILABLE {
			t.Fatalf("%v", err)
		}
	})
	t.Run("NonJSONErrorMapsByStatus", func(t *testing.T) {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		defer proxy.Close()
		c := mustClient(t, proxy.URL, "x")
		if _, err := c.Request(ctx, "r_1"); code(err) != erasure.EUNAVAILABLE {
			t.Fatalf("%v", err)
		}
	})
	t.Run("BadURL", func(t *testing.T) {
		for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
			if _, err := client.New(u, "x"); code(err) != erasure.EINVALID {
				t.Errorf("New(%q): %v", u, err)
			}
		}
	})
}

func TestClient_FromEnv(t *testing.T) {
	t.Setenv("ERASURE_URL", "")
	t.Setenv("ERASURE_TOKEN", "")
	c, err := client.FromEnv()
	if err != nil || c.URL() != client.DefaultURL {
		t.Fatalf("default: %v %v", c, err)
	}
	t.Setenv("ERASURE_URL", "https://erasure.internal:8443/")
	c, err = client.FromEnv()
	if err != nil || c.URL() != "https://erasure.internal:8443" {
		t.Fatalf("set: %v %v", c.URL(), err)
	}
}
