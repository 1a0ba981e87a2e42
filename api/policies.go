package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"erasure"
)

// PolicyService is what the policy routes act on (pipeline.Policies in the server).
type PolicyService interface {
	erasure.HoldService
	erasure.SuppressionService
	erasure.RetentionService
	erasure.ReplayService
}

// RoleCheck may ask whether identifiers are suppressed (ingest pipelines); read and operate
// may too.
const RoleCheck = "check"

// PolicyRoutes returns the routes of the policies around erasure over p, by ServeMux pattern,
// for Server.Mount:
//
//	POST   /v1/holds                     operate  {"identifier":"user_id:42","datasets":["a","b"]|"all","reason":"…"}: 201 the hold
//	GET    /v1/holds                     read     ?all=true (released ones too): {"holds":[…]}
//	GET    /v1/holds/{id}                read
//	DELETE /v1/holds/{id}                operate  release: 200 the released hold, 409 released already
//	POST   /v1/suppressions:check        check    {"identifiers":["email:a@example.com",…]} (at most 1000):
//	                                              {"results":[{"type":"email","suppressed":true},…]} in order
//	POST   /v1/suppressions:unsuppress   operate  {"identifiers":[…],"reason":"…"}: {"results":[{"type":…,"removed":true},…]}
//	GET    /v1/suppressions              operate  ?format=hashes|bloom&type=&fp_rate=: the list as text lines, or a Bloom
//	                                              filter (erasure.SuppressionFilter) as JSON
//	POST   /v1/retention/{dataset}       operate  {"dry_run":true}: 200 the run (a refused or failed run is its error)
//	GET    /v1/retention/{dataset}       read     ?limit= (1..500, default 20): {"runs":[…]}
//	POST   /v1/replays/{dataset}         operate  {"since":"2026-01-31T00:00:00Z","dry_run":false}: 202 the replay, running
//	GET    /v1/replays/{dataset}         read     {"replays":[…]} newest first, with the running one's progress
//
// Identifiers are written type:value and answered without their values.
func PolicyRoutes(s *Server, p PolicyService) map[string]http.Handler {
	h := &policyHandlers{s: s, p: p}
	return map[string]http.Handler{
		"POST /v1/holds":                   http.HandlerFunc(h.addHold),
		"GET /v1/holds":                    http.HandlerFunc(h.holds),
		"GET /v1/holds/{id}":               http.HandlerFunc(h.hold),
		"DELETE /v1/holds/{id}":            http.HandlerFunc(h.releaseHold),
		"POST /v1/suppressions:check":      http.HandlerFunc(h.check),
		"POST /v1/suppressions:unsuppress": http.HandlerFunc(h.unsuppress),
		"GET /v1/suppressions":             http.HandlerFunc(h.export),
		"POST /v1/retention/{dataset}":     http.HandlerFunc(h.runRetention),
		"GET /v1/retention/{dataset}":      http.HandlerFunc(h.retentionRuns),
		"POST /v1/replays/{dataset}":       http.HandlerFunc(h.startReplay),
		"GET /v1/replays/{dataset}":        http.HandlerFunc(h.replays),
	}
}

type policyHandlers struct {
	s *Server
	p PolicyService
}

// HoldBody is the JSON body of POST /v1/holds. Datasets is a list of dataset names or the
// string "all".
type HoldBody struct {
	Identifier string          `json:"identifier"`
	Datasets   json.RawMessage `json:"datasets"`
	Reason     string          `json:"reason"`
}

// HoldList is the body of GET /v1/holds.
type HoldList struct {
	Holds []erasure.Hold `json:"holds"`
}

func (h *policyHandlers) addHold(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	if err == nil {
		_, err = query(r)
	}
	var body HoldBody
	if err == nil {
		err = DecodeJSON(r, h.s.limit, &body)
	}
	var spec erasure.HoldSpec
	if err == nil {
		spec.Reason = body.Reason
		spec.Identifier, err = erasure.SplitIdentifier(body.Identifier)
	}
	if err == nil {
		var all string
		switch {
		case len(body.Datasets) == 0:
			err = erasure.Errorf(erasure.EINVALID, `datasets is required: a list of dataset names, or "all"`)
		case json.Unmarshal(body.Datasets, &all) == nil:
			if all != "all" {
				err = erasure.Errorf(erasure.EINVALID, `datasets must be a list of dataset names or "all"`)
			}
			spec.All = true
		case json.Unmarshal(body.Datasets, &spec.Datasets) != nil:
			err = erasure.Errorf(erasure.EINVALID, `datasets must be a list of dataset names or "all"`)
		}
	}
	var hold *erasure.Hold
	if err == nil {
		hold, err = h.p.AddHold(r.Context(), spec, actor)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/holds/"+hold.ID)
	WriteJSON(w, http.StatusCreated, hold)
}

func (h *policyHandlers) holds(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "all")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	var f erasure.HoldFilter
	if v := q.Get("all"); v != "" {
		if f.All, err = strconv.ParseBool(v); err != nil {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "all must be true or false"))
			return
		}
	}
	hs, err := h.p.Holds(r.Context(), f)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if hs == nil {
		hs = []erasure.Hold{}
	}
	WriteJSON(w, http.StatusOK, HoldList{Holds: hs})
}

func (h *policyHandlers) hold(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	hold, err := h.p.Hold(r.Context(), r.PathValue("id"))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, hold)
}

func (h *policyHandlers) releaseHold(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	hold, err := h.p.ReleaseHold(r.Context(), r.PathValue("id"), actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, hold)
}

// IdentifiersBody is the JSON body of the suppression calls: identifiers written type:value,
// and for unsuppress a reason.
type IdentifiersBody struct {
	Identifiers []string `json:"identifiers"`
	Reason      string   `json:"reason,omitempty"`
}

// SuppressionResult is one identifier's answer, in the order asked, without its value.
type SuppressionResult struct {
	Type       string `json:"type"`
	Suppressed *bool  `json:"suppressed,omitempty"`
	Removed    *bool  `json:"removed,omitempty"`
}

// SuppressionResults is the body of the answers of check and unsuppress.
type SuppressionResults struct {
	Results []SuppressionResult `json:"results"`
}

func (h *policyHandlers) identifiers(r *http.Request, role string, reason bool) (string, []erasure.Identifier, string, error) {
	actor, err := h.s.Authorize(r, role)
	if erasure.ErrorCode(err) == erasure.EFORBIDDEN && role == RoleCheck {
		actor, err = h.s.Authorize(r, RoleRead)
		if erasure.ErrorCode(err) == erasure.EFORBIDDEN {
			err = erasure.Errorf(erasure.EFORBIDDEN, "token %q lacks the check (or read) role", actor)
		}
	}
	if err != nil {
		return "", nil, "", err
	}
	if _, err := query(r); err != nil {
		return "", nil, "", err
	}
	var body IdentifiersBody
	if err := DecodeJSON(r, h.s.limit, &body); err != nil {
		return "", nil, "", err
	}
	if body.Reason != "" && !reason {
		return "", nil, "", erasure.Errorf(erasure.EINVALID, "reason is only for unsuppress")
	}
	if len(body.Identifiers) > erasure.MaxSuppressionCheck {
		return "", nil, "", erasure.Errorf(erasure.ETOOLARGE, "at most %d identifiers per call", erasure.MaxSuppressionCheck)
	}
	ids := make([]erasure.Identifier, len(body.Identifiers))
	for i, s := range body.Identifiers {
		id, err := erasure.SplitIdentifier(s)
		if err != nil {
			return "", nil, "", erasure.Errorf(erasure.EINVALID, "identifiers[%d]: %s", i, erasure.ErrorMessage(err))
		}
		ids[i] = id
	}
	return actor, ids, body.Reason, nil
}

func (h *policyHandlers) check(w http.ResponseWriter, r *http.Request) {
	_, ids, _, err := h.identifiers(r, RoleCheck, false)
	var got []bool
	if err == nil {
		got, err = h.p.CheckSuppressed(r.Context(), ids)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	out := SuppressionResults{Results: make([]SuppressionResult, len(ids))}
	for i := range ids {
		out.Results[i] = SuppressionResult{Type: ids[i].Type, Suppressed: &got[i]}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (h *policyHandlers) unsuppress(w http.ResponseWriter, r *http.Request) {
	actor, ids, reason, err := h.identifiers(r, RoleOperate, true)
	var got []bool
	if err == nil {
		got, err = h.p.Unsuppress(r.Context(), ids, reason, actor)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	out := SuppressionResults{Results: make([]SuppressionResult, len(ids))}
	for i := range ids {
		out.Results[i] = SuppressionResult{Type: ids[i].Type, Removed: &got[i]}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (h *policyHandlers) export(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleOperate); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "format", "type", "fp_rate")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	typ, format := q.Get("type"), q.Get("format")
	if format == "" {
		format = "hashes"
	}
	ctx := r.Context()
	switch format {
	case "hashes":
		// Check the type before the first byte is written.
		if err := h.p.ExportSuppressions(ctx, typ, func(string) error { return errStopExport }); err != nil && err != errStopExport {
			WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		bw := bufio.NewWriterSize(w, 64<<10)
		if err := h.p.ExportSuppressions(ctx, typ, func(hash string) error {
			_, err := bw.WriteString(hash + "\n")
			return err
		}); err != nil {
			h.s.log.Warn("suppression export cut short", "err", err)
			return
		}
		bw.Flush()
	case "bloom":
		p := 0.001
		if v := q.Get("fp_rate"); v != "" {
			if p, err = strconv.ParseFloat(v, 64); err != nil || !(p > 0 && p < 0.5) {
				WriteError(w, r, erasure.Errorf(erasure.EINVALID, "fp_rate must be a number between 0 and 0.5, such as 0.001"))
				return
			}
		}
		f, err := h.bloom(ctx, typ, p)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, f)
	default:
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "format %q is not one of hashes, bloom", truncate(format, 32)))
	}
}

var errStopExport = erasure.Errorf(erasure.ECONFLICT, "stop")

// bloom builds the filter in two passes over the list: one to size it, one to fill it.
func (h *policyHandlers) bloom(ctx context.Context, typ string, p float64) (*erasure.SuppressionFilter, error) {
	var n int64
	if err := h.p.ExportSuppressions(ctx, typ, func(string) error { n++; return nil }); err != nil {
		return nil, err
	}
	f := erasure.NewSuppressionFilter(typ, n, p)
	err := h.p.ExportSuppressions(ctx, typ, func(hash string) error { f.Add(hash); return nil })
	return f, err
}

// RetentionBody is the JSON body of POST /v1/retention/{dataset}.
type RetentionBody struct {
	DryRun bool `json:"dry_run"`
}

// RetentionRuns is the body of GET /v1/retention/{dataset}.
type RetentionRuns struct {
	Runs []erasure.RetentionRun `json:"runs"`
}

func (h *policyHandlers) runRetention(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	var ds string
	if err == nil {
		ds, err = pathDataset(r)
	}
	if err == nil {
		_, err = query(r)
	}
	var body RetentionBody
	if err == nil && r.ContentLength != 0 {
		err = DecodeJSON(r, h.s.limit, &body)
	}
	var run *erasure.RetentionRun
	if err == nil {
		run, err = h.p.RunRetention(r.Context(), ds, body.DryRun, actor)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, run)
}

func (h *policyHandlers) retentionRuns(w http.ResponseWriter, r *http.Request) {
	_, err := h.s.Authorize(r, RoleRead)
	var ds string
	if err == nil {
		ds, err = pathDataset(r)
	}
	var limit int64
	if err == nil {
		q, qerr := query(r, "limit")
		if err = qerr; err == nil {
			limit, err = intParam(q, "limit", 20, 1, 500)
		}
	}
	var runs []erasure.RetentionRun
	if err == nil {
		runs, err = h.p.RetentionRuns(r.Context(), ds, int(limit))
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if runs == nil {
		runs = []erasure.RetentionRun{}
	}
	WriteJSON(w, http.StatusOK, RetentionRuns{Runs: runs})
}

// ReplayBody is the JSON body of POST /v1/replays/{dataset}: since is when the backup the
// dataset was restored from was taken (RFC 3339).
type ReplayBody struct {
	Since  string `json:"since"`
	DryRun bool   `json:"dry_run"`
}

// ReplayList is the body of GET /v1/replays/{dataset}.
type ReplayList struct {
	Replays []erasure.Replay `json:"replays"`
}

func (h *policyHandlers) startReplay(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	var ds string
	if err == nil {
		ds, err = pathDataset(r)
	}
	if err == nil {
		_, err = query(r)
	}
	var body ReplayBody
	if err == nil {
		err = DecodeJSON(r, h.s.limit, &body)
	}
	var since time.Time
	if err == nil {
		if since, err = time.Parse(time.RFC3339Nano, body.Since); err != nil {
			err = erasure.Errorf(erasure.EINVALID, "since %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z", truncate(body.Since, 64))
		}
	}
	var rp *erasure.Replay
	if err == nil {
		rp, err = h.p.StartReplay(r.Context(), ds, since, body.DryRun, actor)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, rp)
}

func (h *policyHandlers) replays(w http.ResponseWriter, r *http.Request) {
	_, err := h.s.Authorize(r, RoleRead)
	var ds string
	if err == nil {
		ds, err = pathDataset(r)
	}
	if err == nil {
		_, err = query(r)
	}
	var rs []erasure.Replay
	if err == nil {
		rs, err = h.p.Replays(r.Context(), ds)
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if rs == nil {
		rs = []erasure.Replay{}
	}
	WriteJSON(w, http.StatusOK, ReplayList{Replays: rs})
}
