package api

import (
	"net/http"

	"erasure"
	"erasure/internal/strictjson"
)

// AuditRoutes returns the routes of signed checkpoints and of verification through anchors,
// for Server.Mount:
//
//	POST /v1/audit/checkpoints   operate  sign the chain's head now: 201 with the checkpoint (409 when the trail does not verify)
//	GET  /v1/audit/checkpoints   read     the checkpoints kept, newest first (?limit=1..10000, default 100)
//	POST /v1/audit/verify        read     {"expect_heads":["BLOCK:HASH"],"checkpoints":[{…}]}: verify the trail through them
//
// A trail that does not pass through an anchor is a 200 with ok false, like GET
// /v1/audit/verify; a malformed anchor or checkpoint (bad signature) is 400.
func AuditRoutes(s *Server, svc erasure.AuditService) map[string]http.Handler {
	h := &auditHandlers{s: s, svc: svc}
	return map[string]http.Handler{
		"POST /v1/audit/checkpoints": http.HandlerFunc(h.checkpoint),
		"GET /v1/audit/checkpoints":  http.HandlerFunc(h.list),
		"POST /v1/audit/verify":      http.HandlerFunc(h.verify),
	}
}

type auditHandlers struct {
	s   *Server
	svc erasure.AuditService
}

// AuditVerifyRequest is the body of POST /v1/audit/verify.
type AuditVerifyRequest struct {
	// ExpectHeads are points the chain must pass through, BLOCK:HASH.
	ExpectHeads []string `json:"expect_heads,omitempty"`
	// Checkpoints are signed checkpoints (erasure audit checkpoint) whose heads the chain
	// must pass through.
	Checkpoints []erasure.AuditCheckpoint `json:"checkpoints,omitempty"`
}

// CheckpointList is the body of GET /v1/audit/checkpoints.
type CheckpointList struct {
	Checkpoints []erasure.AuditCheckpoint `json:"checkpoints"`
}

func (h *auditHandlers) checkpoint(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleOperate); err != nil {
		WriteError(w, r, err)
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	cp, err := h.svc.Checkpoint(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, cp)
}

func (h *auditHandlers) list(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	q, err := query(r, "limit")
	if err != nil {
		WriteError(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", 100, 1, 10000)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	cps, err := h.svc.Checkpoints(r.Context(), int(limit))
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if cps == nil {
		cps = []erasure.AuditCheckpoint{}
	}
	WriteJSON(w, http.StatusOK, CheckpointList{Checkpoints: cps})
}

func (h *auditHandlers) verify(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	var body AuditVerifyRequest
	if err := DecodeJSON(r, h.s.limit, &body); err != nil {
		WriteError(w, r, err)
		return
	}
	anchors := make([]erasure.AuditAnchor, 0, len(body.ExpectHeads))
	for _, s := range body.ExpectHeads {
		a, err := parseAnchor(s)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		anchors = append(anchors, a)
	}
	rep, err := h.svc.VerifyAuditFrom(r.Context(), anchors, body.Checkpoints)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

// parseAnchor reads BLOCK:HASH (the api imports nothing of audit/: the format is simple).
func parseAnchor(s string) (erasure.AuditAnchor, error) {
	var a erasure.AuditAnchor
	bad := erasure.Errorf(erasure.EINVALID, "expect_heads: %s is not BLOCK:HASH (a block number and its 64-digit hex hash)", strictjson.Name(s))
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		a.Block = a.Block*10 + int64(s[i]-'0')
		if a.Block > 1<<53 {
			return a, bad
		}
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' || len(s)-i-1 != 64 {
		return a, bad
	}
	for _, c := range s[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return a, bad
		}
	}
	a.Hash = s[i+1:]
	return a, nil
}
