package sqlconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"erasure"
	"erasure/registry"
)

// MaxResolved is the most values one provides entry may yield for one subject. More means the
// key is almost certainly wrong (it matches far more than one subject), so Resolve fails
// rather than returning a truncated or a wrong set.
const MaxResolved = 10_000

// inChunk is the most values of one key bound in one statement; more are split.
const inChunk = 500

// Conn is the connector of one `sql` dataset. It implements erasure.Eraser, Verifier,
// Resolver, Checker and Sweeper. It is safe for concurrent use.
type Conn struct {
	cfg Config
	d   dialect
	ds  *erasure.Dataset
	reg *registry.Config // the whole configuration, to name datasets in foreign-key advice

	// plant is the dataset's canary row (nil without a canary).
	plant *plantSpec

	mu     sync.Mutex
	db     *sql.DB
	cols   map[string]string // column (lower case) → database type, read on first use
	closed bool
}

var (
	_ erasure.Connector = (*Conn)(nil)
	_ erasure.Eraser    = (*Conn)(nil)
	_ erasure.Verifier  = (*Conn)(nil)
	_ erasure.Resolver  = (*Conn)(nil)
	_ erasure.Checker   = (*Conn)(nil)
)

// New returns the connector for dataset ds configured by c, validating c as Build does
// (without lines) and setting ds.Keys. reg, which may be nil, is the configuration ds belongs
// to; it is used to name the dataset to order before this one when a foreign key blocks an
// erase. New performs no I/O.
func New(ds *erasure.Dataset, c Config, reg *registry.Config) (*Conn, error) {
	if ps := c.validate(nil, nil); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.msg
		}
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: %s", ds.Name, strings.Join(msgs, "; "))
	}
	if err := validateProvides(ds.Provides); err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: %v", ds.Name, err)
	}
	ds.Keys = keyTypes(&c)
	return newConn(ds, c, reg), nil
}

func newConn(ds *erasure.Dataset, c Config, reg *registry.Config) *Conn {
	return &Conn{
		cfg: c,
		d:   dialectOf(c.Driver),
		ds:  ds,
		reg: reg,
	}
}

func keyTypes(c *Config) []string {
	var out []string
	for _, k := range c.keyColumns() {
		dup := false
		for _, t := range out {
			dup = dup || t == k.Identifier
		}
		if !dup {
			out = append(out, k.Identifier)
		}
	}
	return out
}

// Config returns the connector's configuration (with defaults applied).
func (c *Conn) Config() Config { return c.cfg }

// Close releases the connector's share of its connection pool. Further calls fail.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.db == nil {
		return nil
	}
	c.db = nil
	return release(c.d, c.cfg.DSN)
}

// open returns the pool and the table's column types, acquiring the pool and reading the
// types on first use. The map returned is never modified.
func (c *Conn) open(ctx context.Context) (*sql.DB, map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, erasure.Permanentf("dataset %s: connector is closed", c.ds.Name)
	}
	if c.db == nil {
		db, err := acquire(c.d, c.cfg.DSN)
		if err != nil {
			return nil, nil, erasure.Permanentf("dataset %s: opening the database: %v", c.ds.Name, err)
		}
		c.db = db
	}
	if c.cols == nil {
		cols, err := c.columns(ctx, c.db)
		if err != nil {
			c.mu.Unlock() // classify may take the lock
			err = c.classify(ctx, "reading the table's columns", err)
			c.mu.Lock()
			return nil, nil, err
		}
		if len(cols) == 0 {
			return nil, nil, erasure.Permanent(c.missingTable())
		}
		c.cols = cols
	}
	return c.db, c.cols, nil
}

func (c *Conn) missingTable() error {
	return erasure.Errorf(erasure.EINVALID, "dataset %s: table %s does not exist (or is not visible to this user)", c.ds.Name, c.tableName())
}

func (c *Conn) tableName() string {
	if c.cfg.Schema != "" {
		return c.cfg.Schema + "." + c.cfg.Table
	}
	return c.cfg.Table
}

// columns lists the table's columns and their types; an empty map when the table does not
// exist. PostgreSQL is asked through pg_catalog with the table resolved like in statements
// (search_path), since information_schema hides columns the user has no privilege on.
func (c *Conn) columns(ctx context.Context, db *sql.DB) (map[string]string, error) {
	var rows *sql.Rows
	var err error
	switch c.d.name {
	case "postgres":
		rows, err = db.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, c.d.table(&c.cfg))
	case "mysql":
		q := `SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`
		args := []any{c.cfg.Table}
		if c.cfg.Schema != "" {
			q = `SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?`
			args = []any{c.cfg.Schema, c.cfg.Table}
		}
		rows, err = db.QueryContext(ctx, q, args...)
	default:
		schema := c.cfg.Schema
		if schema == "" {
			schema = "main"
		}
		rows, err = db.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?, ?)`, c.cfg.Table, schema)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		out[c.fold(name)] = strings.ToLower(typ)
	}
	return out, rows.Err()
}

// fold maps a column name to how the dialect compares names: exactly in PostgreSQL (names are
// quoted), without case in MySQL and SQLite.
func (c *Conn) fold(name string) string {
	if c.d.name == "postgres" {
		return name
	}
	return strings.ToLower(name)
}

// value converts an identifier value to what is bound for column col (a textKey for character
// columns, compared exactly whatever their collation), and reports false when
// no row can hold it, so that it is left out instead of failing the statement or, worse in
// MySQL, being converted (MySQL compares '42abc' with an integer column as 42). Such values
// match nothing:
//   - PostgreSQL text cannot hold NUL bytes or invalid UTF-8;
//   - integer columns (PostgreSQL, MySQL) hold only integers in range, uuid columns only UUIDs,
//     numeric columns only numbers; MySQL character columns only valid UTF-8.
//   - SQLite columns of numeric affinity only numbers (see below).
func (c *Conn) value(cols map[string]string, col, v string) (any, bool) {
	typ := cols[c.fold(col)]
	switch c.d.name {
	case "postgres":
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return nil, false
		}
		base, _, _ := strings.Cut(typ, "(")
		switch base {
		case "smallint":
			n, err := strconv.ParseInt(v, 10, 16)
			return n, err == nil
		case "integer":
			n, err := strconv.ParseInt(v, 10, 32)
			return n, err == nil
		case "bigint":
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		case "uuid":
			return v, validUUID(v)
		case "numeric", "real", "double precision":
			_, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return v, err == nil
		case "text", "character varying", "character", "varchar", "char", "citext", "name":
			return textKey(v), true
		}
		return v, true
	case "mysql":
		base, _, _ := strings.Cut(typ, "(")
		unsigned := strings.Contains(typ, "unsigned")
		switch base {
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
			if unsigned {
				n, err := strconv.ParseUint(v, 10, 64)
				return n, err == nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		case "decimal", "float", "double", "real":
			_, err := strconv.ParseFloat(v, 64)
			return v, err == nil
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			return []byte(v), true
		case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set":
			return textKey(v), utf8.ValidString(v)
		}
		return v, utf8.ValidString(v)
	}
	// SQLite converts a value compared with a column of INTEGER, REAL or NUMERIC affinity
	// when it looks like a number, reading text only up to a NUL byte and past blanks
	// ("42\x00" and " 42" would match 42): such columns get numbers, and other values match
	// nothing.
	switch affinity(typ) {
	case "integer", "real", "numeric":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, true
		}
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return textKey(v), true
}

// affinity returns the SQLite type affinity of a declared column type.
func affinity(typ string) string {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return "integer"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "text"
	case t == "", strings.Contains(t, "BLOB"):
		return "blob"
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return "real"
	}
	return "numeric"
}

func validUUID(v string) bool {
	v = strings.TrimSuffix(strings.TrimPrefix(v, "{"), "}")
	v = strings.ReplaceAll(v, "-", "")
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// keyValues returns, for each key column, the subject's values that column can hold, split
// into chunks of at most inChunk. skip is a note for people when nothing can match: the
// subject lacks a key type, or none of its values fits the column.
func (c *Conn) keyValues(s erasure.Subject, cols map[string]string) (chunks [][][]any, skip string) {
	for _, k := range c.cfg.keyColumns() {
		raw := s.Values(k.Identifier)
		if len(raw) == 0 {
			return nil, "skipped: subject has no " + k.Identifier
		}
		var vals []any
		for _, v := range raw {
			if x, ok := c.value(cols, k.Column, v); ok {
				vals = append(vals, x)
			}
		}
		if len(vals) == 0 {
			return nil, "no " + k.Identifier + " value of the subject can be stored in column " + k.Column
		}
		var ch [][]any
		for len(vals) > 0 {
			n := min(len(vals), inChunk)
			ch = append(ch, vals[:n])
			vals = vals[n:]
		}
		chunks = append(chunks, ch)
	}
	return chunks, ""
}

// combos calls f with one chunk of values per key for every combination of chunks (a single
// call in the common case of a few values).
func combos(chunks [][][]any, f func(vals [][]any) error) error {
	idx := make([]int, len(chunks))
	for {
		vals := make([][]any, len(chunks))
		for i, ch := range chunks {
			vals[i] = ch[idx[i]]
		}
		if err := f(vals); err != nil {
			return err
		}
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(chunks[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return nil
		}
	}
}

// match writes the predicate selecting the dataset's rows for one chunk of key values: every
// key column in its values, and every where condition.
func (c *Conn) match(q *sqlBuf, vals [][]any) string {
	var parts []string
	for i, k := range c.cfg.keyColumns() {
		parts = append(parts, q.in(c.d.quote(k.Column), vals[i]))
	}
	if w := c.where(q, ""); w != "" {
		parts = append(parts, w)
	}
	return strings.Join(parts, " AND ")
}

// where writes the where conditions ANDed ("" when there are none), with columns prefixed by
// prefix (a table alias and a dot, or "").
func (c *Conn) where(q *sqlBuf, prefix string) string {
	var parts []string
	for _, w := range c.cfg.Where {
		col := prefix + c.d.quote(w.Column)
		switch {
		case w.Equals != nil:
			parts = append(parts, col+" = "+q.arg(*w.Equals))
		case w.In != nil:
			vs := make([]any, len(*w.In))
			for i, v := range *w.In {
				vs[i] = v
			}
			parts = append(parts, q.in(col, vs))
		case *w.IsNull:
			parts = append(parts, col+" IS NULL")
		default:
			parts = append(parts, col+" IS NOT NULL")
		}
	}
	return strings.Join(parts, " AND ")
}

// setClause writes "a = NULL, b = p" for a redaction, columns prefixed by prefix.
func (c *Conn) setClause(q *sqlBuf, prefix string) string {
	var parts []string
	for _, col := range c.cfg.Columns {
		parts = append(parts, prefix+c.d.quote(col)+" = NULL")
	}
	for _, col := range c.cfg.setColumns() {
		parts = append(parts, prefix+c.d.quote(col)+" = "+q.arg(c.cfg.Set[col]))
	}
	return strings.Join(parts, ", ")
}

// unredacted writes the predicate true for rows some redacted column of which still differs
// from its redacted value, so that a redaction touches each row once.
func (c *Conn) unredacted(q *sqlBuf, prefix string) string {
	var parts []string
	for _, col := range c.cfg.Columns {
		parts = append(parts, prefix+c.d.quote(col)+" IS NOT NULL")
	}
	for _, col := range c.cfg.setColumns() {
		parts = append(parts, c.d.distinct(prefix+c.d.quote(col), q.arg(c.cfg.Set[col])))
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// remaining writes the predicate of rows still to erase: matching rows, and for a redaction
// only those not yet redacted.
func (c *Conn) remaining(q *sqlBuf, vals [][]any) string {
	p := c.match(q, vals)
	if c.cfg.Action == ActionRedact {
		p += " AND " + c.unredacted(q, "")
	}
	return p
}

// batchStatement returns one bounded erase statement for one chunk of key values: it erases
// at most cfg.Batch rows (PostgreSQL may exceed it on partitioned tables, see below).
func (c *Conn) batchStatement(vals [][]any) (string, []any) {
	q := &sqlBuf{d: c.d}
	t := c.d.table(&c.cfg)
	n := strconv.Itoa(c.cfg.Batch)
	head := "DELETE FROM " + t
	if c.cfg.Action == ActionRedact {
		head = "UPDATE " + t + " SET " + c.setClause(q, "")
	}
	p := c.remaining(q, vals)
	switch c.d.name {
	case "postgres":
		// ctid = ANY(array) is a TID scan. The predicate is applied again because on a
		// partitioned table a ctid is only unique within a partition: re-checking keeps
		// every touched row one of the subject's (placeholders $n may repeat).
		q.w(head, " WHERE ctid = ANY(ARRAY(SELECT ctid FROM ", t, " WHERE ", p, " LIMIT ", n, ")) AND ", p)
	case "mysql":
		q.w(head, " WHERE ", p, " LIMIT ", n)
	default:
		q.w(head, " WHERE rowid IN (SELECT rowid FROM ", t, " WHERE ", p, " LIMIT ", n, ")")
	}
	return q.String(), q.args
}

// Erase deletes (or redacts) the subject's rows in statements of at most batch rows each,
// until a statement erases fewer. Zero rows is success. A subject lacking a key type, or
// whose values no key column can hold, is skipped with Removed 0.
func (c *Conn) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	db, cols, err := c.open(ctx)
	if err != nil {
		return erasure.Outcome{}, err
	}
	chunks, skip := c.keyValues(s, cols)
	if skip != "" {
		return erasure.Outcome{Detail: skip}, nil
	}
	if g := erasure.GuardFrom(ctx); g.MaxRemoved > 0 {
		return c.eraseGuarded(ctx, db, chunks, g)
	}
	var removed, statements int64
	err = combos(chunks, func(vals [][]any) error {
		// A redaction whose value the database stores differently (a truncating column)
		// would match its rows forever; bound the loop by the rows there were.
		limit := int64(-1)
		if c.cfg.Action == ActionRedact {
			n, err := c.count(ctx, db, vals)
			if err != nil {
				return err
			}
			limit = n/int64(c.cfg.Batch) + 2
		}
		stmt, args := c.batchStatement(vals)
		for i := int64(0); ; i++ {
			if limit >= 0 && i >= limit {
				return erasure.Permanentf("dataset %s: redacted rows still differ from their redacted values after %d statements: check that the replacement values fit their columns", c.ds.Name, i)
			}
			res, err := db.ExecContext(ctx, stmt, args...)
			if err != nil {
				return c.classify(ctx, "erasing", err)
			}
			statements++
			n, err := res.RowsAffected()
			if err != nil {
				return c.classify(ctx, "erasing", err)
			}
			removed += n
			if n < int64(c.cfg.Batch) {
				return nil
			}
		}
	})
	c.logger().LogAttrs(ctx, slog.LevelDebug, "erase", slog.String("action", c.cfg.Action), slog.Int64("rows", removed), slog.Int64("statements", statements), slog.Any("error", err))
	verb := "deleted"
	if c.cfg.Action == ActionRedact {
		verb = "redacted"
	}
	return erasure.Outcome{Removed: removed, Detail: fmt.Sprintf("%s %d rows of %s", verb, removed, c.tableName())}, err
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// count returns the number of rows still to erase for one chunk of key values.
func (c *Conn) count(ctx context.Context, db *sql.DB, vals [][]any) (int64, error) {
	n, err := c.countIn(ctx, db, vals)
	if err != nil {
		return 0, c.classify(ctx, "counting", err)
	}
	return n, nil
}

// countIn is count in q (a transaction), its error not classified.
func (c *Conn) countIn(ctx context.Context, q querier, vals [][]any) (int64, error) {
	b := &sqlBuf{d: c.d}
	b.w("SELECT COUNT(*) FROM ", c.d.table(&c.cfg), " WHERE ", c.remaining(b, vals))
	var n int64
	err := q.QueryRowContext(ctx, b.String(), b.args...).Scan(&n)
	return n, err
}

// eraseGuarded erases under the dataset's guard, in one transaction: it counts the subject's
// rows inside the transaction and rolls back, having erased nothing, when they exceed
// g.MaxRemoved; the erasing statements then run in the same transaction, and should they
// remove more than counted (rows inserted meanwhile) beyond the limit, it rolls back too. On
// PostgreSQL a subject with one value per key column is erased by one statement that does the
// same (guardedStatement).
func (c *Conn) eraseGuarded(ctx context.Context, db *sql.DB, chunks [][][]any, g erasure.Guard) (erasure.Outcome, error) {
	var removed, counted int64
	var guardErr error
	err := func() error {
		if vals, ok := single(chunks); ok && c.d.name == "postgres" {
			// One statement, atomic on its own: the count and the erasure see one snapshot,
			// and the erasure's predicate is false unless the count is within the limit.
			stmt, args := c.guardedStatement(vals, g.MaxRemoved)
			if err := db.QueryRowContext(ctx, stmt, args...).Scan(&counted, &removed); err != nil {
				return err
			}
			guardErr = g.Check(c.ds.Name, "rows", counted)
			return nil
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := combos(chunks, func(vals [][]any) error {
			n, err := c.countIn(ctx, tx, vals)
			counted += n
			return err
		}); err != nil {
			return err
		}
		if guardErr = g.Check(c.ds.Name, "rows", counted); guardErr != nil {
			return nil
		}
		if err := combos(chunks, func(vals [][]any) error {
			stmt, args := c.batchStatement(vals)
			for i := int64(0); ; i++ {
				// A redaction whose value the database stores differently would match forever.
				if c.cfg.Action == ActionRedact && i > counted/int64(c.cfg.Batch)+2 {
					return erasure.Permanentf("dataset %s: redacted rows still differ from their redacted values after %d statements: check that the replacement values fit their columns", c.ds.Name, i)
				}
				res, err := tx.ExecContext(ctx, stmt, args...)
				if err != nil {
					return err
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				removed += n
				if n < int64(c.cfg.Batch) {
					return nil
				}
			}
		}); err != nil {
			return err
		}
		if guardErr = g.Check(c.ds.Name, "rows", removed); guardErr != nil {
			removed = 0
			return nil // rolled back
		}
		return tx.Commit()
	}()
	// Classified once the transaction has given its connection back (classifying may query).
	if err != nil && !erasure.IsPermanent(err) {
		err = c.classify(ctx, "erasing", err)
	}
	if err == nil {
		err = guardErr
	}
	c.logger().LogAttrs(ctx, slog.LevelDebug, "erase", slog.String("action", c.cfg.Action), slog.Int64("rows", removed), slog.Int64("counted", counted),
		slog.Int64("max_removed", g.MaxRemoved), slog.Any("error", err))
	if err != nil {
		return erasure.Outcome{}, err
	}
	verb := "deleted"
	if c.cfg.Action == ActionRedact {
		verb = "redacted"
	}
	return erasure.Outcome{Removed: removed, Detail: fmt.Sprintf("%s %d rows of %s in one transaction (guard: at most %d)", verb, removed, c.tableName(), g.MaxRemoved)}, nil
}

// single returns the one combination of key values of chunks when there is only one (a
// subject with one value for each key column: the usual case).
func single(chunks [][][]any) ([][]any, bool) {
	vals := make([][]any, len(chunks))
	for i, ch := range chunks {
		if len(ch) != 1 {
			return nil, false
		}
		vals[i] = ch[0]
	}
	return vals, true
}

// guardedStatement returns, for PostgreSQL, one statement that counts the rows to erase of one
// chunk of key values and erases them all only when they are at most max, answering the count
// and the rows erased: a guarded erasure in one round trip instead of a transaction of four.
func (c *Conn) guardedStatement(vals [][]any, max int64) (string, []any) {
	q := &sqlBuf{d: c.d}
	t := c.d.table(&c.cfg)
	head := "DELETE FROM " + t
	if c.cfg.Action == ActionRedact {
		head = "UPDATE " + t + " SET " + c.setClause(q, "")
	}
	p := c.remaining(q, vals) // its placeholders ($n) are used twice
	q.w("WITH n AS (SELECT COUNT(*) AS c FROM ", t, " WHERE ", p, "), ",
		"d AS (", head, " WHERE ", p, " AND (SELECT c FROM n) <= ", strconv.FormatInt(max, 10), " RETURNING 1) ",
		"SELECT (SELECT c FROM n), (SELECT COUNT(*) FROM d)")
	return q.String(), q.args
}

// Holds reports whether rows of the subject remain (for a redaction: rows not yet redacted).
func (c *Conn) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	n, err := c.Remaining(ctx, s)
	return n > 0, err
}

// Remaining counts the subject's rows still to erase (for a redaction: matching rows whose
// columns are not all redacted yet).
func (c *Conn) Remaining(ctx context.Context, s erasure.Subject) (int64, error) {
	db, cols, err := c.open(ctx)
	if err != nil {
		return 0, err
	}
	chunks, skip := c.keyValues(s, cols)
	if skip != "" {
		return 0, nil
	}
	var total int64
	err = combos(chunks, func(vals [][]any) error {
		n, err := c.count(ctx, db, vals)
		total += n
		return err
	})
	return total, err
}

// Resolve returns, for each provides entry of the dataset, the distinct non-empty values of its
// column in the subject's rows, as identifiers of the entry's type. Values that are not valid
// identifiers (too long, not UTF-8) are left out. More than MaxResolved values for one entry
// is a permanent error: the key matches far more than one subject.
func (c *Conn) Resolve(ctx context.Context, s erasure.Subject) ([]erasure.Identifier, error) {
	if len(c.ds.Provides) == 0 {
		return nil, nil
	}
	if err := validateProvides(c.ds.Provides); err != nil {
		return nil, erasure.Permanentf("dataset %s: %v", c.ds.Name, err)
	}
	db, cols, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	chunks, skip := c.keyValues(s, cols)
	if skip != "" {
		return nil, nil
	}
	var out []erasure.Identifier
	seen := map[erasure.Identifier]bool{}
	for _, p := range c.ds.Provides {
		count := 0
		err := combos(chunks, func(vals [][]any) error {
			q := &sqlBuf{d: c.d}
			col := c.d.quote(p.Field)
			q.w("SELECT DISTINCT ", col, " FROM ", c.d.table(&c.cfg), " WHERE ", c.match(q, vals), " AND ", col, " IS NOT NULL LIMIT ", strconv.Itoa(MaxResolved+1))
			rows, err := db.QueryContext(ctx, q.String(), q.args...)
			if err != nil {
				return c.classify(ctx, "looking up "+p.Identifier, err)
			}
			defer rows.Close()
			for rows.Next() {
				var v sql.NullString
				if err := rows.Scan(&v); err != nil {
					return c.classify(ctx, "looking up "+p.Identifier, err)
				}
				id := erasure.Identifier{Type: p.Identifier, Value: v.String}
				if !v.Valid || id.Validate() != nil || seen[id] {
					continue
				}
				if count++; count > MaxResolved {
					return erasure.Permanentf("dataset %s: looking up %s yields more than %d values for one subject: check the key", c.ds.Name, p.Identifier, MaxResolved)
				}
				seen[id] = true
				out = append(out, id)
			}
			if err := rows.Err(); err != nil {
				return c.classify(ctx, "looking up "+p.Identifier, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Check connects and verifies that the table exists and has every configured column (keys,
// redacted columns, where columns, provides columns). It erases nothing. A missing table or
// column is a permanent EINVALID error naming all that is missing.
func (c *Conn) Check(ctx context.Context) error {
	db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	cols, err := c.columns(ctx, db)
	if err != nil {
		return c.classify(ctx, "reading the table's columns", err)
	}
	if len(cols) == 0 {
		return erasure.Permanent(c.missingTable())
	}
	var missing []string
	need := func(what, col string) {
		if _, ok := cols[c.fold(col)]; !ok {
			missing = append(missing, fmt.Sprintf("%s column %s", what, col))
		}
	}
	for _, k := range c.cfg.keyColumns() {
		need("key", k.Column)
	}
	for _, col := range c.cfg.Columns {
		need("redacted", col)
	}
	for _, col := range c.cfg.setColumns() {
		need("redacted", col)
	}
	for _, w := range c.cfg.Where {
		need("where", w.Column)
	}
	for _, p := range c.ds.Provides {
		need("provides "+p.Identifier, p.Field)
	}
	if h := c.cfg.Hide; h != nil {
		for _, col := range h.Columns {
			need("hide", col)
		}
		for col := range h.Set {
			need("hide", col)
		}
	}
	if r := c.ds.Retention; r != nil {
		need("retention", r.Column)
	}
	if len(missing) > 0 {
		return erasure.Permanent(erasure.Errorf(erasure.EINVALID, "dataset %s: table %s has no %s", c.ds.Name, c.tableName(), strings.Join(missing, ", no ")))
	}
	return nil
}

// errorsAs is errors.As, named for readability where a type switch would not do.
func errorsAs[T error](err error) (T, bool) {
	var t T
	ok := errors.As(err, &t)
	return t, ok
}

// logger is the process's logger at the time of logging, with the dataset in group sql (see
// the files connector's logger for why it is not kept).
func (c *Conn) logger() *slog.Logger {
	return slog.Default().With(slog.Group("sql", slog.String("dataset", c.ds.Name)))
}
