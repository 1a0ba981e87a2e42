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

// policies records the calls the policy routes make; bad input must make none.
type policies struct {
	calls []string
}

func (p *policies) AddHold(ctx context.Context, s erasure.HoldSpec, actor string) (*erasure.Hold, error) {
	p.calls = append(p.calls, "AddHold")
	return &erasure.Hold{ID: "h_00000000000000000000000001", All: s.All, Datasets: s.Datasets, Reason: s.Reason, CreatedBy: actor}, nil
}
func (p *policies) Holds(context.Context, erasure.HoldFilter) ([]erasure.Hold, error) {
	p.calls = append(p.calls, "Holds")
	return nil, nil
}
func (p *policies) Hold(context.Context, string) (*erasure.Hold, error) {
	return nil, erasure.Errorf(erasure.ENOTFOUND, "no")
}
func (p *policies) ReleaseHold(context.Context, string, string) (*erasure.Hold, error) {
	p.calls = append(p.calls, "ReleaseHold")
	return &erasure.Hold{}, nil
}
func (p *policies) CheckSuppressed(ctx context.Context, ids []erasure.Identifier) ([]bool, error) {
	p.calls = append(p.calls, "CheckSuppressed")
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = id.Value == "gone@example.com"
	}
	return out, nil
}
func (p *policies) ExportSuppressions(ctx context.Context, typ string, fn func(string) error) error {
	p.calls = append(p.calls, "Export")
	for _, h := range []string{"email:00", "email:01"} {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}
func (p *policies) Unsuppress(ctx context.Context, ids []erasure.Identifier, reason, actor string) ([]bool, error) {
	p.calls = append(p.calls, "Unsuppress")
	return make([]bool, len(ids)), nil
}
func (p *policies) RunRetention(ctx context.Context, ds string, dry bool, actor string) (*erasure.RetentionRun, error) {
	p.calls = append(p.calls, "RunRetention")
	return &erasure.RetentionRun{Dataset: ds, DryRun: dry}, nil
}
func (p *policies) RetentionRuns(context.Context, string, int) ([]erasure.RetentionRun, error) {
	return nil, nil
}
func (p *policies) StartReplay(ctx context.Context, ds string, since time.Time, dry bool, actor string) (*erasure.Replay, error) {
	p.calls = append(p.calls, "StartReplay")
	return &erasure.Replay{Dataset: ds, Since: since, DryRun: dry, State: erasure.ReplayRunning}, nil
}
func (p *policies) Replays(context.Context, string) ([]erasure.Replay, error) { return nil, nil }

func newPolicyEnv(t *testing.T) (*env, *policies) {
	e := newEnv(t)
	p := &policies{}
	for pattern, h := range api.PolicyRoutes(e.api, p) {
		e.api.Mount(pattern, h)
	}
	return e, p
}

func TestPolicyRoutes(t *testing.T) {
	t.Run("Holds", func(t *testing.T) {
		e, p := newPolicyEnv(t)
		r := e.call("POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","datasets":"all","reason":"case 1"}`)
		var h erasure.Hold
		json.Unmarshal(r.body, &h)
		if r.status != http.StatusCreated || !h.All || h.CreatedBy != "oncall" || r.header.Get("Location") != "/v1/holds/"+h.ID {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := e.call("POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","datasets":["a","b"],"reason":"case 1"}`); r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := e.call("DELETE", "/v1/holds/h_1", tokRead, ""); r.status != http.StatusForbidden {
			t.Fatalf("release with read: %d", r.status)
		}
		if len(p.calls) != 2 {
			t.Fatalf("calls %v", p.calls)
		}
	})
	t.Run("BadInputChangesNothing", func(t *testing.T) {
		e, p := newPolicyEnv(t)
		many := `"` + strings.Repeat(`email:a@example.com","`, 1000) + `email:b@example.com"`
		for _, tc := range []struct {
			method, path, token, body string
			status                    int
		}{
			{"POST", "/v1/holds", tokOperate, `{"identifier":"42","datasets":"all","reason":"x"}`, 400},
			{"POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","datasets":"some","reason":"x"}`, 400},
			{"POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","datasets":[1],"reason":"x"}`, 400},
			{"POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","reason":"x"}`, 400},
			{"POST", "/v1/holds", tokOperate, `{"identifier":"user_id:42","datasets":"all","reason":"x","extra":1}`, 400},
			{"POST", "/v1/holds", tokSubmit, `{"identifier":"user_id:42","datasets":"all","reason":"x"}`, 403},
			{"POST", "/v1/suppressions:check", tokRead, `{"identifiers":["email"]}`, 400},
			{"POST", "/v1/suppressions:check", tokRead, `{"identifiers":["email:x"],"reason":"y"}`, 400},
			{"POST", "/v1/suppressions:check", tokRead, `{"identifiers":[` + many + `]}`, 413},
			{"POST", "/v1/suppressions:check", tokSubmit, `{"identifiers":["email:x"]}`, 403},
			{"POST", "/v1/suppressions:unsuppress", tokRead, `{"identifiers":["email:x"],"reason":"y"}`, 403},
			{"GET", "/v1/suppressions?format=csv", tokOperate, ``, 400},
			{"GET", "/v1/suppressions?format=bloom&fp_rate=2", tokOperate, ``, 400},
			{"POST", "/v1/replays/profile-service", tokOperate, `{"since":"yesterday"}`, 400},
			{"POST", "/v1/replays/Bad%20Name", tokOperate, `{"since":"2026-01-01T00:00:00Z"}`, 400},
			{"POST", "/v1/retention/profile-service", tokOperate, `{"dry_run":"yes"}`, 400},
			{"POST", "/v1/retention/profile-service?force=1", tokOperate, `{}`, 400},
		} {
			if r := e.call(tc.method, tc.path, tc.token, tc.body); r.status != tc.status {
				t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body[:min(len(tc.body), 60)], r.status, r.body, tc.status)
			}
		}
		if len(p.calls) != 0 {
			t.Fatalf("bad input reached the service: %v", p.calls)
		}
	})
	t.Run("CheckAnswersWithoutValues", func(t *testing.T) {
		e, _ := newPolicyEnv(t)
		r := e.call("POST", "/v1/suppressions:check", tokRead, `{"identifiers":["email:gone@example.com","email:here@example.com"]}`)
		if r.status != 200 || string(r.body) != `{"results":[{"type":"email","suppressed":true},{"type":"email","suppressed":false}]}`+"\n" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("ExportHashesAndBloom", func(t *testing.T) {
		e, _ := newPolicyEnv(t)
		if r := e.call("GET", "/v1/suppressions", tokOperate, ""); r.status != 200 || string(r.body) != "email:00\nemail:01\n" {
			t.Fatalf("%d %q", r.status, r.body)
		}
		r := e.call("GET", "/v1/suppressions?format=bloom&fp_rate=0.01", tokOperate, "")
		var f erasure.SuppressionFilter
		if err := json.Unmarshal(r.body, &f); err != nil || f.Count != 2 || !f.MayHold("email:00") || !f.MayHold("email:01") {
			t.Fatalf("%d %+v %v", r.status, f, err)
		}
	})
	t.Run("RetentionAndReplay", func(t *testing.T) {
		e, p := newPolicyEnv(t)
		if r := e.call("POST", "/v1/retention/profile-service", tokOperate, `{"dry_run":true}`); r.status != 200 || !strings.Contains(string(r.body), `"dry_run":true`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := e.call("POST", "/v1/retention/profile-service", tokOperate, ``); r.status != 200 {
			t.Fatalf("no body: %d %s", r.status, r.body)
		}
		if r := e.call("POST", "/v1/replays/profile-service", tokOperate, `{"since":"2026-01-01T00:00:00Z"}`); r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if len(p.calls) != 3 {
			t.Fatalf("calls %v", p.calls)
		}
	})
}

func TestSubmission_GraceAndSuppress(t *testing.T) {
	for _, tc := range []struct {
		body  string
		grace *time.Duration
		no    bool
		code  string
	}{
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"72h"}`, ptr(72 * time.Hour), false, ""},
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"3d"}`, ptr(72 * time.Hour), false, ""},
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"0s"}`, ptr(time.Duration(0)), false, ""},
		{`{"subject":{"user_id":"1"},"reason":"r","suppress":false}`, nil, true, ""},
		{`{"subject":{"user_id":"1"},"reason":"r","suppress":true}`, nil, false, ""},
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"forever"}`, nil, false, erasure.EINVALID},
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"-1h"}`, nil, false, erasure.EINVALID},
		{`{"subject":{"user_id":"1"},"reason":"r","grace":"100d"}`, nil, false, erasure.EINVALID},
	} {
		sub, err := api.DecodeSubmission(strings.NewReader(tc.body), 4096)
		if erasure.ErrorCode(err) != tc.code {
			t.Errorf("%s: err %v", tc.body, err)
			continue
		}
		if err != nil {
			continue
		}
		if (sub.Grace == nil) != (tc.grace == nil) || sub.Grace != nil && *sub.Grace != *tc.grace || sub.NoSuppress != tc.no {
			t.Errorf("%s: grace %v no-suppress %v", tc.body, sub.Grace, sub.NoSuppress)
		}
	}
}

func ptr[T any](v T) *T { return &v }
