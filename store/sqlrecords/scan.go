package sqlrecords

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"strings"

	"erasure"
	"erasure/records"
)

// Sources implements records.Reader.
func (s *Store) Sources(ctx context.Context) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT source FROM records_ledger ORDER BY source`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var src string
		if err := rows.Scan(&src); err != nil {
			return nil, unavailable(err)
		}
		out = append(out, src)
	}
	return out, unavailableOrNil(rows.Err())
}

// Segments splits source's records in partition into at most n id ranges. The total comes
// from the source's ledger; boundaries are interpolated between the smallest and largest id
// and snapped to real ids, each an index seek, so planning never walks the records. Ranges
// are about equal when ids are spread evenly (sequential or random ids) and always cover every
// id exactly once; each segment's Records is the even share of the total, an estimate.
func (s *Store) Segments(ctx context.Context, partition, source string, n int) ([]records.Segment, int64, error) {
	if err := records.ValidSource(source); err != nil {
		return nil, 0, err
	}
	if err := records.ValidPartition(partition); err != nil {
		return nil, 0, err
	}
	table := `records_` + partition
	var total int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT `+partition+`_count FROM records_ledger WHERE source = ?`), source).Scan(&total)
	if errors.Is(err, sql.ErrNoRows) {
		return []records.Segment{{Source: source}}, 0, nil
	} else if err != nil {
		return nil, 0, unavailable(err)
	}
	// Small sources are not worth splitting: at least minSegment records per segment.
	const minSegment = 1000
	n = int(max(1, min(int64(n), total/minSegment)))
	bounds := []string{""}
	if n > 1 {
		var lo, hi string
		if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? ORDER BY id LIMIT 1`), source).Scan(&lo); err != nil {
			return nil, 0, unavailable(err)
		}
		if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? ORDER BY id DESC LIMIT 1`), source).Scan(&hi); err != nil {
			return nil, 0, unavailable(err)
		}
		// Each boundary is above the previous one in the database's own order (its collation
		// may differ from byte order), so the ranges never overlap or invert.
		prev := lo
		for _, guess := range interpolate(lo, hi, n) {
			var id string
			err := s.rdb.QueryRowContext(ctx, s.q(`SELECT id FROM `+table+` WHERE source = ? AND id >= ? AND id > ? ORDER BY id LIMIT 1`), source, guess, prev).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return nil, 0, unavailable(err)
			}
			bounds = append(bounds, id)
			prev = id
		}
	}
	segs := make([]records.Segment, len(bounds))
	for i := range segs {
		segs[i] = records.Segment{Source: source, From: bounds[i], Records: total*int64(i+1)/int64(len(segs)) - total*int64(i)/int64(len(segs))}
		if i+1 < len(bounds) {
			segs[i].Before = bounds[i+1]
		}
	}
	return segs, total, nil
}

// interpolate returns n-1 strings evenly spaced between lo and hi (lo < hi), reading the 8
// bytes after their common prefix as numbers.
func interpolate(lo, hi string, n int) []string {
	p := 0
	for p < len(lo) && p < len(hi) && lo[p] == hi[p] {
		p++
	}
	num := func(s string) uint64 {
		var b [8]byte
		copy(b[:], s[min(p, len(s)):])
		return binary.BigEndian.Uint64(b[:])
	}
	a, b := num(lo), num(hi)
	out := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		// a + (b-a)*i/n without overflow.
		k := a + (b-a)/uint64(n)*uint64(i) + (b-a)%uint64(n)*uint64(i)/uint64(n)
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], k)
		// A guess only: keep it valid text for any database (no control bytes, valid UTF-8).
		guess := strings.Map(func(r rune) rune {
			if r < 0x20 {
				return -1
			}
			return r
		}, strings.ToValidUTF8(string(buf[:]), ""))
		out = append(out, lo[:p]+guess)
	}
	return out
}

// Scan implements records.Service.
func (s *Store) Scan(ctx context.Context, partition string, seg records.Segment, after string, limit int64, fn func(*records.RawRecord) error) (int64, error) {
	if err := records.ValidSource(seg.Source); err != nil {
		return 0, err
	}
	if err := records.ValidPartition(partition); err != nil {
		return 0, err
	}
	query := `SELECT source, id, version, deleted_at, reason, updated_at, payload FROM records_` + partition + ` WHERE source = ?`
	args := []any{seg.Source}
	if after != "" && after >= seg.From {
		query += ` AND id > ?`
		args = append(args, after)
	} else if seg.From != "" {
		query += ` AND id >= ?`
		args = append(args, seg.From)
	}
	if seg.Before != "" {
		query += ` AND id < ?`
		args = append(args, seg.Before)
	}
	query += ` ORDER BY id`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, unavailable(err)
	}
	defer rows.Close()
	var n int64
	var r records.RawRecord
	var deletedAt sql.NullInt64
	var reason sql.NullString
	var payload sql.RawBytes // valid until the next Scan: the record is only valid during fn
	for rows.Next() {
		if err := rows.Scan(&r.Source, &r.ID, &r.Version, &deletedAt, &reason, &r.UpdatedAt, &payload); err != nil {
			return n, unavailable(err)
		}
		r.Deleted, r.DeletedAt, r.Reason, r.Payload = deletedAt.Valid, deletedAt.Int64, reason.String, payload
		n++
		if err := fn(&r); err != nil {
			return n, err
		}
	}
	return n, unavailableOrNil(rows.Err())
}

// ScanLines implements records.Reader.
func (s *Store) ScanLines(ctx context.Context, partition string, seg records.Segment, after string, limit int64, fn func(id string, line []byte) error) error {
	var line []byte
	_, err := s.Scan(ctx, partition, seg, after, limit, func(r *records.RawRecord) error {
		line = r.AppendJSON(line[:0])
		return fn(r.ID, line)
	})
	return err
}

// Lookup implements records.Reader.
func (s *Store) Lookup(ctx context.Context, source, id string) ([]byte, string, bool, error) {
	rec, err := s.Get(ctx, source, id)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return nil, "", false, nil
	} else if err != nil {
		return nil, "", false, err
	}
	raw := records.Raw(rec)
	return raw.AppendJSON(nil), rec.Partition, true, nil
}
