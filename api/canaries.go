package api

import (
	"net/http"

	"erasure"
)

// CanaryRoutes returns the canary routes over cs (pipeline.Canaries in the server), by
// ServeMux pattern, for Server.Mount:
//
//	GET  /v1/canaries                  read      the last canary of every dataset with one
//	POST /v1/canaries/run              operate   run every dataset's canary now, to its end; 200 with the results
//	POST /v1/canaries/{dataset}/run    operate   run one dataset's canary now; 404 unknown, 400 no canary
//
// A run answers once the canaries have ended (up to their timeouts): clients wait accordingly.
// A failed canary is a result with "ok": false, not an error.
func CanaryRoutes(s *Server, cs erasure.CanaryService) map[string]http.Handler {
	h := &canaryHandlers{s: s, cs: cs}
	return map[string]http.Handler{
		"GET /v1/canaries":                http.HandlerFunc(h.list),
		"POST /v1/canaries/run":           http.HandlerFunc(h.run),
		"POST /v1/canaries/{dataset}/run": http.HandlerFunc(h.run),
	}
}

// CanaryList is the body of GET /v1/canaries and of a canary run.
type CanaryList struct {
	Canaries []erasure.CanaryResult `json:"canaries"`
}

type canaryHandlers struct {
	s  *Server
	cs erasure.CanaryService
}

func (h *canaryHandlers) list(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	res, err := h.cs.Canaries(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if res == nil {
		res = []erasure.CanaryResult{}
	}
	WriteJSON(w, http.StatusOK, CanaryList{Canaries: res})
}

func (h *canaryHandlers) run(w http.ResponseWriter, r *http.Request) {
	actor, err := h.s.Authorize(r, RoleOperate)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	ds := ""
	if r.PathValue("dataset") != "" {
		if ds, err = pathDataset(r); err != nil {
			WriteError(w, r, err)
			return
		}
	}
	res, err := h.cs.RunCanaries(r.Context(), ds, actor)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if res == nil {
		res = []erasure.CanaryResult{}
	}
	WriteJSON(w, http.StatusOK, CanaryList{Canaries: res})
}
