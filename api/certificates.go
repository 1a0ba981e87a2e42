package api

import (
	"net/http"

	"erasure"
)

// CertificateRoutes returns the certificate routes over c (pipeline.Certifier in the server),
// by ServeMux pattern, for Server.Mount:
//
//	GET /v1/requests/{id}/certificate   read   200 the signed certificate document (application/json),
//	                                           404 unknown request, 409 a request that has not completed
//	GET /v1/certificates/key            none   the public key: {"algorithm":"ed25519","key_id":…,"public_key":…}
//
// The document is served byte for byte as signed: `erasure certificate verify FILE` fails on any
// changed byte. The key needs no token: it is public, and whoever checks a certificate must be
// able to fetch it.
func CertificateRoutes(s *Server, c erasure.Certifier) map[string]http.Handler {
	h := &certificateHandlers{s: s, c: c}
	return map[string]http.Handler{
		"GET /v1/requests/{id}/certificate": http.HandlerFunc(h.certificate),
		"GET /v1/certificates/key":          http.HandlerFunc(h.key),
	}
}

type certificateHandlers struct {
	s *Server
	c erasure.Certifier
}

func (h *certificateHandlers) certificate(w http.ResponseWriter, r *http.Request) {
	if _, err := h.s.Authorize(r, RoleRead); err != nil {
		WriteError(w, r, err)
		return
	}
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	id, err := pathRequestID(r)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	sc, err := h.c.Certificate(r.Context(), id)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="certificate-`+id+`.json"`)
	w.WriteHeader(http.StatusOK)
	w.Write(sc.Document)
}

func (h *certificateHandlers) key(w http.ResponseWriter, r *http.Request) {
	if _, err := query(r); err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, h.c.CertificateKey())
}
