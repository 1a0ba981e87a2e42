package erasure

import "context"

// WriteProbe is a store that can tell whether it can write: readiness means being able to
// take requests, which a store that answers reads but cannot commit cannot.
type WriteProbe interface {
	// ProbeWrite commits a small write; EUNAVAILABLE (or the driver's error) when it cannot.
	ProbeWrite(ctx context.Context) error
}
