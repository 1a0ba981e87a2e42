package erasure

import "context"

// RequestIDStore finds requests by the first characters of their id, so that people may type
// a unique prefix of one.
type RequestIDStore interface {
	// RequestIDsWithPrefix returns up to limit ids starting with prefix, in id order.
	RequestIDsWithPrefix(ctx context.Context, prefix string, limit int) ([]string, error)
}

// RequestResolver finds the one request whose id starts with what a person typed.
type RequestResolver interface {
	// ResolveRequestID returns the id of the only request whose id starts with prefix (a
	// whole id is its own prefix): EINVALID for a prefix no id can start with, ENOTFOUND when
	// no request's id starts with it, ECONFLICT naming some of them when several do.
	ResolveRequestID(ctx context.Context, prefix string) (string, error)
}
