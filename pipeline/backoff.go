package pipeline

import (
	"math/rand/v2"
	"time"

	"erasure"
)

// Backoff returns how long to wait before the attempt after the n-th failed one (n ≥ 1):
// the exponential curve Initial·2^(n-1) capped at Max, of which the upper half is jittered
// ("equal jitter": between d/2 and d), so that retries of many tasks failing together spread
// out while each still waits at least half the curve. A Retry-After from the dataset wins when
// it is longer. rnd supplies the jitter; pass a seeded source in tests.
func Backoff(b erasure.Backoff, n int, retryAfter time.Duration, rnd *rand.Rand) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if d > 1 {
		half := d / 2
		d = half + time.Duration(rnd.Int64N(int64(d-half)+1))
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d
}
