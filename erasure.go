// Package erasure is the domain of the erasure system: identifiers and subjects, datasets and
// their connectors, requests and tasks with their state machines, audit events, errors, and the
// interfaces the stores, connectors, pipeline and API implement or use.
//
// It imports nothing of the project's: stores live under store/, connectors under connector/,
// orchestration in pipeline/, the HTTP API in api/, a running server in server/ and the binary
// in cmd/erasure (docs/architecture.md).
package erasure

import (
	"errors"
	"fmt"
)

// Error codes. Each maps once to an HTTP status (api) and once to a CLI exit code (cmd/erasure).
const (
	ECONFLICT     = "conflict"     // the action conflicts with the current state
	EGONE         = "gone"         // the thing existed and was deleted (records: 410)
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EINVALID      = "invalid"      // bad input: validation failed
	ENOTFOUND     = "not_found"    // the thing does not exist
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // credentials lack the role
	ETOOLARGE     = "too_large"    // the input is larger than allowed
	EUNAVAILABLE  = "unavailable"  // a dependency is down; try again later
)

// Error is an error meant for a person: a code from the list above and a message that says what
// went wrong and, where it can, what to do about it.
type Error struct {
	Code    string
	Message string
	// Details lists further messages (for example every error of a registry), in order.
	Details []string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other
// non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a generic message for
// other errors so that internals do not leak to clients.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
