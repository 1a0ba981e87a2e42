package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"erasure"
	"erasure/store/migrate"
)

var _ erasure.ReportStore = (*DB)(nil)

// RequestCounts implements erasure.ReportStore. It reads the index requests_status (status, id)
// only, one range per status, never the table.
func (db *DB) RequestCounts(ctx context.Context, statuses ...erasure.RequestStatus) (map[erasure.RequestStatus]int, error) {
	if len(statuses) == 0 {
		statuses = []erasure.RequestStatus{erasure.RequestPending, erasure.RequestRunning, erasure.RequestCompleted, erasure.RequestFailed, erasure.RequestCancelled}
	}
	out := map[erasure.RequestStatus]int{}
	for _, st := range statuses {
		var n int
		if err := db.readRow(ctx, `SELECT count(*) FROM requests WHERE status = ?`, st).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			out[st] = n
		}
	}
	return out, nil
}

// indexedBy names the index a SQLite query must use where its planner, without fresh
// statistics, picks a worse one; PostgreSQL plans with its own statistics.
func (db *DB) indexedBy(index string) string {
	if db.dialect == migrate.SQLite {
		return ` INDEXED BY ` + index
	}
	return ""
}

const dayMS = int64(24 * time.Hour / time.Millisecond)

// Activity implements erasure.ReportStore: ended requests through requests_finished
// (finished_at, status), failed ones through requests_failed_updated.
func (db *DB) Activity(ctx context.Context, since time.Time) ([]erasure.ActivityDay, error) {
	start := since.UTC().Truncate(24 * time.Hour)
	today := db.Now().UTC().Truncate(24 * time.Hour)
	if start.After(today) {
		start = today
	}
	days := int(today.Sub(start)/(24*time.Hour)) + 1
	out := make([]erasure.ActivityDay, days)
	for i := range out {
		out[i].Day = start.Add(time.Duration(i) * 24 * time.Hour)
	}
	add := func(d int64, st erasure.RequestStatus, n int) {
		if d < 0 || d >= int64(days) {
			return
		}
		switch st {
		case erasure.RequestCompleted:
			out[d].Completed += n
		case erasure.RequestCancelled:
			out[d].Cancelled += n
		case erasure.RequestFailed:
			out[d].Failed += n
		}
	}
	from := ms(start)
	rows, err := db.readQuery(ctx, `SELECT (finished_at - CAST(? AS BIGINT)) / `+strconv.FormatInt(dayMS, 10)+` AS d, status, count(*) FROM requests
		WHERE finished_at IS NOT NULL AND finished_at >= ? GROUP BY d, status`, from, from)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d int64
		var st erasure.RequestStatus
		var n int
		if err := rows.Scan(&d, &st, &n); err != nil {
			rows.Close()
			return nil, err
		}
		add(d, st, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.readQuery(ctx, `SELECT (updated_at - CAST(? AS BIGINT)) / `+strconv.FormatInt(dayMS, 10)+` AS d, count(*) FROM requests`+db.indexedBy("requests_failed_updated")+`
		WHERE status = 'failed' AND updated_at >= ? GROUP BY d`, from, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d int64
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return nil, err
		}
		add(d, erasure.RequestFailed, n)
	}
	return out, rows.Err()
}

// DatasetLoads implements erasure.ReportStore: unfinished tasks through tasks_dataset_state
// (dataset, state), the oldest one through tasks_dataset_open (dataset, request_id).
func (db *DB) DatasetLoads(ctx context.Context, datasets []string) ([]erasure.DatasetLoad, error) {
	out := make([]erasure.DatasetLoad, 0, len(datasets))
	for _, ds := range datasets {
		l := erasure.DatasetLoad{Dataset: ds, ByState: map[erasure.TaskState]int{}}
		// The second term restates the partial index tasks_dataset_open's predicate, so that
		// the planners (SQLite's above all) use it instead of reading every task.
		rows, err := db.readQuery(ctx, `SELECT state, count(*) FROM tasks
			WHERE dataset = ? AND state IN ('blocked', 'pending', 'running', 'dispatched', 'queued', 'failed')
				AND state NOT IN ('done', 'skipped', 'cancelled') GROUP BY state`, ds)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var st erasure.TaskState
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				rows.Close()
				return nil, err
			}
			l.ByState[st] = n
			if st == erasure.TaskFailed {
				l.Failed += n
			} else {
				l.Backlog += n
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if l.Backlog+l.Failed > 0 {
			var oldest sql.NullString
			if err := db.readRow(ctx, `SELECT min(request_id) FROM tasks WHERE dataset = ? AND state NOT IN ('done', 'skipped', 'cancelled')`, ds).Scan(&oldest); err != nil {
				return nil, err
			}
			if oldest.Valid {
				var created int64
				err := db.readRow(ctx, `SELECT created_at FROM requests WHERE id = ?`, oldest.String).Scan(&created)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return nil, err
				}
				if err == nil {
					t := fromMS(created)
					l.Oldest, l.OldestSince = oldest.String, &t
				}
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// SweepPage implements erasure.ReportStore. The cursor is "STARTED.ID" of the last sweep of
// the previous page (started in unix milliseconds).
func (db *DB) SweepPage(ctx context.Context, f erasure.SweepFilter) (erasure.SweepPage, error) {
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	var where []string
	var args []any
	if f.Dataset != "" {
		where = append(where, `dataset = ?`)
		args = append(args, f.Dataset)
	}
	if f.Cursor != "" {
		started, id, ok := strings.Cut(f.Cursor, ".")
		at, err := strconv.ParseInt(started, 10, 64)
		if !ok || err != nil || id == "" || len(id) > 64 {
			return erasure.SweepPage{}, erasure.Errorf(erasure.EINVALID, "bad sweep cursor")
		}
		where = append(where, `(started < ? OR (started = ? AND id < ?))`)
		args = append(args, at, at, id)
	}
	q := `SELECT ` + sweepColumns + ` FROM sweeps`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += fmt.Sprintf(` ORDER BY started DESC, id DESC LIMIT %d`, limit+1)
	sweeps, err := db.sweeps(ctx, q, args...)
	if err != nil {
		return erasure.SweepPage{}, err
	}
	page := erasure.SweepPage{Sweeps: sweeps}
	if len(sweeps) > limit {
		page.Sweeps = sweeps[:limit]
		last := page.Sweeps[limit-1]
		page.Next = strconv.FormatInt(ms(last.Started), 10) + "." + last.ID
	}
	return page, nil
}
