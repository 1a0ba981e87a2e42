package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// Policies: the hide action, retention and replay (see the package documentation).

var (
	_ erasure.Hider    = (*Conn)(nil)
	_ erasure.Retainer = (*Conn)(nil)
	_ erasure.Replayer = (*Conn)(nil)
)

// Hides reports whether the dataset declares a hide action.
func (c *Conn) Hides() bool { return c.cfg.Hide != nil }

// Hide runs the hide action: one UPDATE of the subject's rows (keys and where conditions as
// for Erase) setting the hide columns. Removed counts the rows updated. A subject lacking a
// key type is skipped. Errors are classified as Erase's.
func (c *Conn) Hide(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	h := c.cfg.Hide
	if h == nil {
		return erasure.Outcome{}, erasure.Permanentf("dataset %s declares no hide action", c.ds.Name)
	}
	db, cols, err := c.open(ctx)
	if err != nil {
		return erasure.Outcome{}, err
	}
	chunks, skip := c.keyValues(s, cols)
	if skip != "" {
		return erasure.Outcome{Detail: skip}, nil
	}
	setCols := make([]string, 0, len(h.Set))
	for col := range h.Set {
		setCols = append(setCols, col)
	}
	sort.Strings(setCols)
	var hidden int64
	err = combos(chunks, func(vals [][]any) error {
		q := &sqlBuf{d: c.d}
		var sets []string
		for _, col := range h.Columns {
			sets = append(sets, c.d.quote(col)+" = NULL")
		}
		for _, col := range setCols {
			sets = append(sets, c.d.quote(col)+" = "+q.arg(h.Set[col]))
		}
		head := "UPDATE " + c.d.table(&c.cfg) + " SET " + strings.Join(sets, ", ")
		q.w(head, " WHERE ", c.match(q, vals))
		res, err := db.ExecContext(ctx, q.String(), q.args...)
		if err != nil {
			return c.classify(ctx, "hiding", err)
		}
		n, _ := res.RowsAffected()
		hidden += n
		return nil
	})
	return erasure.Outcome{Removed: hidden, Detail: fmt.Sprintf("hid %d rows of %s", hidden, c.tableName())}, err
}

// cutoffArg is the retention cutoff as the retention column can be compared with it: by
// format, or (auto) by the column's type: a time for date and time types, Unix seconds for
// integer columns, text otherwise (RFC 3339 in PostgreSQL and MySQL, SQLite's own
// "2006-01-02 15:04:05" in SQLite, which also stores DATE and DATETIME columns as text).
func (c *Conn) cutoffArg(cols map[string]string, col, format string, cutoff time.Time) any {
	cutoff = cutoff.UTC()
	switch format {
	case "unix":
		return cutoff.Unix()
	case "unix_ms":
		return cutoff.UnixMilli()
	case "rfc3339":
		return cutoff.Format(time.RFC3339)
	}
	typ := cols[c.fold(col)]
	base, _, _ := strings.Cut(typ, "(")
	switch c.d.name {
	case "postgres":
		switch {
		case strings.HasPrefix(base, "timestamp"), base == "date":
			return cutoff
		case base == "smallint", base == "integer", base == "bigint", base == "numeric", base == "real", base == "double precision":
			return cutoff.Unix()
		}
		return cutoff.Format(time.RFC3339)
	case "mysql":
		switch base {
		case "datetime", "timestamp", "date":
			return cutoff
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "float", "double":
			return cutoff.Unix()
		}
		return cutoff.Format(time.RFC3339)
	}
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "DATE"), strings.Contains(t, "TIME"):
		return cutoff.Format("2006-01-02 15:04:05")
	case affinity(typ) == "integer", affinity(typ) == "real":
		return cutoff.Unix()
	}
	return cutoff.Format("2006-01-02 15:04:05")
}

// expired writes the predicate of the rows past their retention: the column before the
// cutoff, and the dataset's where conditions.
func (c *Conn) expired(q *sqlBuf, col string, cutoff any) string {
	p := c.d.quote(col) + " < " + q.arg(cutoff)
	if w := c.where(q, ""); w != "" {
		p += " AND " + w
	}
	return p
}

// Expire implements erasure.Retainer: it counts the rows whose retention column is before
// cutoff (and that satisfy the where conditions), asks approve, then deletes them in
// statements of at most batch rows each, run by the database (the addressing of Erase), until
// one deletes fewer. Rows whose column is NULL are kept.
func (c *Conn) Expire(ctx context.Context, cutoff time.Time, approve func(int64) error) (erasure.RetentionResult, error) {
	r := c.ds.Retention
	if r == nil {
		return erasure.RetentionResult{}, erasure.Errorf(erasure.EINVALID, "dataset %s has no retention policy", c.ds.Name)
	}
	db, cols, err := c.open(ctx)
	if err != nil {
		return erasure.RetentionResult{}, err
	}
	if _, ok := cols[c.fold(r.Column)]; !ok {
		return erasure.RetentionResult{}, erasure.Permanent(erasure.Errorf(erasure.EINVALID, "dataset %s: table %s has no retention column %s", c.ds.Name, c.tableName(), r.Column))
	}
	arg := c.cutoffArg(cols, r.Column, r.Format, cutoff)
	var res erasure.RetentionResult
	count := &sqlBuf{d: c.d}
	count.w("SELECT COUNT(*) FROM ", c.d.table(&c.cfg), " WHERE ", c.expired(count, r.Column, arg))
	if err := db.QueryRowContext(ctx, count.String(), count.args...).Scan(&res.Expired); err != nil {
		return res, c.classify(ctx, "counting expired rows", err)
	}
	if err := approve(res.Expired); err != nil {
		return res, err
	}
	q := &sqlBuf{d: c.d}
	t := c.d.table(&c.cfg)
	p := c.expired(q, r.Column, arg)
	n := strconv.Itoa(c.cfg.Batch)
	switch c.d.name {
	case "postgres":
		q.w("DELETE FROM ", t, " WHERE ctid = ANY(ARRAY(SELECT ctid FROM ", t, " WHERE ", p, " LIMIT ", n, ")) AND ", p)
	case "mysql":
		q.w("DELETE FROM ", t, " WHERE ", p, " LIMIT ", n)
	default:
		q.w("DELETE FROM ", t, " WHERE rowid IN (SELECT rowid FROM ", t, " WHERE ", p, " LIMIT ", n, ")")
	}
	for {
		out, err := db.ExecContext(ctx, q.String(), q.args...)
		if err != nil {
			return res, c.classify(ctx, "deleting expired rows", err)
		}
		k, err := out.RowsAffected()
		if err != nil {
			return res, c.classify(ctx, "deleting expired rows", err)
		}
		res.Removed += k
		if k < int64(c.cfg.Batch) {
			return res, nil
		}
	}
}

// Replay implements erasure.Replayer for a table keyed by one column: the distinct non-NULL
// key values (of the rows the where conditions select) are read in key order, batch values
// at a time, each page after the last value of the one before; the values match accepts are
// erased as Erase does (counted only when dryRun). Scanned and Matched count key values,
// Removed rows.
func (c *Conn) Replay(ctx context.Context, match func(string) bool, dryRun bool, progress func(erasure.ReplayProgress)) (erasure.ReplayResult, error) {
	var res erasure.ReplayResult
	keys := c.cfg.keyColumns()
	if len(keys) != 1 {
		return res, erasure.Permanent(erasure.Errorf(erasure.EINVALID, "dataset %s is keyed by %d columns; a replay by scan needs one", c.ds.Name, len(keys)))
	}
	k := keys[0]
	db, cols, err := c.open(ctx)
	if err != nil {
		return res, err
	}
	t, col := c.d.table(&c.cfg), c.d.quote(k.Column)
	var total int64
	tq := &sqlBuf{d: c.d}
	tq.w("SELECT COUNT(DISTINCT ", col, ") FROM ", t, " WHERE ", col, " IS NOT NULL")
	if w := c.where(tq, ""); w != "" {
		tq.w(" AND ", w)
	}
	if err := db.QueryRowContext(ctx, tq.String(), tq.args...).Scan(&total); err != nil {
		return res, c.classify(ctx, "counting keys", err)
	}
	report := func() {
		if progress != nil {
			progress(erasure.ReplayProgress{ReplayResult: res, Total: total})
		}
	}
	var last any
	for {
		q := &sqlBuf{d: c.d}
		q.w("SELECT DISTINCT ", col, " FROM ", t, " WHERE ", col, " IS NOT NULL")
		if last != nil {
			q.w(" AND ", col, " > ", q.arg(last))
		}
		if w := c.where(q, ""); w != "" {
			q.w(" AND ", w)
		}
		q.w(" ORDER BY ", col, " LIMIT ", strconv.Itoa(c.cfg.Batch))
		values, err := c.readValues(ctx, db, q)
		if err != nil {
			return res, err
		}
		var hits []erasure.Identifier
		for _, v := range values {
			res.Scanned++
			if match(v) {
				hits = append(hits, erasure.Identifier{Type: k.Identifier, Value: v})
			}
		}
		res.Matched += int64(len(hits))
		if len(hits) > 0 && !dryRun {
			out, err := c.Erase(ctx, erasure.NewSubject(hits...))
			res.Removed += out.Removed
			if err != nil {
				return res, err
			}
		}
		report()
		if len(values) < c.cfg.Batch {
			return res, nil
		}
		v, ok := c.value(cols, k.Column, values[len(values)-1])
		if !ok {
			return res, erasure.Permanentf("dataset %s: a key value read back cannot be bound again to column %s", c.ds.Name, k.Column)
		}
		last = v
	}
}

// readValues runs q and returns its one column as text.
func (c *Conn) readValues(ctx context.Context, db *sql.DB, q *sqlBuf) ([]string, error) {
	rows, err := db.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, c.classify(ctx, "reading keys", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, c.classify(ctx, "reading keys", err)
		}
		if v.Valid {
			out = append(out, v.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, c.classify(ctx, "reading keys", err)
	}
	return out, nil
}
