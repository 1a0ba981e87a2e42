package sqlrecords

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"erasure"
	"erasure/records"
)

// Archive implements records.Service. Batches walk the source in id order.
func (s *Store) Archive(ctx context.Context, o records.ArchiveOptions) (*records.MoveReport, error) {
	if err := records.ValidSource(o.Source); err != nil {
		return nil, err
	}
	if o.DeletedBefore.IsZero() {
		return nil, erasure.Errorf(erasure.EINVALID, "archive needs deleted_before")
	}
	batch, err := batchSize(o.BatchSize)
	if err != nil {
		return nil, err
	}
	before := o.DeletedBefore.UnixMilli()
	rep := &records.MoveReport{Source: o.Source, Kind: records.KindArchive, DryRun: o.DryRun}
	where := `source = ? AND deleted_at IS NOT NULL AND deleted_at < ?`
	if err := s.survey(ctx, rep, records.Live, where, o.DryRun, o.Source, before); err != nil {
		return nil, err
	}
	if rep.SourceRecords, err = s.sourceCount(ctx, o.Source); err != nil {
		return nil, err
	}
	if rep.SourceRecords > 0 {
		rep.Share = float64(rep.Candidates) / float64(rep.SourceRecords)
	}
	rep.Remaining = rep.Candidates
	if o.DryRun {
		return rep, nil
	}
	if rep.Share > s.opts.MaxArchiveShare && !o.Force {
		return rep, erasure.Errorf(erasure.ECONFLICT, "archive would move %d of %d records of %s (%.0f%%, above the %.0f%% guard): check the date, or force it",
			rep.Candidates, rep.SourceRecords, o.Source, 100*rep.Share, 100*s.opts.MaxArchiveShare)
	}
	// Batches walk the source in id order (a cursor on the primary key), so each one touches
	// contiguous pages of both partitions.
	sel := s.q(`SELECT ` + cols + ` FROM records_live WHERE ` + where + ` AND id > ? ORDER BY id LIMIT ?`)
	extra, _ := json.Marshal(map[string]string{"deleted_before": o.DeletedBefore.UTC().Format(time.RFC3339)})
	cursor := ""
	for o.Limit == 0 || rep.Moved < o.Limit {
		n, err := s.moveBatch(ctx, rep, records.KindArchive, records.Live, records.Deleted, o.Actor, extra, &cursor, func(tx *sql.Tx) (*sql.Rows, error) {
			return tx.QueryContext(ctx, sel, o.Source, before, cursor, batch)
		})
		if err != nil {
			return rep, err
		}
		if n == 0 {
			break
		}
		if o.Progress != nil {
			o.Progress(rep.Moved, rep.Candidates)
		}
	}
	rep.Remaining = max(rep.Candidates-rep.Moved, 0)
	if o.Compact && rep.Moved > 0 && rep.Remaining == 0 {
		d, err := s.Compact(ctx, records.Live)
		if err != nil {
			return rep, err
		}
		rep.Compacted, rep.CompactTime = true, d.Round(time.Millisecond).String()
	}
	s.log.Info("archive", "source", o.Source, "moved", rep.Moved, "batches", rep.Batches, "checksum", rep.Checksum.String())
	return rep, nil
}

// Restore implements records.Service.
func (s *Store) Restore(ctx context.Context, o records.RestoreOptions) (*records.MoveReport, error) {
	if err := records.ValidSource(o.Source); err != nil {
		return nil, err
	}
	if (len(o.IDs) == 0) == o.DeletedAfter.IsZero() {
		return nil, erasure.Errorf(erasure.EINVALID, "restore needs either ids or deleted_after")
	}
	if len(o.IDs) > records.MaxRestoreIDs {
		return nil, erasure.Errorf(erasure.ETOOLARGE, "restore takes at most %d ids per call", records.MaxRestoreIDs)
	}
	for _, id := range o.IDs {
		if err := records.ValidID(id); err != nil {
			return nil, err
		}
	}
	batch, err := batchSize(o.BatchSize)
	if err != nil {
		return nil, err
	}
	rep := &records.MoveReport{Source: o.Source, Kind: records.KindRestore, DryRun: o.DryRun}
	if rep.SourceRecords, err = s.sourceCount(ctx, o.Source); err != nil {
		return nil, err
	}
	if !o.DeletedAfter.IsZero() {
		after := o.DeletedAfter.UnixMilli()
		where := `source = ? AND deleted_at >= ?`
		if err := s.survey(ctx, rep, records.Deleted, where, o.DryRun, o.Source, after); err != nil {
			return nil, err
		}
		rep.Remaining = rep.Candidates
		if o.DryRun {
			return rep, nil
		}
		extra, _ := json.Marshal(map[string]string{"deleted_after": o.DeletedAfter.UTC().Format(time.RFC3339)})
		sel := s.q(`SELECT ` + cols + ` FROM records_deleted WHERE ` + where + ` AND id > ? ORDER BY id LIMIT ?`)
		cursor := ""
		for o.Limit == 0 || rep.Moved < o.Limit {
			n, err := s.moveBatch(ctx, rep, records.KindRestore, records.Deleted, records.Live, o.Actor, extra, &cursor, func(tx *sql.Tx) (*sql.Rows, error) {
				return tx.QueryContext(ctx, sel, o.Source, after, cursor, batch)
			})
			if err != nil {
				return rep, err
			}
			if n == 0 {
				break
			}
			if o.Progress != nil {
				o.Progress(rep.Moved, rep.Candidates)
			}
		}
		rep.Remaining = max(rep.Candidates-rep.Moved, 0)
		return rep, nil
	}
	ids := dedupe(o.IDs)
	// Classify the ids first: in deleted (candidates), in live, or unknown.
	for _, chunk := range chunks(ids, batch) {
		in, err := s.present(ctx, records.Deleted, o.Source, chunk, rep)
		if err != nil {
			return nil, err
		}
		var rest []string
		for _, id := range chunk {
			if !in[id] {
				rest = append(rest, id)
			}
		}
		live, err := s.present(ctx, records.Live, o.Source, rest, nil)
		if err != nil {
			return nil, err
		}
		rep.AlreadyLive += int64(len(live))
		rep.NotFound += int64(len(rest) - len(live))
	}
	rep.Remaining = rep.Candidates
	if o.DryRun {
		return rep, nil
	}
	sel := `SELECT ` + cols + ` FROM records_deleted WHERE source = ? AND id IN `
	for _, chunk := range chunks(ids, batch) {
		if o.Limit > 0 && rep.Moved >= o.Limit {
			break
		}
		_, err := s.moveBatch(ctx, rep, records.KindRestore, records.Deleted, records.Live, o.Actor, nil, nil, func(tx *sql.Tx) (*sql.Rows, error) {
			return tx.QueryContext(ctx, s.q(sel+placeholders(len(chunk))), append([]any{o.Source}, anys(chunk)...)...)
		})
		if err != nil {
			return rep, err
		}
		if o.Progress != nil {
			o.Progress(rep.Moved, rep.Candidates)
		}
	}
	rep.Remaining = max(rep.Candidates-rep.Moved, 0)
	s.log.Info("restore", "source", o.Source, "moved", rep.Moved, "batches", rep.Batches, "checksum", rep.Checksum.String())
	return rep, nil
}

// present returns which of ids are in partition; with rep it also adds them to its survey.
func (s *Store) present(ctx context.Context, part, source string, ids []string, rep *records.MoveReport) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT id, deleted_at, `+sizeExpr+` FROM records_`+part+` WHERE source = ? AND id IN `+placeholders(len(ids))), append([]any{source}, anys(ids)...)...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	years := map[int]*records.YearCount{}
	if rep != nil {
		for _, y := range rep.ByYear {
			years[y.Year] = &y
		}
	}
	for rows.Next() {
		var id string
		var at sql.NullInt64
		var size int64
		if err := rows.Scan(&id, &at, &size); err != nil {
			return nil, unavailable(err)
		}
		out[id] = true
		if rep != nil {
			rep.Candidates++
			rep.Bytes += size
			addYear(years, at, size)
		}
	}
	if rep != nil {
		rep.ByYear = sortedYears(years)
	}
	return out, unavailableOrNil(rows.Err())
}

// sizeExpr is a record's size in bytes as counted by dry runs (octet_length exists in both
// SQLite ≥ 3.43 and PostgreSQL).
const sizeExpr = `octet_length(id) + COALESCE(octet_length(reason), 0) + COALESCE(octet_length(payload), 0)`

// survey fills rep's Candidates (and, for a dry run, Bytes and ByYear) from partition.
func (s *Store) survey(ctx context.Context, rep *records.MoveReport, part, where string, detail bool, args ...any) error {
	if !detail {
		return unavailableOrNil(s.rdb.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM records_`+part+` WHERE `+where), args...).Scan(&rep.Candidates))
	}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT deleted_at, `+sizeExpr+` FROM records_`+part+` WHERE `+where), args...)
	if err != nil {
		return unavailable(err)
	}
	defer rows.Close()
	years := map[int]*records.YearCount{}
	for rows.Next() {
		var at sql.NullInt64
		var size int64
		if err := rows.Scan(&at, &size); err != nil {
			return unavailable(err)
		}
		rep.Candidates++
		rep.Bytes += size
		addYear(years, at, size)
	}
	rep.ByYear = sortedYears(years)
	return unavailableOrNil(rows.Err())
}

func addYear(years map[int]*records.YearCount, at sql.NullInt64, size int64) {
	y := 0
	if at.Valid {
		y = time.UnixMilli(at.Int64).UTC().Year()
	}
	c := years[y]
	if c == nil {
		c = &records.YearCount{Year: y}
		years[y] = c
	}
	c.Records++
	c.Bytes += size
}

func sortedYears(years map[int]*records.YearCount) []records.YearCount {
	out := make([]records.YearCount, 0, len(years))
	for _, c := range years {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Year < out[j].Year })
	return out
}

func unavailableOrNil(err error) error {
	if err == nil {
		return nil
	}
	return unavailable(err)
}

// sourceCount is the source's number of records in live and deleted, from its ledger.
func (s *Store) sourceCount(ctx context.Context, source string) (int64, error) {
	var n int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT count FROM records_ledger WHERE source = ?`), source).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, unavailableOrNil(err)
}

// moveBatch moves the rows that sel returns (read inside the transaction) from one partition
// to the other: copy, then delete, then the manifest and its audit event, all in one
// transaction. It returns how many records it moved and, when cursor is not nil, sets it to
// the highest id moved.
func (s *Store) moveBatch(ctx context.Context, rep *records.MoveReport, kind, from, to, actor string, extra json.RawMessage, cursor *string, sel func(tx *sql.Tx) (*sql.Rows, error)) (int, error) {
	var n int
	var batchSum uint64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		l, err := s.lockLedger(ctx, tx, rep.Source)
		if err != nil {
			return err
		}
		rows, err := sel(tx)
		if err != nil {
			return unavailable(err)
		}
		var ids []string
		var sum uint64
		last := "" // the last id in the database's order (its collation), for the cursor
		for rows.Next() {
			var r row
			if err := rows.Scan(r.dest()...); err != nil {
				rows.Close()
				return unavailable(err)
			}
			if from == records.Live && to == records.Deleted && !r.deletedAt.Valid {
				rows.Close()
				return erasure.Errorf(erasure.EINTERNAL, "refusing to archive a record that is not a tombstone")
			}
			ids = append(ids, r.id)
			last = r.id
			sum += r.sum()
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable(err)
		}
		if len(ids) == 0 {
			return nil
		}
		sort.Strings(ids)
		var move int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM records_moves`).Scan(&move); err != nil {
			return unavailable(err)
		}
		in := placeholders(len(ids))
		args := append([]any{move, rep.Source}, anys(ids)...)
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO records_`+to+` (`+cols+`) SELECT source, id, version, deleted_at, reason, updated_at, CAST(? AS BIGINT), payload, erased FROM records_`+from+` WHERE source = ? AND id IN `+in), args...)
		if err != nil {
			return unavailable(err)
		}
		if c, _ := res.RowsAffected(); c != int64(len(ids)) {
			return erasure.Errorf(erasure.EINTERNAL, "%s copied %d records of %d: rolled back", kind, c, len(ids))
		}
		res, err = tx.ExecContext(ctx, s.q(`DELETE FROM records_`+from+` WHERE source = ? AND id IN `+in), args[1:]...)
		if err != nil {
			return unavailable(err)
		}
		if c, _ := res.RowsAffected(); c != int64(len(ids)) {
			return erasure.Errorf(erasure.EINTERNAL, "%s deleted %d records of %d: rolled back", kind, c, len(ids))
		}
		l.move(from, to, int64(len(ids)))
		if err := l.save(ctx, tx); err != nil {
			return unavailable(err)
		}
		now := s.opts.Now()
		m := records.Manifest{Move: move, Source: rep.Source, Kind: kind, From: from, To: to, Count: int64(len(ids)), Checksum: records.Checksum(sum)}
		if s.opts.Hasher != nil {
			m.FirstHash, m.LastHash = records.RecordHash(s.opts.Hasher, rep.Source, ids[0]), records.RecordHash(s.opts.Hasher, rep.Source, ids[len(ids)-1])
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO records_moves (id, source, kind, target, count, checksum, first_id, last_id, at, actor, ids_hashed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`),
			move, rep.Source, kind, to, m.Count, int64(sum), m.FirstHash, m.LastHash, now.UnixMilli(), actor); err != nil {
			return unavailable(err)
		}
		m.Criteria = extra
		data, _ := json.Marshal(m)
		typ := records.EventArchived
		if kind == records.KindRestore {
			typ = records.EventRestored
		}
		if err := s.opts.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: now, Actor: actorOr(actor), Type: typ, Data: data}); err != nil {
			return unavailable(err)
		}
		n, batchSum = len(ids), sum
		if cursor != nil {
			*cursor = last
		}
		return nil
	})
	if err != nil {
		return 0, err // the batch rolled back
	}
	if n > 0 {
		rep.Moved += int64(n)
		rep.Batches++
		rep.Checksum += records.Checksum(batchSum)
	}
	return n, nil
}

func actorOr(a string) string {
	if a == "" {
		return "records"
	}
	return a
}

func batchSize(n int) (int, error) {
	switch {
	case n == 0:
		return records.DefaultBatch, nil
	case n < 0 || n > records.MaxBatchSize:
		return 0, erasure.Errorf(erasure.EINVALID, "batch size must be between 1 and %d", records.MaxBatchSize)
	}
	return n, nil
}

func placeholders(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func chunks(ss []string, n int) [][]string {
	var out [][]string
	for len(ss) > n {
		out = append(out, ss[:n])
		ss = ss[n:]
	}
	if len(ss) > 0 {
		out = append(out, ss)
	}
	return out
}

func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Reconcile implements records.Service.
func (s *Store) Reconcile(ctx context.Context, o records.ReconcileOptions) (*records.MoveReport, error) {
	if err := records.ValidSource(o.Source); err != nil {
		return nil, err
	}
	batch, err := batchSize(o.BatchSize)
	if err != nil {
		return nil, err
	}
	missing := 0
	for _, id := range o.Control {
		if !o.Present[id] {
			missing++
		}
	}
	if missing > 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "%d of %d control ids are absent from the present list: the list looks incomplete, nothing was tombstoned", missing, len(o.Control))
	}
	rep := &records.MoveReport{Source: o.Source, Kind: records.KindReconcile, DryRun: o.DryRun}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT id FROM records_live WHERE source = ? AND deleted_at IS NULL`), o.Source)
	if err != nil {
		return nil, unavailable(err)
	}
	var absent []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, unavailable(err)
		}
		rep.SourceRecords++
		if !o.Present[id] {
			absent = append(absent, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	rep.Candidates, rep.Remaining = int64(len(absent)), int64(len(absent))
	if rep.SourceRecords > 0 {
		rep.Share = float64(rep.Candidates) / float64(rep.SourceRecords)
	}
	if o.DryRun {
		return rep, nil
	}
	if rep.Share > s.opts.MaxReconcileShare && !o.Force {
		return rep, erasure.Errorf(erasure.ECONFLICT, "reconcile would tombstone %d of %d live records of %s (%.0f%%, above the %.0f%% guard): check the present list, or force it",
			rep.Candidates, rep.SourceRecords, o.Source, 100*rep.Share, 100*s.opts.MaxReconcileShare)
	}
	reason := o.Reason
	if reason == "" {
		reason = records.DefaultReconcileReason
	}
	for _, chunk := range chunks(absent, batch) {
		var n int64
		var sum uint64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			l, err := s.lockLedger(ctx, tx, o.Source)
			if err != nil {
				return err
			}
			now := s.opts.Now()
			n, sum = 0, 0
			for _, id := range chunk {
				cur, part, err := s.current(ctx, tx, o.Source, id)
				if err != nil {
					return unavailable(err)
				}
				if cur == nil || part != records.Live || cur.deletedAt.Valid {
					continue // changed since the scan
				}
				rec, _, _, err := s.apply(ctx, tx, l, o.Source, records.Write{ID: id, Deleted: true, Reason: reason}, now.UnixMilli())
				if err != nil {
					return unavailable(err)
				}
				n++
				sum += uint64(records.RecordChecksum(rec.Source, rec.ID, rec.Version, rec.Payload, rec.DeletedAt, rec.Reason))
			}
			if err := l.save(ctx, tx); err != nil {
				return unavailable(err)
			}
			data, _ := json.Marshal(map[string]any{"source": o.Source, "count": n, "checksum": records.Checksum(sum), "reason": reason})
			if err := s.opts.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: now, Actor: actorOr(o.Actor), Type: records.EventReconciled, Data: data}); err != nil {
				return unavailable(err)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		rep.Moved += n
		rep.Checksum += records.Checksum(sum)
		rep.Batches++
		if o.Progress != nil {
			o.Progress(rep.Moved, rep.Candidates)
		}
	}
	rep.Remaining = 0
	s.log.Info("reconcile", "source", o.Source, "tombstoned", rep.Moved)
	return rep, nil
}

// Verify implements records.Service. It reads both partitions in one read transaction
// (REPEATABLE READ on PostgreSQL), so that every figure comes from the same snapshot.
func (s *Store) Verify(ctx context.Context, source string) (*records.VerifyReport, error) {
	filter, args := "", []any{}
	if source != "" {
		if err := records.ValidSource(source); err != nil {
			return nil, err
		}
		filter, args = ` WHERE source = ?`, []any{source}
	}
	// One read transaction: every figure comes from the same snapshot.
	var txo *sql.TxOptions
	if s.pg {
		txo = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	rtx, err := s.rdb.BeginTx(ctx, txo)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rtx.Rollback()
	rep := &records.VerifyReport{}
	bySource := map[string]*records.SourceReport{}
	get := func(src string) *records.SourceReport {
		r := bySource[src]
		if r == nil {
			r = &records.SourceReport{Source: src}
			bySource[src] = r
		}
		return r
	}
	type moveKey struct {
		move int64
		part string
	}
	type agg struct {
		n   int64
		sum uint64
	}
	moved := map[moveKey]*agg{}
	for _, part := range []string{records.Live, records.Deleted} {
		rows, err := rtx.QueryContext(ctx, s.q(`SELECT `+cols+` FROM records_`+part+filter), args...)
		if err != nil {
			return nil, unavailable(err)
		}
		nonTomb := 0
		for rows.Next() {
			var r row
			if err := rows.Scan(r.dest()...); err != nil {
				rows.Close()
				return nil, unavailable(err)
			}
			sr := get(r.source)
			h := r.sum()
			sr.Checksum += records.Checksum(h)
			if part == records.Live {
				sr.Live++
				if r.deletedAt.Valid {
					sr.LiveTombstones++
				}
			} else {
				sr.Deleted++
				if !r.deletedAt.Valid {
					nonTomb++
				}
			}
			if r.movedIn.Valid {
				k := moveKey{r.movedIn.Int64, part}
				a := moved[k]
				if a == nil {
					a = &agg{}
					moved[k] = a
				}
				a.n++
				a.sum += h
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, unavailable(err)
		}
		if nonTomb > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%d records in deleted are not tombstones", nonTomb))
		}
	}
	var dup int64
	dupFilter := ""
	if source != "" {
		dupFilter = ` AND d.source = ?`
	}
	if err := rtx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM records_deleted d WHERE EXISTS (SELECT 1 FROM records_live l WHERE l.source = d.source AND l.id = d.id)`+dupFilter), args...).Scan(&dup); err != nil {
		return nil, unavailable(err)
	}
	if dup > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d ids are in both live and deleted", dup))
	}
	rows, err := rtx.QueryContext(ctx, s.q(`SELECT source, count, checksum, live_count, deleted_count FROM records_ledger`+filter), args...)
	if err != nil {
		return nil, unavailable(err)
	}
	ledgerParts := map[string][2]int64{}
	for rows.Next() {
		var src string
		var n, sum, live, deleted int64
		if err := rows.Scan(&src, &n, &sum, &live, &deleted); err != nil {
			rows.Close()
			return nil, unavailable(err)
		}
		sr := get(src)
		sr.LedgerCount, sr.LedgerChecksum = n, records.Checksum(uint64(sum))
		ledgerParts[src] = [2]int64{live, deleted}
	}
	rows.Close()
	rows, err = rtx.QueryContext(ctx, s.q(`SELECT id, source, kind, target, count, checksum FROM records_moves`+filter+` ORDER BY id`), args...)
	if err != nil {
		return nil, unavailable(err)
	}
	for rows.Next() {
		var id, n, sum int64
		var src, kind, target string
		if err := rows.Scan(&id, &src, &kind, &target, &n, &sum); err != nil {
			rows.Close()
			return nil, unavailable(err)
		}
		sr := get(src)
		sr.Moves++
		other := records.Live
		if target == records.Live {
			other = records.Deleted
		}
		if a := moved[moveKey{id, other}]; a != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s move %d: %d records attributed to it are in %s, not %s", kind, id, a.n, other, target))
		}
		a := moved[moveKey{id, target}]
		switch {
		case a == nil:
		case a.n > n:
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s move %d: %d records attributed to it, its manifest says %d", kind, id, a.n, n))
		case a.n == n && a.sum != uint64(sum):
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s move %d: checksum %s differs from its manifest's %s", kind, id, records.Checksum(a.sum), records.Checksum(uint64(sum))))
		case a.n == n:
			sr.MovesIntact++
		}
	}
	rows.Close()
	for _, sr := range bySource {
		if sr.Live+sr.Deleted != sr.LedgerCount || sr.Checksum != sr.LedgerChecksum {
			rep.Problems = append(rep.Problems, fmt.Sprintf("source %s: live ∪ deleted holds %d records (checksum %s), the ledger %d (checksum %s)",
				sr.Source, sr.Live+sr.Deleted, sr.Checksum, sr.LedgerCount, sr.LedgerChecksum))
		}
		if p := ledgerParts[sr.Source]; p != [2]int64{sr.Live, sr.Deleted} {
			rep.Problems = append(rep.Problems, fmt.Sprintf("source %s: %d live and %d deleted records, the ledger counts %d and %d", sr.Source, sr.Live, sr.Deleted, p[0], p[1]))
		}
		rep.Sources = append(rep.Sources, *sr)
	}
	sort.Slice(rep.Sources, func(i, j int) bool { return rep.Sources[i].Source < rep.Sources[j].Source })
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// Compact rebuilds a partition in id order so that its pages are full again. An archive
// deletes tombstones from all over the live partition and leaves its pages part empty (SQLite
// merges a page only when it is under a third full, PostgreSQL not at all), so a reindex still
// reads as many pages as before; compacting after a large archive makes the reindex cost
// follow the number of live records. It copies the partition into a new table and swaps it in,
// in one transaction: writers wait for it (readers do not, under WAL), and a crash leaves the
// old table. Dialect: SQLite copies the table's own DDL from sqlite_master; PostgreSQL uses
// CREATE TABLE … (LIKE … INCLUDING ALL) under an EXCLUSIVE lock (reads go on).
func (s *Store) Compact(ctx context.Context, partition string) (time.Duration, error) {
	if err := records.ValidPartition(partition); err != nil {
		return 0, err
	}
	start := time.Now()
	table := "records_" + partition
	tmp := table + "_compact"
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var ddl string
		if s.pg {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE `+table+` IN EXCLUSIVE MODE`); err != nil {
				return unavailable(err)
			}
			ddl = `CREATE TABLE ` + tmp + ` (LIKE ` + table + ` INCLUDING ALL)`
		} else {
			if err := tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&ddl); err != nil {
				return unavailable(err)
			}
			ddl = strings.Replace(ddl, table, tmp, 1)
		}
		for _, stmt := range []string{
			`DROP TABLE IF EXISTS ` + tmp,
			ddl,
			`INSERT INTO ` + tmp + ` (` + cols + `) SELECT ` + cols + ` FROM ` + table + ` ORDER BY source, id`,
			`DROP TABLE ` + table,
			`ALTER TABLE ` + tmp + ` RENAME TO ` + table,
		} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return unavailable(fmt.Errorf("compact %s: %w", partition, err))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	s.log.Info("compact", "partition", partition, "took", d)
	return d, nil
}
