package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"erasure"
	"erasure/records"
)

// Body size limits of the record routes (the rest of the API has Config.MaxBodyBytes).
const (
	MaxRecordBody      = 1 << 20  // PUT, archive
	MaxRecordBatchBody = 16 << 20 // :batch, restore
	MaxReconcileBody   = 64 << 20 // reconcile carries the source's whole id list
)

// RecordsHandler serves a record store under /v1/records/:
//
//	GET    /v1/records/{source}/{id}          read     200 record · 410 tombstone · 404 never seen
//	PUT    /v1/records/{source}/{id}          write    {"version":N,"payload":{…}} or {"deleted":true,"reason":"…"}
//	DELETE /v1/records/{source}/{id}          write    ?reason=…&mode=purge&version=N
//	POST   /v1/records/{source}:batch         write    {"writes":[{"id":…,"version":…,"payload":…},…]}
//	GET    /v1/records/{source}:export        read     NDJSON of a partition's records, by id range
//	GET    /v1/records/{source}:segments      read     record count and id boundaries for parallel export
//	GET    /v1/records/:sources               read     {"sources":[…]}
//	POST   /v1/records/{source}/archive       operate  {"deleted_before":"2017-01-01","dry_run":true,"force":false}
//	POST   /v1/records/{source}/restore       operate  {"ids":[…]} or {"deleted_after":"…"}
//	POST   /v1/records/{source}/reconcile     operate  {"present":[…],"control":[…]}
//	POST   /v1/records/{source}:verify        operate  verify one source; /v1/records/:verify for all
//
// authorize returns the actor for a request holding role, or an *erasure.Error with code
// EUNAUTHORIZED or EFORBIDDEN: Server.Authorize when the routes are mounted on a Server (cmd/
// erasure), another one when they are served alone. Errors are the API's: WriteError's JSON
// and statuses, bodies decoded by DecodeJSON. A tombstone answers 410 with its deletion time,
// reason and version.
//
// A write with a payload over a record that an erasure tombstoned or purged is refused (409)
// unless it says "force": true, which needs the operate role too and is audited.
func RecordsHandler(s records.Service, authorize func(r *http.Request, role string) (string, error), opts ...RecordsOption) http.Handler {
	h := &recordsHandler{s: s, auth: authorize}
	for _, o := range opts {
		o(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/records/{source}/{id}", h.get)
	mux.HandleFunc("PUT /v1/records/{source}/{id}", h.put)
	mux.HandleFunc("DELETE /v1/records/{source}/{id}", h.delete)
	mux.HandleFunc("POST /v1/records/{source}/archive", h.archive)
	mux.HandleFunc("POST /v1/records/{source}/restore", h.restore)
	mux.HandleFunc("POST /v1/records/{source}/reconcile", h.reconcile)
	mux.HandleFunc("POST /v1/records/{target}", h.postTarget)
	mux.HandleFunc("GET /v1/records/{target}", h.getTarget)
	mux.HandleFunc("/v1/records/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, erasure.Errorf(erasure.ENOTFOUND, "no such records endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type recordsHandler struct {
	s    records.Service
	auth func(r *http.Request, role string) (string, error)
	// maxBody, when set, caps every route's body limit (the server's max_body_bytes).
	maxBody int64
}

// RecordsOption changes a RecordsHandler.
type RecordsOption func(*recordsHandler)

// WithMaxBodyBytes caps the body of every record route at n bytes (the server's
// max_body_bytes): a route's own limit (MaxRecordBody, MaxRecordBatchBody, MaxReconcileBody)
// applies only below it.
func WithMaxBodyBytes(n int64) RecordsOption { return func(h *recordsHandler) { h.maxBody = n } }

// limit is the body limit of a route whose own limit is routeMax.
func (h *recordsHandler) limit(routeMax int64) int64 {
	if h.maxBody > 0 && h.maxBody < routeMax {
		return h.maxBody
	}
	return routeMax
}

// authorized checks the role and returns the actor, or answers the error and returns false.
func (h *recordsHandler) authorized(w http.ResponseWriter, r *http.Request, role string) (string, bool) {
	actor, err := h.auth(r, role)
	if err != nil {
		switch erasure.ErrorCode(err) {
		case erasure.EUNAUTHORIZED, erasure.EFORBIDDEN:
			WriteError(w, r, err)
		default:
			WriteError(w, r, erasure.Errorf(erasure.EUNAUTHORIZED, "not authorized"))
		}
		return "", false
	}
	return actor, true
}

func (h *recordsHandler) get(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorized(w, r, RoleRead); !ok {
		return
	}
	rec, err := h.s.Get(r.Context(), r.PathValue("source"), r.PathValue("id"))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if rec.Deleted {
		writeGone(w, rec) // {"deleted_at","error":{"code":"gone",…},"reason","version"}
		return
	}
	writeRecord(w, rec)
}

// putBody is the body of a PUT.
type putBody struct {
	Version int64           `json:"version"`
	Payload json.RawMessage `json:"payload"`
	Deleted bool            `json:"deleted"`
	Reason  string          `json:"reason"`
	Purge   bool            `json:"purge"`
	Force   bool            `json:"force"`
}

// DecodeRecordPut reads the body of PUT /v1/records/{source}/{id} (at most limit bytes) with
// the strict decoder of every JSON body, for the record id, and returns the write, validated
// (records.Write.Validate). Errors: ETOOLARGE, EINVALID; messages never quote the payload.
func DecodeRecordPut(body io.Reader, limit int64, id string) (records.Write, error) {
	var b putBody
	if err := decodeJSON(body, limit, &b); err != nil {
		return records.Write{}, err
	}
	w := records.Write{ID: id, Version: b.Version, Payload: b.Payload, Deleted: b.Deleted, Reason: b.Reason, Purge: b.Purge, Force: b.Force}
	if err := w.Validate(); err != nil {
		return records.Write{}, err
	}
	return w, nil
}

// DecodeRecordBatch reads the body of POST /v1/records/{source}:batch (at most limit bytes)
// strictly and returns its writes (the store validates each, and answers for each). Errors as
// DecodeRecordPut's, and EINVALID for an empty batch.
func DecodeRecordBatch(body io.Reader, limit int64) ([]records.Write, error) {
	var b RecordBatchRequest
	if err := decodeJSON(body, limit, &b); err != nil {
		return nil, err
	}
	if len(b.Writes) == 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "writes is empty")
	}
	return b.Writes, nil
}

// forced authorizes the writes that ask for force: they need the operate role, and carry its
// actor for the audit event.
func (h *recordsHandler) forced(w http.ResponseWriter, r *http.Request, writes []records.Write) bool {
	var actor string
	for i := range writes {
		if !writes[i].Force {
			continue
		}
		if actor == "" {
			var ok bool
			if actor, ok = h.authorized(w, r, RoleOperate); !ok {
				return false
			}
		}
		writes[i].Actor = actor
	}
	return true
}

func (h *recordsHandler) put(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorized(w, r, RoleWrite); !ok {
		return
	}
	if err := checkBody(r, h.limit(MaxRecordBody)); err != nil {
		WriteError(w, r, err)
		return
	}
	write, err := DecodeRecordPut(r.Body, h.limit(MaxRecordBody), r.PathValue("id"))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	writes := []records.Write{write}
	if !h.forced(w, r, writes) {
		return
	}
	rec, status, err := h.s.Put(r.Context(), r.PathValue("source"), writes[0])
	if err != nil {
		WriteError(w, r, err)
		return
	}
	code := http.StatusOK
	if status == records.StatusCreated {
		code = http.StatusCreated
	}
	WriteJSON(w, code, map[string]any{"status": status, "record": rec})
}

func (h *recordsHandler) delete(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorized(w, r, RoleWrite); !ok {
		return
	}
	q := r.URL.Query()
	o := records.DeleteOptions{Reason: q.Get("reason")}
	for k := range q {
		if k != "reason" && k != "mode" && k != "version" {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "unknown query parameter %q", records.Clip(k)))
			return
		}
	}
	switch q.Get("mode") {
	case "", "tombstone":
	case "purge":
		o.Purge = true
	default:
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "mode must be tombstone or purge"))
		return
	}
	if v := q.Get("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "version must be a positive integer"))
			return
		}
		o.Version = n
	}
	if len(o.Reason) > 256 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "reason is longer than 256 bytes"))
		return
	}
	rec, status, err := h.s.Delete(r.Context(), r.PathValue("source"), r.PathValue("id"), o)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"status": status, "record": rec})
}

// postTarget serves POST /v1/records/{source}:batch and /v1/records/{source}:verify (the mux
// cannot match a wildcard followed by a literal in one segment).
func (h *recordsHandler) postTarget(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("target")
	switch {
	case strings.HasSuffix(target, ":batch"):
		h.batch(w, r, strings.TrimSuffix(target, ":batch"))
	case strings.HasSuffix(target, ":verify"):
		h.verify(w, r, strings.TrimSuffix(target, ":verify"))
	default:
		WriteError(w, r, erasure.Errorf(erasure.ENOTFOUND, "no such records endpoint: POST %s", records.Clip(r.URL.Path)))
	}
}

func (h *recordsHandler) getTarget(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("target")
	switch {
	case target == ":sources":
		if _, ok := h.authorized(w, r, RoleRead); !ok {
			return
		}
		srcs, err := h.s.Sources(r.Context())
		if err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"sources": srcs})
	case strings.HasSuffix(target, ":export"):
		h.export(w, r, strings.TrimSuffix(target, ":export"))
	case strings.HasSuffix(target, ":segments"):
		h.segments(w, r, strings.TrimSuffix(target, ":segments"))
	default:
		WriteError(w, r, erasure.Errorf(erasure.ENOTFOUND, "no such records endpoint: GET %s", records.Clip(r.URL.Path)))
	}
}

// RecordBatchRequest is the body of POST /v1/records/{source}:batch.
type RecordBatchRequest struct {
	Writes []records.Write `json:"writes"`
}

// RecordBatchItem is one result of a batch: the write's outcome or its error.
type RecordBatchItem struct {
	ID      string       `json:"id"`
	Version int64        `json:"version,omitempty"`
	Status  string       `json:"status,omitempty"`
	Error   *ErrorDetail `json:"error,omitempty"`
}

func (h *recordsHandler) batch(w http.ResponseWriter, r *http.Request, source string) {
	if _, ok := h.authorized(w, r, RoleWrite); !ok {
		return
	}
	if err := records.ValidSource(source); err != nil {
		WriteError(w, r, err)
		return
	}
	if err := checkBody(r, h.limit(MaxRecordBatchBody)); err != nil {
		WriteError(w, r, err)
		return
	}
	writes, err := DecodeRecordBatch(r.Body, h.limit(MaxRecordBatchBody))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if !h.forced(w, r, writes) {
		return
	}
	res, err := h.s.WriteBatch(r.Context(), source, writes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	out := make([]RecordBatchItem, len(res))
	failed := 0
	for i, x := range res {
		out[i] = RecordBatchItem{ID: x.ID, Version: x.Version, Status: x.Status}
		if x.Err != nil {
			out[i].Error = &ErrorDetail{Code: x.Err.Code, Message: x.Err.Message}
			failed++
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"results": out, "failed": failed})
}

// parseDate parses a date (YYYY-MM-DD, UTC) or an RFC 3339 time; EINVALID otherwise.
func parseDate(field, s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, erasure.Errorf(erasure.EINVALID, "%s must be a date (2017-01-01) or an RFC 3339 time", field)
}

func (h *recordsHandler) archive(w http.ResponseWriter, r *http.Request) {
	actor, ok := h.authorized(w, r, RoleOperate)
	if !ok {
		return
	}
	var b records.ArchiveRequest
	if err := DecodeJSON(r, h.limit(MaxRecordBody), &b); err != nil {
		WriteError(w, r, err)
		return
	}
	before, err := parseDate("deleted_before", b.DeletedBefore)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	rep, err := h.s.Archive(r.Context(), records.ArchiveOptions{Source: r.PathValue("source"), DeletedBefore: before, DryRun: b.DryRun, Force: b.Force, BatchSize: b.BatchSize, Limit: b.Limit, Actor: actor, Compact: b.Compact})
	answerMove(w, r, rep, err)
}

func answerMove(w http.ResponseWriter, r *http.Request, rep *records.MoveReport, err error) {
	if err != nil {
		code := erasure.ErrorCode(err)
		if rep != nil && code == erasure.ECONFLICT {
			WriteJSON(w, StatusOf(code), map[string]any{"error": ErrorDetail{Code: code, Message: erasure.ErrorMessage(err)}, "report": rep})
			return
		}
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

func (h *recordsHandler) restore(w http.ResponseWriter, r *http.Request) {
	actor, ok := h.authorized(w, r, RoleOperate)
	if !ok {
		return
	}
	var b records.RestoreRequest
	if err := DecodeJSON(r, h.limit(MaxRecordBatchBody), &b); err != nil {
		WriteError(w, r, err)
		return
	}
	o := records.RestoreOptions{Source: r.PathValue("source"), IDs: b.IDs, DryRun: b.DryRun, BatchSize: b.BatchSize, Limit: b.Limit, Actor: actor}
	if b.DeletedAfter != "" {
		t, err := parseDate("deleted_after", b.DeletedAfter)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		o.DeletedAfter = t
	}
	rep, err := h.s.Restore(r.Context(), o)
	answerMove(w, r, rep, err)
}

func (h *recordsHandler) reconcile(w http.ResponseWriter, r *http.Request) {
	actor, ok := h.authorized(w, r, RoleOperate)
	if !ok {
		return
	}
	var b records.ReconcileRequest
	if err := DecodeJSON(r, h.limit(MaxReconcileBody), &b); err != nil {
		WriteError(w, r, err)
		return
	}
	present := make(map[string]bool, len(b.Present))
	for _, id := range b.Present {
		present[id] = true
	}
	if len(b.Present) == 0 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "present is empty: refusing to tombstone every record"))
		return
	}
	rep, err := h.s.Reconcile(r.Context(), records.ReconcileOptions{Source: r.PathValue("source"), Present: present, Control: b.Control, DryRun: b.DryRun, Force: b.Force, Reason: b.Reason, Actor: actor})
	answerMove(w, r, rep, err)
}

func (h *recordsHandler) verify(w http.ResponseWriter, r *http.Request, source string) {
	if _, ok := h.authorized(w, r, RoleOperate); !ok {
		return
	}
	rep, err := h.s.Verify(r.Context(), source)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

// export streams a partition's records of one source as NDJSON, in id order, from `from`
// (inclusive) or after `after` (exclusive) to before (exclusive), at most limit records: GET
// /v1/records/{source}:export?partition=live&from=…&after=…&before=…&limit=N.
func (h *recordsHandler) export(w http.ResponseWriter, r *http.Request, source string) {
	if _, ok := h.authorized(w, r, RoleRead); !ok {
		return
	}
	q := r.URL.Query()
	seg := records.Segment{Source: source, From: q.Get("from"), Before: q.Get("before")}
	part := q.Get("partition")
	if part == "" {
		part = records.Live
	}
	var limit int64
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			WriteError(w, r, erasure.Errorf(erasure.EINVALID, "limit must be a positive integer"))
			return
		}
		limit = n
	}
	if err := records.ValidSource(source); err != nil {
		WriteError(w, r, err)
		return
	}
	if err := records.ValidPartition(part); err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	_, err := h.s.Scan(r.Context(), part, seg, q.Get("after"), limit, func(rec *records.RawRecord) error {
		line = rec.AppendJSON(line[:0])
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		// Headers are gone; end the stream with an error line the client recognises.
		bw.WriteString(`{"error":` + strconv.Quote(erasure.ErrorMessage(err)) + "}\n")
	}
	bw.Flush()
}

func (h *recordsHandler) segments(w http.ResponseWriter, r *http.Request, source string) {
	if _, ok := h.authorized(w, r, RoleRead); !ok {
		return
	}
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if q.Get("n") == "" {
		n, err = 1, nil
	}
	if err != nil || n < 1 || n > 64 {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "n must be between 1 and 64"))
		return
	}
	part := q.Get("partition")
	if part == "" {
		part = records.Live
	}
	segs, total, err := h.s.Segments(r.Context(), part, source, n)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"records": total, "segments": segs})
}
