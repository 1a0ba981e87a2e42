package sqlconn

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"erasure"
)

// dbError is a database error with a message safe to store and show: database messages can
// quote the values of a statement (PostgreSQL "invalid input syntax for type integer: ...",
// MySQL "Incorrect string value: ..."), and values may be identifiers. The original error stays
// in the chain for errors.As.
type dbError struct {
	msg string
	err error
}

func (e *dbError) Error() string { return e.msg }
func (e *dbError) Unwrap() error { return e.err }

// ForeignKeyError is the permanent error of an erase blocked by a foreign key: rows of another
// table still reference the rows being erased. Fix says what to change in the registry.
type ForeignKeyError struct {
	Dataset    string // the dataset whose erase was blocked
	Table      string // its table
	Constraint string // the constraint, when the database names it
	// Referencing is the table whose rows still reference ours, when known.
	Referencing string
	// Datasets are the datasets erasing Referencing, if any.
	Datasets []string
	Fix      string
	Err      error
}

func (e *ForeignKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset %s: erasing from %s is blocked by foreign key", e.Dataset, e.Table)
	if e.Constraint != "" {
		fmt.Fprintf(&b, " %s", e.Constraint)
	}
	if e.Referencing != "" {
		fmt.Fprintf(&b, " of table %s", e.Referencing)
	}
	b.WriteString(": rows there still reference the subject's rows; ")
	b.WriteString(e.Fix)
	return b.String()
}

func (e *ForeignKeyError) Unwrap() error { return e.Err }

// classify turns a database error into an erasure.TransientError or erasure.PermanentError by
// its type and code: connection failures, deadlocks, serialization failures, lock timeouts and
// SQLITE_BUSY are transient; missing tables or columns, denied privileges, syntax and data
// errors and foreign-key violations are permanent. Unknown errors are transient.
func (c *Conn) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ep, ok := errorsAs[*erasure.PermanentError](err); ok {
		return ep
	}
	if et, ok := errorsAs[*erasure.TransientError](err); ok {
		return et
	}
	wrap := func(msg string) error {
		return &dbError{msg: fmt.Sprintf("dataset %s: %s: %s", c.ds.Name, op, msg), err: err}
	}
	if ctx.Err() != nil {
		return erasure.Transient(wrap(ctx.Err().Error()), 0)
	}
	if pe, ok := errorsAs[*pgconn.PgError](err); ok {
		msg := pe.Message + " (SQLSTATE " + pe.Code + ")"
		switch class := pe.Code[:2]; {
		case pe.Code == "23503":
			return erasure.Permanent(c.foreignKey(ctx, pe.ConstraintName, qualify(pe.SchemaName, pe.TableName), err))
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03", pe.Code == "57014",
			class == "08", class == "53", class == "57", class == "58":
			return erasure.Transient(wrap(msg), 0)
		case class == "22":
			// Data exceptions quote the offending value: keep only the code and the column.
			m := "a value cannot be compared with its column (data exception, SQLSTATE " + pe.Code + ")"
			if pe.ColumnName != "" {
				m += ": column " + pe.ColumnName
			}
			return erasure.Permanent(wrap(m))
		default:
			// 42P01 undefined table, 42703 undefined column, 42501 permission denied, 42601
			// syntax, 28xxx authentication, 3D000 unknown database...
			if pe.Code == "42P01" || pe.Code == "42703" || pe.Code == "42804" {
				c.forgetColumns()
			}
			return erasure.Permanent(wrap(msg))
		}
	}
	if me, ok := errorsAs[*mysql.MySQLError](err); ok {
		msg := fmt.Sprintf("%s (MySQL error %d)", me.Message, me.Number)
		switch me.Number {
		case 1451:
			constraint, table := parseMySQLForeignKey(me.Message)
			return erasure.Permanent(c.foreignKey(ctx, constraint, table, err))
		case 1205, 1213, 1040, 1053, 1152, 1158, 1159, 1160, 1161, 1203, 1614, 1637, 2002, 2003, 2006, 2013:
			return erasure.Transient(wrap(msg), 0)
		case 1264, 1265, 1292, 1366, 1406:
			// Out of range, truncated, incorrect value: these quote the value.
			return erasure.Permanent(wrap(fmt.Sprintf("a value does not fit its column (MySQL error %d)", me.Number)))
		default:
			// 1146 no such table, 1054 unknown column, 1142/1143/1044/1045 denied, 1064 syntax.
			if me.Number == 1146 || me.Number == 1054 {
				c.forgetColumns()
			}
			return erasure.Permanent(wrap(msg))
		}
	}
	if se, ok := errorsAs[*sqlite.Error](err); ok {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return erasure.Permanent(c.foreignKey(ctx, "", "", err))
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED,
			code&0xff == sqlite3.SQLITE_IOERR, code&0xff == sqlite3.SQLITE_FULL,
			code&0xff == sqlite3.SQLITE_NOMEM, code&0xff == sqlite3.SQLITE_PROTOCOL,
			code&0xff == sqlite3.SQLITE_INTERRUPT:
			return erasure.Transient(wrap(se.Error()), 0)
		default:
			// SQLITE_ERROR (no such table or column, syntax), READONLY, CANTOPEN, CORRUPT...
			if code == sqlite3.SQLITE_ERROR {
				c.forgetColumns()
			}
			return erasure.Permanent(wrap(se.Error()))
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || pgconn.Timeout(err) {
		return erasure.Transient(wrap("connection failed: "+err.Error()), 0)
	}
	return erasure.Transient(wrap(err.Error()), 0)
}

// forgetColumns drops the column types read on first use, after an error saying the table
// changed, so that the next call reads them again: an operator's fix takes effect without a
// restart.
func (c *Conn) forgetColumns() {
	c.mu.Lock()
	c.cols = nil
	c.mu.Unlock()
}

func qualify(schema, table string) string {
	if schema != "" && table != "" {
		return schema + "." + table
	}
	return table
}

// mysqlFK picks the referencing table and constraint out of error 1451, which has no
// structured fields: "... a foreign key constraint fails (`db`.`orders`, CONSTRAINT `fk` ...".
var mysqlFK = regexp.MustCompile("fails \\(`([^`]*)`\\.`([^`]*)`, CONSTRAINT `([^`]*)`")

func parseMySQLForeignKey(msg string) (constraint, table string) {
	m := mysqlFK.FindStringSubmatch(msg)
	if m == nil {
		return "", ""
	}
	return m[3], m[2]
}

// foreignKey builds the ForeignKeyError for a violation of constraint by rows of table
// referencing (either may be empty when the database does not say). In SQLite, which names
// neither, the tables whose foreign keys reference ours are looked up.
func (c *Conn) foreignKey(ctx context.Context, constraint, referencing string, err error) *ForeignKeyError {
	e := &ForeignKeyError{Dataset: c.ds.Name, Table: c.tableName(), Constraint: constraint, Referencing: referencing, Err: err}
	candidates := []string{referencing}
	if referencing == "" && c.d.name == "sqlite" {
		candidates = c.referencingTables(ctx)
		if len(candidates) == 1 {
			e.Referencing = candidates[0]
		}
	}
	var missing []string
	for _, t := range candidates {
		if t == "" {
			continue
		}
		ds := c.datasetsErasing(t)
		if len(ds) == 0 {
			missing = append(missing, t)
		}
		e.Datasets = append(e.Datasets, ds...)
	}
	var fix []string
	if len(e.Datasets) > 0 {
		fix = append(fix, fmt.Sprintf("add `after: [%s]` to dataset %s so that it is erased first", strings.Join(e.Datasets, ", "), c.ds.Name))
	}
	for _, t := range missing {
		fix = append(fix, fmt.Sprintf("no dataset erases table %s: declare one (connector sql, table %s, keyed by its referencing column) and add it to `after:` of dataset %s", t, bare(t), c.ds.Name))
	}
	if len(fix) == 0 {
		fix = append(fix, fmt.Sprintf("declare a dataset for the referencing table and add it to `after:` of dataset %s", c.ds.Name))
	}
	e.Fix = strings.Join(fix, "; ")
	return e
}

func bare(t string) string {
	if _, after, ok := strings.Cut(t, "."); ok {
		return after
	}
	return t
}

// datasetsErasing returns the sql datasets of the configuration whose table is t (optionally
// schema-qualified), other than this one.
func (c *Conn) datasetsErasing(t string) []string {
	if c.reg == nil {
		return nil
	}
	schema, table, ok := strings.Cut(t, ".")
	if !ok {
		schema, table = "", t
	}
	var out []string
	for _, d := range c.reg.Datasets {
		o, ok := d.Conn.(*Conn)
		if !ok || o == c || d == c.ds || !strings.EqualFold(o.cfg.Table, table) {
			continue
		}
		if schema != "" && o.cfg.Schema != "" && !strings.EqualFold(o.cfg.Schema, schema) {
			continue
		}
		out = append(out, d.Name)
	}
	return out
}

// referencingTables lists the SQLite tables with a foreign key to this dataset's table.
func (c *Conn) referencingTables(ctx context.Context) []string {
	c.mu.Lock()
	db := c.db
	c.mu.Unlock()
	if db == nil {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT m.name FROM sqlite_schema m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND f."table" = ? COLLATE NOCASE ORDER BY m.name`, c.cfg.Table)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			out = append(out, n)
		}
	}
	return out
}
