package api_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
)

// canaries is an in-memory CanaryService with one dataset "profile" whose canary fails.
type canaries struct {
	mu   sync.Mutex
	runs []string // "dataset by actor"
}

func (f *canaries) RunCanaries(ctx context.Context, ds, actor string) ([]erasure.CanaryResult, error) {
	switch ds {
	case "", "profile":
	case "plain":
		return nil, erasure.Errorf(erasure.EINVALID, "dataset plain declares no canary")
	default:
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %q not found", ds)
	}
	f.mu.Lock()
	f.runs = append(f.runs, "profile by "+actor)
	f.mu.Unlock()
	now := time.Now().UTC()
	return []erasure.CanaryResult{{Dataset: "profile", Started: now, Finished: now, Stage: erasure.CanaryCheck,
		Reason: "the planted canary subject is still there after its erasure completed", Actor: actor}}, nil
}

func (f *canaries) Canaries(ctx context.Context) ([]erasure.CanaryResult, error) {
	return []erasure.CanaryResult{{Dataset: "profile"}}, nil
}

func (f *canaries) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.runs...)
}

func newCanaryEnv(t *testing.T) (*env, *canaries) {
	t.Helper()
	f := &canaries{}
	e := newEnv(t)
	for pattern, h := range api.CanaryRoutes(e.api, f) {
		e.api.Mount(pattern, h)
	}
	return e, f
}

func TestCanaryRoutes(t *testing.T) {
	t.Run("RunAll", func(t *testing.T) {
		e, f := newCanaryEnv(t)
		r := e.call("POST", "/v1/canaries/run", tokOperate, "")
		var body api.CanaryList
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil || len(body.Canaries) != 1 || body.Canaries[0].OK || body.Canaries[0].Stage != erasure.CanaryCheck {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if got := f.ran(); len(got) != 1 || got[0] != "profile by oncall" {
			t.Fatalf("runs %v", got)
		}
	})
	t.Run("RunOne", func(t *testing.T) {
		e, f := newCanaryEnv(t)
		if r := e.call("POST", "/v1/canaries/profile/run", tokOperate, ""); r.status != 200 || len(f.ran()) != 1 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("List", func(t *testing.T) {
		e, _ := newCanaryEnv(t)
		r := e.call("GET", "/v1/canaries", tokRead, "")
		var body api.CanaryList
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil || len(body.Canaries) != 1 || !body.Canaries[0].Started.IsZero() {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"RunNeedsOperate", "POST", "/v1/canaries/run", tokRead, 403, erasure.EFORBIDDEN},
		{"RunNoToken", "POST", "/v1/canaries/profile/run", "", 401, erasure.EUNAUTHORIZED},
		{"ListNeedsRead", "GET", "/v1/canaries", tokSubmit, 403, erasure.EFORBIDDEN},
		{"UnknownDataset", "POST", "/v1/canaries/nope/run", tokOperate, 404, erasure.ENOTFOUND},
		{"DatasetWithoutCanary", "POST", "/v1/canaries/plain/run", tokOperate, 400, erasure.EINVALID},
		{"BadDatasetName", "POST", "/v1/canaries/Pro%27file/run", tokOperate, 400, erasure.EINVALID},
		{"UnknownQuery", "POST", "/v1/canaries/run?dataset=profile", tokOperate, 400, erasure.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f := newCanaryEnv(t)
			r := e.call(tc.method, tc.path, tc.token, "")
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if got := f.ran(); len(got) != 0 {
				t.Fatalf("a refused call ran %v", got)
			}
		})
	}
}

func TestRetry_Force(t *testing.T) {
	e := newEnv(t)
	req := e.submit(`{"subject":{"user_id":"42"},"reason":"user_request"}`)
	e.svc.Finish(req.ID, erasure.TaskFailed, "503 from profile")
	path := "/v1/requests/" + req.ID + "/retry"
	for _, tc := range []struct{ name, body, code string }{
		{"NotABoolean", `{"force":"yes"}`, erasure.EINVALID},
		{"UnknownField", `{"forse":true}`, erasure.EINVALID},
		{"NothingTripped", `{"force":true}`, erasure.ECONFLICT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.call("POST", path, tokOperate, tc.body); r.errorCode() != tc.code {
				t.Fatalf("%d %s, want %s", r.status, r.body, tc.code)
			}
			if got, _ := e.svc.Request(context.Background(), req.ID); got.Tasks[0].State != erasure.TaskFailed {
				t.Fatalf("a refused retry re-opened the task: %+v", got.Tasks[0])
			}
		})
	}
	t.Run("ForceLiftsATrippedGuard", func(t *testing.T) {
		e.call("POST", path, tokOperate, "") // plain retry
		e.svc.TripGuard(req.ID)
		r := e.call("POST", path, tokOperate, `{"force":true}`)
		var got erasure.Request
		if r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.Tasks[0].Guard != erasure.GuardOverridden || got.Tasks[0].State != erasure.TaskPending {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}
