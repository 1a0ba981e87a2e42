package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"erasure"
)

var _ erasure.Sweeper = (*Conn)(nil)

// sweepTable is the temporary table holding a sweep's keys. Its columns (erasure_seq,
// erasure_k0...) are named so as not to clash with the swept table's.
const sweepTable = "erasure_sweep_keys"

// sweepLoadRows is the number of key tuples per multi-row INSERT (MySQL, SQLite).
const sweepLoadRows = 500

// Sweep erases every queued subject at once, for warehouse tables (method: offline). On a
// dedicated connection it loads the subjects' key values into a temporary table (COPY in
// PostgreSQL, multi-row INSERTs elsewhere), then erases the rows joined to it with set-based
// statements run by the database's own engine, each covering at most batch queued keys, all
// in one transaction: readers see the table before or after the sweep, never between, and a
// crash or error leaves it as it was (running the sweep again is safe). Subjects lacking a key
// type, and values their column cannot hold, are left out. Removed counts the rows erased;
// Scanned counts the key tuples loaded. Errors are classified as for Erase.
func (c *Conn) Sweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	db, cols, err := c.open(ctx)
	if err != nil {
		return erasure.SweepResult{}, err
	}
	tuples, owners, exact := c.sweepTuples(batch, cols)
	if len(tuples) == 0 {
		return erasure.SweepResult{}, nil
	}
	start := time.Now()
	sg := &sweepGuard{g: erasure.GuardFrom(ctx), batch: batch, owners: owners, exact: exact}
	removed, err := c.sweepOn(ctx, db, tuples, sg)
	if err != nil {
		// Classified once the connection is back in the pool: classifying may query
		// (SQLite foreign keys), and a SQLite pool has one connection.
		return erasure.SweepResult{}, c.classify(ctx, "sweeping", err)
	}
	c.logger().LogAttrs(ctx, slog.LevelInfo, "sweep", slog.Int("subjects", len(batch)), slog.Int("keys", len(tuples)),
		slog.Int64("rows", removed), slog.Duration("took", time.Since(start)))
	return erasure.SweepResult{Scanned: int64(len(tuples)), Removed: removed, PerTask: sg.perTask()}, nil
}

// sweepOn runs the sweep on a connection of its own, returned to the pool before it returns.
func (c *Conn) sweepOn(ctx context.Context, db *sql.DB, tuples [][]any, sg *sweepGuard) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if c.d.name == "postgres" {
		return c.sweepPostgres(ctx, conn, tuples, sg)
	}
	return c.sweepSQL(ctx, conn, tuples, sg)
}

// sweepGuard is a sweep's guard: max_removed for each subject (but those forced past it) and
// max_removed_share of the table (one partition), both checked inside the sweep's
// transaction, which rolls back when either is exceeded.
type sweepGuard struct {
	g     erasure.Guard
	batch []erasure.SweepSubject
	// owners[i] are the indexes in batch of the subjects whose values make key tuple i.
	owners [][]int
	// exact[i] says that key column i holds characters, compared exactly (see textKey).
	exact []bool
	// rows is the dataset's rows before the sweep (for the share).
	rows int64
	// counts are the rows matching each key tuple (by erasure_seq), counted in the sweep's
	// transaction before its statements.
	counts map[int64]int64
}

// totals returns the rows matching each subject of the batch (a row of two subjects counts
// for both).
func (sg *sweepGuard) totals() []int64 {
	totals := make([]int64, len(sg.batch))
	for seq, n := range sg.counts {
		if seq < 0 || seq >= int64(len(sg.owners)) {
			continue
		}
		for _, i := range sg.owners[seq] {
			totals[i] += n
		}
	}
	return totals
}

// perTask is what the sweep removed for each task's subject: the rows its key tuples matched.
func (sg *sweepGuard) perTask() map[int64]int64 {
	out := make(map[int64]int64, len(sg.batch))
	for i, n := range sg.totals() {
		out[sg.batch[i].TaskID] += n
	}
	return out
}

// count reads the rows matching each key tuple into sg.counts.
func (sg *sweepGuard) count(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) error {
	sg.counts = map[int64]int64{}
	for rows.Next() {
		var seq, n int64
		if err := rows.Scan(&seq, &n); err != nil {
			rows.Close()
			return err
		}
		sg.counts[seq] = n
	}
	rows.Close()
	return rows.Err()
}

// perSubject reports whether some subject of the sweep is held to max_removed.
func (sg *sweepGuard) perSubject() bool {
	if sg.g.MaxRemoved <= 0 {
		return false
	}
	for _, s := range sg.batch {
		if !s.OverrideGuard {
			return true
		}
	}
	return false
}

// share reports whether the sweep is held to max_removed_share.
func (sg *sweepGuard) share() bool { return sg.g.MaxRemovedShare > 0 && sg.g.MaxRemovedShare < 1 }

// checkSubjects returns a *GuardError naming the tasks whose subjects would remove more than
// max_removed rows, given the rows matching each key tuple (sg.counts).
func (c *Conn) checkSubjects(sg *sweepGuard) error {
	ge := &erasure.GuardError{Dataset: c.ds.Name, Unit: "rows", Limit: sg.g.MaxRemoved}
	for i, n := range sg.totals() {
		if n > sg.g.MaxRemoved && !sg.batch[i].OverrideGuard {
			ge.Tasks = append(ge.Tasks, sg.batch[i].TaskID)
			ge.Count = max(ge.Count, n)
		}
	}
	if len(ge.Tasks) == 0 {
		return nil
	}
	return erasure.Permanent(ge)
}

// guardQueries returns the statement counting the matching rows of each key tuple and the one
// counting the dataset's rows (where conditions apply).
func (c *Conn) guardQueries(exact []bool) (perTuple string, perTupleArgs []any, rows string, rowsArgs []any) {
	t := c.d.table(&c.cfg)
	keys := "k"
	src := sweepTable
	if c.d.name == "sqlite" {
		src = "temp." + sweepTable
	}
	var on []string
	for i, k := range c.cfg.keyColumns() {
		col, key := "t0."+c.d.quote(k.Column), keys+".erasure_k"+strconv.Itoa(i)
		on = append(on, col+" = "+key)
		if exact[i] {
			// Counted as the sweep matches: exactly, whatever the collation (textKey).
			on = append(on, c.d.exactColumn(col)+" = "+c.d.exactColumn(key))
		}
	}
	q := &sqlBuf{d: c.d}
	q.w("SELECT k.erasure_seq, COUNT(*) FROM ", t, " AS t0 JOIN ", src, " AS k ON ", strings.Join(on, " AND "))
	var cond []string
	if w := c.where(q, "t0."); w != "" {
		cond = append(cond, w)
	}
	if c.cfg.Action == ActionRedact {
		cond = append(cond, c.unredacted(q, "t0."))
	}
	if len(cond) > 0 {
		q.w(" WHERE ", strings.Join(cond, " AND "))
	}
	q.w(" GROUP BY k.erasure_seq")
	r := &sqlBuf{d: c.d}
	r.w("SELECT COUNT(*) FROM ", t, " AS t0")
	if w := c.where(r, "t0."); w != "" {
		r.w(" WHERE ", w)
	}
	return q.String(), q.args, r.String(), r.args
}

// sweepTuples returns the distinct key tuples of the queued subjects (every combination of a
// subject's values for composite keys), converted for their columns; for each tuple the
// indexes in batch of the subjects it comes from; and which key columns are character
// columns, to be compared exactly (see textKey).
func (c *Conn) sweepTuples(batch []erasure.SweepSubject, cols map[string]string) ([][]any, [][]int, []bool) {
	keys := c.cfg.keyColumns()
	seen := map[string]int{}
	var out [][]any
	var owners [][]int
	exact := make([]bool, len(keys))
	for si, sub := range batch {
		per := make([][]any, len(keys))
		ok := true
		for i, k := range keys {
			for _, v := range sub.Subject.Values(k.Identifier) {
				if x, fits := c.value(cols, k.Column, v); fits {
					if tk, ok := x.(textKey); ok {
						x, exact[i] = string(tk), true
					}
					per[i] = append(per[i], x)
				}
			}
			ok = ok && len(per[i]) > 0
		}
		if !ok {
			continue
		}
		idx := make([]int, len(keys))
		for {
			t := make([]any, len(keys))
			var id strings.Builder
			for i := range keys {
				t[i] = per[i][idx[i]]
				fmt.Fprintf(&id, "%T:%v\x00", t[i], t[i])
			}
			if j, ok := seen[id.String()]; !ok {
				seen[id.String()] = len(out)
				out = append(out, t)
				owners = append(owners, []int{si})
			} else if o := owners[j]; o[len(o)-1] != si {
				owners[j] = append(o, si)
			}
			i := len(idx) - 1
			for ; i >= 0; i-- {
				if idx[i]++; idx[i] < len(per[i]) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}
	return out, owners, exact
}

// pgRows and sqlRows give pgx's and database/sql's rows the one shape sweepGuard.count reads.
type pgRows struct{ pgx.Rows }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// sweepCreate returns the statement creating the temporary key table with the key columns'
// types, copied from the swept table.
func (c *Conn) sweepCreate() string {
	var cols []string
	for i, k := range c.cfg.keyColumns() {
		cols = append(cols, c.d.quote(k.Column)+" AS erasure_k"+strconv.Itoa(i))
	}
	sel := strings.Join(cols, ", ") + " FROM " + c.d.table(&c.cfg) + " LIMIT 0"
	switch c.d.name {
	case "postgres":
		return "CREATE TEMPORARY TABLE " + sweepTable + " ON COMMIT DROP AS SELECT CAST(0 AS bigint) AS erasure_seq, " + sel
	case "mysql":
		return "CREATE TEMPORARY TABLE " + sweepTable + " (PRIMARY KEY (erasure_seq)) SELECT CAST(0 AS SIGNED) AS erasure_seq, " + sel
	default:
		return "CREATE TEMPORARY TABLE " + sweepTable + " AS SELECT 0 AS erasure_seq, " + sel
	}
}

// sweepStatement returns the statement erasing the rows of the keys with erasure_seq in
// [from, to).
func (c *Conn) sweepStatement(from, to int64, exact []bool) (string, []any) {
	q := &sqlBuf{d: c.d}
	t := c.d.table(&c.cfg)
	var on []string
	for i, k := range c.cfg.keyColumns() {
		col, key := "t0."+c.d.quote(k.Column), "k.erasure_k"+strconv.Itoa(i)
		on = append(on, col+" = "+key)
		if exact[i] {
			// The key table has the column's collation: compare exactly too (textKey).
			on = append(on, c.d.exactColumn(col)+" = "+c.d.exactColumn(key))
		}
	}
	join := strings.Join(on, " AND ")
	redact := c.cfg.Action == ActionRedact
	switch c.d.name {
	case "postgres":
		var set string
		if redact {
			set = c.setClause(q, "")
		}
		cond := "k.erasure_seq >= " + q.arg(from) + " AND k.erasure_seq < " + q.arg(to) + " AND " + join
		if w := c.where(q, "t0."); w != "" {
			cond += " AND " + w
		}
		if redact {
			cond += " AND " + c.unredacted(q, "t0.")
			q.w("UPDATE ", t, " AS t0 SET ", set, " FROM ", sweepTable, " AS k WHERE ", cond)
		} else {
			q.w("DELETE FROM ", t, " AS t0 USING ", sweepTable, " AS k WHERE ", cond)
		}
	case "mysql":
		head := "DELETE t0 FROM " + t + " AS t0 JOIN " + sweepTable + " AS k ON " + join
		if redact {
			head = "UPDATE " + t + " AS t0 JOIN " + sweepTable + " AS k ON " + join + " SET " + c.setClause(q, "t0.")
		}
		cond := "k.erasure_seq >= " + q.arg(from) + " AND k.erasure_seq < " + q.arg(to)
		if w := c.where(q, "t0."); w != "" {
			cond += " AND " + w
		}
		if redact {
			cond += " AND " + c.unredacted(q, "t0.")
		}
		q.w(head, " WHERE ", cond)
	default:
		head := "DELETE FROM " + t
		if redact {
			head = "UPDATE " + t + " SET " + c.setClause(q, "")
		}
		cond := "k.erasure_seq >= " + q.arg(from) + " AND k.erasure_seq < " + q.arg(to)
		if w := c.where(q, "t0."); w != "" {
			cond += " AND " + w
		}
		if redact {
			cond += " AND " + c.unredacted(q, "t0.")
		}
		q.w(head, " WHERE rowid IN (SELECT t0.rowid FROM ", t, " AS t0 JOIN temp.", sweepTable, " AS k ON ", join, " WHERE ", cond, ")")
	}
	return q.String(), q.args
}

// sweepPostgres runs the sweep through pgx on conn: COPY into the temporary table, then the
// chunked statements, in one transaction.
func (c *Conn) sweepPostgres(ctx context.Context, conn *sql.Conn, tuples [][]any, sg *sweepGuard) (removed int64, err error) {
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, c.sweepCreate()); err != nil {
			return err
		}
		cols := []string{"erasure_seq"}
		for i := range c.cfg.keyColumns() {
			cols = append(cols, "erasure_k"+strconv.Itoa(i))
		}
		rows := make([][]any, len(tuples))
		for i, t := range tuples {
			rows[i] = append([]any{int64(i)}, t...)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{sweepTable}, cols, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		// Temporary tables are never analyzed by autovacuum: without statistics the planner
		// guesses badly for the joins.
		if _, err := tx.Exec(ctx, "CREATE INDEX ON "+sweepTable+" (erasure_seq)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ANALYZE "+sweepTable); err != nil {
			return err
		}
		// The rows each key tuple matches: each task's count of rows removed, and what the
		// per-subject guard checks.
		perTupleQ, perTupleArgs, rowsQ, rowsArgs := c.guardQueries(sg.exact)
		matched, err := tx.Query(ctx, perTupleQ, perTupleArgs...)
		if err != nil {
			return err
		}
		if err := sg.count(pgRows{matched}); err != nil {
			return err
		}
		if sg.perSubject() {
			if err := c.checkSubjects(sg); err != nil {
				return err
			}
		}
		if sg.share() {
			if err := tx.QueryRow(ctx, rowsQ, rowsArgs...).Scan(&sg.rows); err != nil {
				return err
			}
		}
		for from := int64(0); from < int64(len(tuples)); from += int64(c.cfg.Batch) {
			stmt, args := c.sweepStatement(from, from+int64(c.cfg.Batch), sg.exact)
			tag, err := tx.Exec(ctx, stmt, args...)
			if err != nil {
				return err
			}
			removed += tag.RowsAffected()
		}
		if sg.share() {
			if err := sg.g.CheckShare(c.ds.Name, "table "+c.tableName(), removed, sg.rows); err != nil {
				removed = 0
				return err
			}
		}
		return tx.Commit(ctx)
	})
	return removed, err
}

// sweepSQL runs the sweep through database/sql on conn (MySQL, SQLite).
func (c *Conn) sweepSQL(ctx context.Context, conn *sql.Conn, tuples [][]any, sg *sweepGuard) (removed int64, err error) {
	drop := "DROP TEMPORARY TABLE IF EXISTS " + sweepTable
	if c.d.name == "sqlite" {
		drop = "DROP TABLE IF EXISTS temp." + sweepTable
	}
	// MySQL: temporary tables are not transactional, so the table is made before the
	// transaction (CREATE ... SELECT inside one is refused under GTID consistency) and
	// dropped after it, whatever happened.
	if _, err := conn.ExecContext(ctx, drop); err != nil {
		return 0, err
	}
	defer conn.ExecContext(context.Background(), drop)
	if _, err := conn.ExecContext(ctx, c.sweepCreate()); err != nil {
		return 0, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	nk := len(c.cfg.keyColumns())
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", nk+1), ", ") + ")"
	for from := 0; from < len(tuples); from += sweepLoadRows {
		to := min(from+sweepLoadRows, len(tuples))
		var b strings.Builder
		b.WriteString("INSERT INTO " + sweepTable + " VALUES ")
		args := make([]any, 0, (to-from)*(nk+1))
		for i := from; i < to; i++ {
			if i > from {
				b.WriteString(", ")
			}
			b.WriteString(row)
			args = append(args, int64(i))
			args = append(args, tuples[i]...)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return 0, err
		}
	}
	if c.d.name == "sqlite" {
		if _, err := tx.ExecContext(ctx, "CREATE INDEX temp.erasure_sweep_keys_seq ON "+sweepTable+" (erasure_seq)"); err != nil {
			return 0, err
		}
	}
	// The rows each key tuple matches: each task's count of rows removed, and what the
	// per-subject guard checks.
	perTupleQ, perTupleArgs, rowsQ, rowsArgs := c.guardQueries(sg.exact)
	rows, err := tx.QueryContext(ctx, perTupleQ, perTupleArgs...)
	if err != nil {
		return 0, err
	}
	if err := sg.count(sqlRows{rows}); err != nil {
		return 0, err
	}
	if sg.perSubject() {
		if err := c.checkSubjects(sg); err != nil {
			return 0, err
		}
	}
	if sg.share() {
		if err := tx.QueryRowContext(ctx, rowsQ, rowsArgs...).Scan(&sg.rows); err != nil {
			return 0, err
		}
	}
	for from := int64(0); from < int64(len(tuples)); from += int64(c.cfg.Batch) {
		stmt, args := c.sweepStatement(from, from+int64(c.cfg.Batch), sg.exact)
		res, err := tx.ExecContext(ctx, stmt, args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		removed += n
	}
	if sg.share() {
		if err := sg.g.CheckShare(c.ds.Name, "table "+c.tableName(), removed, sg.rows); err != nil {
			return 0, err // rolled back
		}
	}
	return removed, tx.Commit()
}
