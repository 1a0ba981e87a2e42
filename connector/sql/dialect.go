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

// in writes "col = p" or "col IN (p1, p2...)" binding vals.
func (q *sqlBuf) in(col string, vals []any) string {
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
