package recordsconn

import (
	"context"
	"errors"
	"time"

	"erasure"
	"erasure/records"
)

var (
	_ erasure.Retainer = (*Connector)(nil)
	_ erasure.Replayer = (*Connector)(nil)
)

// errStop ends a scan early.
var errStop = errors.New("stop")

// scan calls fn with every record of the source, live then deleted.
func (c *Connector) scan(ctx context.Context, st records.Service, fn func(*records.RawRecord) error) error {
	for _, part := range []string{records.Live, records.Deleted} {
		segs, _, err := st.Segments(ctx, part, c.source, 1)
		if err != nil {
			return classify(ctx, err)
		}
		for _, seg := range segs {
			if _, err := st.Scan(ctx, part, seg, "", 0, fn); err != nil {
				if errors.Is(err, errStop) {
					return err
				}
				return classify(ctx, err)
			}
		}
	}
	return nil
}

// Expire implements erasure.Retainer for a records dataset: its retention purges the
// tombstones deleted before cutoff, in either partition, that still carry their payload. They
// stay id-only tombstones (the catalogue still answers 410 for them); what goes is the
// payload. Each purge is a write at the next version, so a record written again since the
// scan is left alone (the write conflicts). Removed counts the payloads dropped.
func (c *Connector) Expire(ctx context.Context, cutoff time.Time, approve func(int64) error) (erasure.RetentionResult, error) {
	st, err := c.bound()
	if err != nil {
		return erasure.RetentionResult{}, err
	}
	var writes []records.Write
	before := cutoff.UnixMilli()
	err = c.scan(ctx, st, func(r *records.RawRecord) error {
		if r.Deleted && r.DeletedAt < before && r.Payload != nil {
			writes = append(writes, records.Write{ID: r.ID, Version: r.Version + 1, Deleted: true, Purge: true, Reason: "retention"})
		}
		return nil
	})
	res := erasure.RetentionResult{Expired: int64(len(writes))}
	if err != nil {
		return res, err
	}
	if err := approve(res.Expired); err != nil {
		return res, err
	}
	for len(writes) > 0 {
		n := min(len(writes), records.MaxBatch)
		results, err := st.WriteBatch(ctx, c.source, writes[:n])
		if err != nil {
			return res, classify(ctx, err)
		}
		for _, r := range results {
			if r.Err == nil && r.Status == records.StatusDeleted {
				res.Removed++
			}
		}
		writes = writes[n:]
	}
	return res, nil
}

// Replay implements erasure.Replayer: every record id of the source (both partitions) is
// matched, and the records of the ids that match are erased again as Erase does (a restored
// store holds them live again). Scanned counts records, Matched the ids that matched.
func (c *Connector) Replay(ctx context.Context, match func(string) bool, dryRun bool, progress func(erasure.ReplayProgress)) (erasure.ReplayResult, error) {
	var res erasure.ReplayResult
	st, err := c.bound()
	if err != nil {
		return res, err
	}
	var hits []erasure.Identifier
	err = c.scan(ctx, st, func(r *records.RawRecord) error {
		res.Scanned++
		if match(r.ID) {
			hits = append(hits, erasure.Identifier{Type: c.identifier, Value: r.ID})
		}
		if progress != nil && res.Scanned%1000 == 0 {
			progress(erasure.ReplayProgress{ReplayResult: erasure.ReplayResult{Scanned: res.Scanned, Matched: int64(len(hits))}})
		}
		return nil
	})
	res.Matched = int64(len(hits))
	if err != nil || dryRun {
		return res, err
	}
	for len(hits) > 0 {
		n := min(len(hits), 1000)
		out, err := c.Erase(ctx, erasure.NewSubject(hits[:n]...))
		res.Removed += out.Removed
		if err != nil {
			return res, err
		}
		hits = hits[n:]
		if progress != nil {
			progress(erasure.ReplayProgress{ReplayResult: res})
		}
	}
	return res, nil
}
