package api

import (
	"encoding/json"
	"net/http"

	"erasure"
)

// StatusOf is the one place where an error code becomes an HTTP status.
func StatusOf(code string) int {
	switch code {
	case erasure.EINVALID:
		return http.StatusBadRequest
	case erasure.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case erasure.EFORBIDDEN:
		return http.StatusForbidden
	case erasure.ENOTFOUND:
		return http.StatusNotFound
	case erasure.ECONFLICT:
		return http.StatusConflict
	case erasure.EGONE:
		return http.StatusGone
	case erasure.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case erasure.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case "unsupported_media_type":
		return http.StatusUnsupportedMediaType
	case "method_not_allowed":
		return http.StatusMethodNotAllowed
	case "request_timeout":
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// Codes the HTTP layer adds to the domain's: they only ever come from the API itself.
const (
	// EUNSUPPORTED is a request body that is not JSON (415).
	EUNSUPPORTED = "unsupported_media_type"
	// EMETHOD is a method the route does not serve (405).
	EMETHOD = "method_not_allowed"
	// ETIMEOUT is a request body that did not arrive in time (408).
	ETIMEOUT = "request_timeout"
)

// ErrorBody is the JSON body of every error response: {"error":{"code":...,"message":...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error of an ErrorBody.
type ErrorDetail struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []string `json:"details,omitempty"`
}

// WriteError writes err as an error response with the status of its code. Errors that are not
// *erasure.Error, and those with code internal, are answered with a generic message so that
// internals never leak; the real error is kept for the request log. Handlers mounted next to
// the API (records) use it so that the code→status mapping stays in one place.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	code := erasure.ErrorCode(err)
	body := ErrorBody{Error: ErrorDetail{Code: code, Message: erasure.ErrorMessage(err)}}
	if e, ok := asError(err); ok && code != erasure.EINTERNAL {
		body.Error.Details = e.Details
	}
	if code == erasure.EINTERNAL {
		body.Error.Message = "internal error"
	}
	if info := infoOf(r); info != nil {
		info.code = code
		if code == erasure.EINTERNAL {
			info.internal = err
		}
	}
	status := StatusOf(code)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="erasure"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, status, body)
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"error":{"code":"internal","message":"internal error"}}`), http.StatusInternalServerError
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// The headers of every JSON answer, in canonical form: shared, never changed.
var (
	jsonType  = []string{"application/json"}
	noSniff   = []string{"nosniff"}
	noStoring = []string{"no-store"}
)

// writeJSONBytes writes b, a JSON document and its newline, with status.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"], h["X-Content-Type-Options"], h["Cache-Control"] = jsonType, noSniff, noStoring
	w.WriteHeader(status)
	w.Write(b)
}
