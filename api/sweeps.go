package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"erasure"
)

// Headers of an export response.
const (
	HeaderSweepID    = "Erasure-Sweep-Id"
	HeaderSweepTasks = "Erasure-Sweep-Tasks"
)

// SweepRoutes returns the sweep routes over sw (pipeline.SweepService in the server), by
// ServeMux pattern, for Server.Mount:
//
//	POST /v1/sweeps/{dataset}                       operate   202 the sweep started (200 with tasks 0: nothing queued)
//	GET  /v1/sweeps/{dataset}                       read      ?limit= (1..500, default 20): history and live progress
//	POST /v1/sweeps/{dataset}/index                 operate   build the skip index; 200 with the report
//	POST /v1/sweeps/{dataset}/export                operate   ?format=jsonl|parquet: 200 streaming the export
//	                                                          (identifiers in clear), Erasure-Sweep-Id header;
//	                                                          204 when nothing is queued
//	POST /v1/sweeps/{dataset}/{id}/ack              operate or ack:DATASET   {"status":"done"|"failed","removed":N,"error":""}
func SweepRoutes(s *Server, sw erasure.SweepService) map[string]http.Handler {
	h := &sweepHandlers{s: s, sw: sw}
	return map[string]http.Handler{
		"POST /v1/sweeps/{dataset}":          http.HandlerFunc(h.run),
		"GET /v1/sweeps/{dataset}":           http.HandlerFunc(h.status),
		"POST /v1/sweeps/{dataset}/index":    http.HandlerFunc(h.index),
		"POST /v1/sweeps/{dataset}/export":   http.HandlerFunc(h.export),
		"POST /v1/sweeps/{dataset}/{id}/ack": http.HandlerFunc(h.ack),
	}
}

type sweepHandlers struct {
	s  *Server
	sw erasure.SweepService
}

// begin authorizes r for role and reads the dataset from the path, refusing query parameters
// other than allowed.
func (h *sweepHandlers) begin(r *http.Request, role string, allowed ...string) (actor, dataset string, q url.Values, err error) {
	if actor, err = h.s.Authorize(r, role); err != nil {
		return "", "", nil, err
	}
	dataset, err = pathDataset(r)
	if err != nil {
		return "", "", nil, err
	}
	q, err = query(r, allowed...)
	return actor, dataset, q, err
}

func pathDataset(r *http.Request) (string, error) {
	ds := r.PathValue("dataset")
	if !datasetNameRE.MatchString(ds) {
		return "", erasure.Errorf(erasure.EINVALID, "%q is not a valid dataset name", truncate(ds, 64))
	}
	return ds, nil
}

func (h *sweepHandlers) run(w http.ResponseWriter, r *http.Request) {
	actor, ds, _, err := h.begin(r, RoleOperate)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	sw, err := h.sw.RunSweep(r.Context(), ds, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if sw.Tasks == 0 {
		status = http.StatusOK
	}
	WriteJSON(w, status, sw)
}

func (h *sweepHandlers) status(w http.ResponseWriter, r *http.Request) {
	_, ds, q, err := h.begin(r, RoleRead, "limit")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 20, 1, 500)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	st, err := h.sw.SweepStatus(r.Context(), ds, int(limit))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, st)
}

func (h *sweepHandlers) index(w http.ResponseWriter, r *http.Request) {
	actor, ds, _, err := h.begin(r, RoleOperate)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	rep, err := h.sw.BuildIndex(r.Context(), ds, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

var exportTypes = map[string]string{"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}

func (h *sweepHandlers) export(w http.ResponseWriter, r *http.Request) {
	actor, ds, q, err := h.begin(r, RoleOperate, "format")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "jsonl"
	}
	ctype, ok := exportTypes[format]
	if !ok {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "format %q is not one of jsonl, parquet", truncate(format, 32)))
		return
	}
	sw, write, err := h.sw.StartExport(r.Context(), ds, format, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set(HeaderSweepTasks, strconv.Itoa(sw.Tasks))
	w.Header().Set("Cache-Control", "no-store")
	if sw.Tasks == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set(HeaderSweepID, sw.ID)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", ds+"-"+sw.ID+"."+format))
	w.WriteHeader(http.StatusOK)
	if _, err := write(w); err != nil {
		// The body is cut short; the sweep has failed and its tasks wait for the next one.
		h.s.log.Warn("export not delivered", "sweep", sw.ID, "dataset", ds, "err", err)
	}
}

func (h *sweepHandlers) ack(w http.ResponseWriter, r *http.Request) {
	ds, err := pathDataset(r)
	if err != nil {
		if _, aerr := h.s.Authorize(r, RoleOperate); aerr != nil && erasure.ErrorCode(aerr) == erasure.EUNAUTHORIZED {
			err = aerr
		}
		WriteError(w, r, err)
		return
	}
	actor, err := h.s.Authorize(r, RoleAck+ds)
	if erasure.ErrorCode(err) == erasure.EFORBIDDEN {
		if actor, err = h.s.Authorize(r, RoleOperate); erasure.ErrorCode(err) == erasure.EFORBIDDEN {
			err = erasure.Errorf(erasure.EFORBIDDEN, "token %q lacks the operate or %s%s role", actor, RoleAck, ds)
		}
	}
	if err != nil {
		WriteError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if !requestIDPathRE.MatchString(id) {
		WriteError(w, r, erasure.Errorf(erasure.EINVALID, "%q is not a valid sweep id", truncate(id, 64)))
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	var ack erasure.SweepAck
	if err := DecodeJSON(r, h.s.limit, &ack); err != nil {
		WriteError(w, r, err)
		return
	}
	if err := ack.Validate(); err != nil {
		WriteError(w, r, err)
		return
	}
	sw, err := h.sw.AckSweep(r.Context(), ds, id, ack, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, sw)
}
