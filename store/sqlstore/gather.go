package sqlstore

import "time"

// Group commits (CreateRequest, AckTask) gather the calls waiting into one transaction. Taking
// only what is queued when a transaction starts splits concurrent callers into alternating
// halves: those committed by the last transaction are still on their way back with their next
// call while the others wait, so eight callers made batches of 3 and 5, or 1 and 7, and twice
// the transactions. A gatherer therefore waits a little for stragglers, but only up to the
// size the recent batches showed callers to come in (one caller alone never waits).
const (
	// gatherGap is how long a gatherer waits for the next call before it commits what it has.
	gatherGap = 300 * time.Microsecond
	// gatherMax bounds the wait of a whole batch.
	gatherMax = 2 * time.Millisecond
)

// gatherer remembers the sizes of the last batches. gap and most replace gatherGap and
// gatherMax when set (tests).
type gatherer struct {
	last      [2]int
	gap, most time.Duration
}

// gather returns first and the calls that follow it on ch, up to limit: those already queued,
// then, while the batch is smaller than either of the last two, those arriving within
// gatherGap of each other (for at most gatherMax). closed is true when ch was closed.
func gather[T any](g *gatherer, ch <-chan T, first T, limit int) (batch []T, closed bool) {
	batch = append(batch, first)
	target := min(limit, max(g.last[0], g.last[1]))
	gap, most := gatherGap, gatherMax
	if g.gap > 0 {
		gap, most = g.gap, g.most
	}
	var deadline time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		g.last[0], g.last[1] = g.last[1], len(batch)
	}()
	for len(batch) < limit {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch, true
			}
			batch = append(batch, v)
			continue
		default:
		}
		if len(batch) >= target {
			return batch, false
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(most)
		}
		wait := min(gap, deadline.Sub(now))
		if wait <= 0 {
			return batch, false
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case v, ok := <-ch:
			if !ok {
				return batch, true
			}
			batch = append(batch, v)
		case <-timer.C:
			return batch, false
		}
	}
	return batch, false
}

// drain returns up to n of the calls queued on ch, without waiting.
func drain[T any](ch <-chan T, n int) []T {
	var out []T
	for len(out) < n {
		select {
		case v, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, v)
		default:
			return out
		}
	}
	return out
}
