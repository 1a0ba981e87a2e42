package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/api"
)

// sweeps is an in-memory SweepService over one offline dataset "events" with queued tasks;
// it records every call that would change something.
type sweeps struct {
	mu      sync.Mutex
	queued  int
	list    []erasure.Sweep
	changes []string
}

func (f *sweeps) known(ds string) error {
	if ds != "events" {
		return erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not registered", ds)
	}
	return nil
}

func (f *sweeps) RunSweep(ctx context.Context, ds, actor string) (*erasure.Sweep, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sw := &erasure.Sweep{ID: "s_run", Dataset: ds, State: erasure.SweepRunning, Mode: "internal", Actor: actor, Tasks: f.queued, Started: time.Now()}
	if f.queued > 0 {
		f.changes = append(f.changes, "run by "+actor)
		f.list = append([]erasure.Sweep{*sw}, f.list...)
		f.queued = 0
	}
	return sw, nil
}

func (f *sweeps) SweepStatus(ctx context.Context, ds string, limit int) (*erasure.SweepStatus, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &erasure.SweepStatus{Dataset: ds, Sweeps: f.list[:min(limit, len(f.list))]}
	if len(f.list) > 0 && f.list[0].State == erasure.SweepRunning {
		st.Running, st.Progress = &f.list[0], &erasure.SweepProgress{PartitionsDone: 1, PartitionsTotal: 4}
	}
	return st, nil
}

func (f *sweeps) BuildIndex(ctx context.Context, ds, actor string) (*erasure.IndexReport, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.changes = append(f.changes, "index by "+actor)
	f.mu.Unlock()
	return &erasure.IndexReport{Partitions: 4, Built: 4}, nil
}

func (f *sweeps) StartExport(ctx context.Context, ds, format, actor string) (*erasure.Sweep, func(io.Writer) (int, error), error) {
	if err := f.known(ds); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sw := &erasure.Sweep{ID: "s_exp", Dataset: ds, State: erasure.SweepExported, Mode: "external", Tasks: f.queued}
	if f.queued > 0 {
		f.changes = append(f.changes, "export "+format+" by "+actor)
		f.list = append([]erasure.Sweep{*sw}, f.list...)
		f.queued = 0
	}
	return sw, func(w io.Writer) (int, error) {
		_, err := io.WriteString(w, `{"task_id":1,"identifier":"user_id","value":"42"}`+"\n")
		return 1, err
	}, nil
}

func (f *sweeps) AckSweep(ctx context.Context, ds, id string, ack erasure.SweepAck, actor string) (*erasure.Sweep, error) {
	if err := f.known(ds); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.list {
		if f.list[i].ID == id {
			if f.list[i].State != erasure.SweepExported {
				return nil, erasure.Errorf(erasure.ECONFLICT, "sweep %s is %s", id, f.list[i].State)
			}
			f.list[i].State, f.list[i].Removed = erasure.SweepCommitted, ack.Removed
			if ack.Status == "failed" {
				f.list[i].State, f.list[i].Error = erasure.SweepFailed, ack.Error
			}
			f.changes = append(f.changes, "ack "+string(ack.Status)+" by "+actor)
			return &f.list[i], nil
		}
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
}

func (f *sweeps) changed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.changes...)
}

const tokAckEvents = "s3cret-ack-events"

func newSweepEnv(t *testing.T, queued int) (*env, *sweeps) {
	t.Helper()
	f := &sweeps{queued: queued}
	e := newEnv(t, func(c *api.Config) {
		c.Tokens = append(append(c.Tokens[:0:0], c.Tokens...), apiToken("events-job", tokAckEvents, "ack:events"))
	})
	for pattern, h := range api.SweepRoutes(e.api, f) {
		e.api.Mount(pattern, h)
	}
	return e, f
}

func TestSweepRoutes_Roles(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"RunNeedsOperate", "POST", "/v1/sweeps/events", tokRead, "", 403},
		{"RunNoToken", "POST", "/v1/sweeps/events", "", "", 401},
		{"RunBadToken", "POST", "/v1/sweeps/events", "nope", "", 401},
		{"StatusNeedsRead", "GET", "/v1/sweeps/events", tokSubmit, "", 403},
		{"IndexNeedsOperate", "POST", "/v1/sweeps/events/index", tokRead, "", 403},
		{"ExportNeedsOperate", "POST", "/v1/sweeps/events/export", tokAckEvents, "", 403},
		{"AckOtherDataset", "POST", "/v1/sweeps/events/s_exp/ack", tokAckNotif, `{"status":"done"}`, 403},
		{"AckReadOnly", "POST", "/v1/sweeps/events/s_exp/ack", tokRead, `{"status":"done"}`, 403},
		{"AckNoToken", "POST", "/v1/sweeps/events/s_exp/ack", "", `{"status":"done"}`, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f := newSweepEnv(t, 2)
			r := e.call(tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if got := f.changed(); len(got) > 0 {
				t.Fatalf("refused call changed %v", got)
			}
		})
	}
}

func TestSweepRoutes_BadInputChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body, code string
	}{
		{"UnknownDataset", "POST", "/v1/sweeps/nope", "", erasure.ENOTFOUND},
		{"BadDatasetName", "POST", "/v1/sweeps/Events%27%3B%20DROP", "", erasure.EINVALID},
		{"UnknownQuery", "POST", "/v1/sweeps/events?force=1", "", erasure.EINVALID},
		{"BadLimit", "GET", "/v1/sweeps/events?limit=0", "", erasure.EINVALID},
		{"BadFormat", "POST", "/v1/sweeps/events/export?format=csv", "", erasure.EINVALID},
		{"FormatTwice", "POST", "/v1/sweeps/events/export?format=jsonl&format=parquet", "", erasure.EINVALID},
		{"AckBadStatus", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":"ok"}`, erasure.EINVALID},
		{"AckUnknownField", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":"done","rows":3}`, erasure.EINVALID},
		{"AckNegative", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":"done","removed":-1}`, erasure.EINVALID},
		{"AckMalformed", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":`, erasure.EINVALID},
		{"AckErrorWithDone", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":"done","error":"x"}`, erasure.EINVALID},
		{"AckLongError", "POST", "/v1/sweeps/events/s_exp/ack", `{"status":"failed","error":"` + strings.Repeat("x", 2000) + `"}`, erasure.EINVALID},
		{"AckBadID", "POST", "/v1/sweeps/events/s%20exp/ack", `{"status":"done"}`, erasure.EINVALID},
		{"AckUnknownSweep", "POST", "/v1/sweeps/events/s_nope/ack", `{"status":"done"}`, erasure.ENOTFOUND},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f := newSweepEnv(t, 2)
			r := e.call(tc.method, tc.path, tokOperate, tc.body)
			if r.errorCode() != tc.code {
				t.Fatalf("%d %s, want code %s", r.status, r.body, tc.code)
			}
			if got := f.changed(); len(got) > 0 {
				t.Fatalf("bad input changed %v", got)
			}
		})
	}
}

func TestSweepRoutes_RunExportAck(t *testing.T) {
	e, f := newSweepEnv(t, 2)
	r := e.call("POST", "/v1/sweeps/events", tokOperate, "")
	var sw erasure.Sweep
	json.Unmarshal(r.body, &sw)
	if r.status != http.StatusAccepted || sw.ID != "s_run" || sw.Tasks != 2 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	r = e.call("POST", "/v1/sweeps/events", tokOperate, "")
	if json.Unmarshal(r.body, &sw); r.status != http.StatusOK || sw.Tasks != 0 {
		t.Fatalf("run with nothing queued: %d %s", r.status, r.body)
	}
	r = e.call("GET", "/v1/sweeps/events?limit=5", tokRead, "")
	var st erasure.SweepStatus
	if err := json.Unmarshal(r.body, &st); err != nil || r.status != 200 || st.Running == nil || st.Running.ID != "s_run" || st.Progress == nil || len(st.Sweeps) != 1 {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if r = e.call("POST", "/v1/sweeps/events/index", tokOperate, ""); r.status != 200 || !strings.Contains(string(r.body), `"built":4`) {
		t.Fatalf("index: %d %s", r.status, r.body)
	}
	// Nothing queued: 204 and no sweep.
	if r = e.call("POST", "/v1/sweeps/events/export", tokOperate, ""); r.status != http.StatusNoContent || r.header.Get(api.HeaderSweepID) != "" {
		t.Fatalf("empty export: %d %v", r.status, r.header)
	}
	f.mu.Lock()
	f.queued = 1
	f.mu.Unlock()
	r = e.call("POST", "/v1/sweeps/events/export?format=jsonl", tokOperate, "")
	if r.status != 200 || r.header.Get(api.HeaderSweepID) != "s_exp" || r.header.Get("Content-Type") != "application/x-ndjson" || !strings.Contains(string(r.body), `"value":"42"`) {
		t.Fatalf("export: %d %v %s", r.status, r.header, r.body)
	}
	r = e.call("POST", "/v1/sweeps/events/s_exp/ack", tokAckEvents, `{"status":"done","removed":7}`)
	if json.Unmarshal(r.body, &sw); r.status != 200 || sw.State != erasure.SweepCommitted || sw.Removed != 7 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	if r = e.call("POST", "/v1/sweeps/events/s_exp/ack", tokOperate, `{"status":"done"}`); r.status != http.StatusConflict {
		t.Fatalf("second ack: %d %s", r.status, r.body)
	}
	want := []string{"run by oncall", "index by oncall", "export jsonl by oncall", "ack done by events-job"}
	if got := f.changed(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

func apiToken(name, secret string, roles ...string) api.Token {
	return api.Token{Name: name, Secret: secret, Roles: roles}
}
