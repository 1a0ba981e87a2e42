package sqlconn

import (
	"strconv"
	"strings"
)

// dialect is what differs between PostgreSQL, MySQL/MariaDB and SQLite: the database/sql
// driver, quoting, placeholders and how a bounded batch of rows is addressed.
type dialect struct {
	name   string // postgres, mysql, sqlite
	driver string // database/sql driver name
}

var (
	postgres = dialect{"postgres", "pgx"}
	mysqlD   = dialect{"mysql", "mysql"}
	sqliteD  = dialect{"sqlite", "sqlite"}
)

func dialectOf(driver string) dialect {
	switch dialectNames[driver] {
	case "postgres":
		return postgres
	case "mysql":
		return mysqlD
	default:
		return sqliteD
	}
}

// quote quotes a name that already matched nameRE (so it holds no quote character).
func (d dialect) quote(name string) string {
	if d.name == "mysql" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// table returns the quoted, schema-qualified table name.
func (d dialect) table(c *Config) string {
	if c.Schema != "" {
		return d.quote(c.Schema) + "." + d.quote(c.Table)
	}
	return d.quote(c.Table)
}

// distinct returns a predicate true when column col differs from the parameter p, NULLs
// compared as values.
func (d dialect) distinct(col, p string) string {
	switch d.name {
	case "postgres":
		return col + " IS DISTINCT FROM " + p
	case "mysql":
		return "NOT (" + col + " <=> " + p + ")"
	default:
		return col + " IS NOT " + p
	}
}

// sqlBuf builds one statement and its bound arguments. Values never enter the text.
type sqlBuf struct {
	d    dialect
	sb   strings.Builder
	args []any
}

// arg binds v and returns its placeholder.
func (q *sqlBuf) arg(v any) string {
	q.args = append(q.args, v)
	if q.d.name == "postgres" {
		return "$" + strconv.Itoa(len(q.args))
	}
	return "?"
}

func (q *sqlBuf) w(ss ...string) *sqlBuf {
	for _, s := range ss {
		q.sb.WriteString(s)
	}
	return q
}

func (q *sqlBuf) String() string { return q.sb.String() }

// textKey is a key value bound for a character column. A column's collation may find equal
// what is not the same identifier (MariaDB's default collations ignore case, accents and
// trailing spaces; SQLite's NOCASE ignores case; a PostgreSQL citext column ignores case), so
// a textKey is compared twice: by the collation, which the column's index serves, and
// exactly, byte for byte (exactColumn, exactParam).
type textKey string

// exactColumn is col as a value compared byte for byte: its UTF-8 bytes (MySQL, PostgreSQL), or
// col with the binary collation (SQLite).
func (d dialect) exactColumn(col string) string {
	switch d.name {
	case "mysql":
		return "CAST(CONVERT(" + col + " USING utf8mb4) AS BINARY)"
	case "postgres":
		return "(" + col + `::text COLLATE "C")`
	}
	return col + " COLLATE BINARY"
}

// exactParam is the placeholder p as a value compared byte for byte with an exactColumn.
func (d dialect) exactParam(p string) string {
	switch d.name {
	case "mysql":
		return "CAST(" + p + " AS BINARY)"
	case "postgres":
		return p + "::text"
	}
	return p
}

// in writes "col = p" or "col IN (p1, p2...)" binding vals; for textKey values, ANDed with the
// same comparison made exactly.
func (q *sqlBuf) in(col string, vals []any) string {
	if _, ok := vals[0].(textKey); ok {
		plain := make([]any, len(vals))
		for i, v := range vals {
			plain[i] = string(v.(textKey))
		}
		byCollation := q.in(col, plain)
		var b strings.Builder
		b.WriteString("(" + byCollation + " AND " + q.d.exactColumn(col))
		if len(plain) == 1 {
			b.WriteString(" = " + q.d.exactParam(q.arg(plain[0])) + ")")
			return b.String()
		}
		b.WriteString(" IN (")
		for i, v := range plain {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(q.d.exactParam(q.arg(v)))
		}
		b.WriteString("))")
		return b.String()
	}
	if len(vals) == 1 {
		return col + " = " + q.arg(vals[0])
	}
	var b strings.Builder
	b.WriteString(col + " IN (")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q.arg(v))
	}
	b.WriteString(")")
	return b.String()
}
