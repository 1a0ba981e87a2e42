package scan

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"erasure"
	sqlconn "erasure/connector/sql" // also registers the pgx, mysql and sqlite drivers
)

// dialect is what differs between the SQL databases for a scan.
type dialect struct {
	name   string // postgres, mysql, sqlite
	driver string // database/sql driver
}

func dialectOf(driver string) dialect {
	switch driver {
	case "postgres", "postgresql":
		return dialect{"postgres", "pgx"}
	case "mysql", "mariadb":
		return dialect{"mysql", "mysql"}
	}
	return dialect{"sqlite", "sqlite"}
}

// quote quotes a name read from the catalogue, doubling any quote character in it.
func (d dialect) quote(name string) string {
	if d.name == "mysql" {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// fold maps a name to how the database compares names.
func (d dialect) fold(name string) string {
	if d.name == "postgres" {
		return name
	}
	return strings.ToLower(name)
}

// text returns a select expression for the first maxValue+1 characters of col as text.
func (d dialect) text(col string) string {
	n := strconv.Itoa(maxValue + 1)
	switch d.name {
	case "postgres":
		return "left(" + d.quote(col) + "::text, " + n + ")"
	case "mysql":
		return "LEFT(" + d.quote(col) + ", " + n + ")"
	}
	return "substr(" + d.quote(col) + ", 1, " + n + ")"
}

func (d dialect) placeholder(i int) string {
	if d.name == "postgres" {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// sqlDataset is a sql dataset with its configuration.
type sqlDataset struct {
	ds  *erasure.Dataset
	cfg sqlconn.Config
}

// sqlTable is a table of the catalogue.
type sqlTable struct {
	schema, name string
	columns      []string
}

// sqlColumn is what a column place is, for coverage and suggestions.
type sqlColumn struct {
	schema, table, column string
}

// sqlSource is one SQL database: the tables of its schemas.
type sqlSource struct {
	d        dialect
	dsn      string
	raw      map[string]map[string]string
	datasets []sqlDataset

	defaultSchema string
	columns       map[string]sqlColumn // place loc → column
}

func (s *sqlSource) describe() Source {
	ds := make([]*erasure.Dataset, len(s.datasets))
	for i, d := range s.datasets {
		ds[i] = d.ds
	}
	return Source{Kind: SourceSQL, Name: sqlName(s.d, s.dsn), Datasets: names(ds)}
}

// sqlName names a database without its credentials.
func sqlName(d dialect, dsn string) string {
	switch d.name {
	case "postgres":
		if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
			name := "postgres://" + u.Host + u.Path
			if sp := u.Query().Get("search_path"); sp != "" {
				name += "?search_path=" + sp
			}
			return name
		}
		fields := map[string]string{}
		for _, f := range strings.Fields(dsn) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = strings.Trim(v, "'")
			}
		}
		return "postgres://" + fields["host"] + portSuffix(fields["port"]) + "/" + fields["dbname"]
	case "mysql":
		if c, err := mysql.ParseDSN(dsn); err == nil {
			return "mysql://" + c.Addr + "/" + c.DBName
		}
		return "mysql"
	}
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return "sqlite:" + path
}

func portSuffix(p string) string {
	if p == "" {
		return ""
	}
	return ":" + p
}

func (s *sqlSource) scan(ctx context.Context, c *collector, src *Source) error {
	db, err := sql.Open(s.d.driver, s.dsn)
	if err != nil {
		return fmt.Errorf("opening the database: %v", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	schemas, err := s.schemas(ctx, db)
	if err != nil {
		return fmt.Errorf("reading the schemas: %w", sqlError(err))
	}
	cover := s.coverage()
	tables, err := s.tables(ctx, db, schemas)
	if err != nil {
		return fmt.Errorf("reading the catalogue: %w", sqlError(err))
	}
	s.columns = map[string]sqlColumn{}
	var failed int
	var firstErr error
	for i, t := range tables {
		if err := ctx.Err(); err != nil {
			return err
		}
		places := make([]*place, len(t.columns))
		for j, col := range t.columns {
			loc := t.name + "." + col
			if s.d.name != "sqlite" {
				loc = t.schema + "." + loc
			}
			p := c.place(loc, col, "")
			if p == nil {
				continue
			}
			places[j] = p
			s.columns[loc] = sqlColumn{t.schema, t.name, col}
			k := s.d.fold(t.schema) + "\x00" + s.d.fold(t.name)
			if ds := cover.tables[k]; len(ds) > 0 {
				p.dataset = ds[0]
			}
			if cv, ok := cover.columns[k+"\x00"+s.d.fold(col)]; ok {
				p.covered, p.dataset = true, cv.dataset
				if cv.holds != "" {
					if p.holds == nil {
						p.holds = map[string]bool{}
					}
					p.holds[cv.holds] = true
				}
			}
		}
		n, err := s.sample(ctx, db, t, places, c)
		src.Rows += int64(n)
		src.Units++
		c.progress(fmt.Sprintf("%s %s: table %d/%d %s.%s: %s", SourceSQL, src.Name, i+1, len(tables), t.schema, t.name, plural(n, "row")))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("table %s.%s: %w", t.schema, t.name, sqlError(err))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s of %d could not be read, first %v", plural(failed, "table"), len(tables), firstErr)
	}
	return nil
}

// sqlError strips a driver error down to its message (PostgreSQL errors carry their SQL state
// and fields in a long form).
func sqlError(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return errors.New(me.Message)
	}
	return err
}

// schemas returns the schemas to read and sets the default schema (where a dataset without a
// schema lives).
func (s *sqlSource) schemas(ctx context.Context, db *sql.DB) ([]string, error) {
	var out []string
	add := func(x string) {
		if x != "" && !contains(out, x) {
			out = append(out, x)
		}
	}
	switch s.d.name {
	case "postgres":
		var def sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&def); err != nil {
			return nil, err
		}
		s.defaultSchema = def.String
		rows, err := db.QueryContext(ctx, `SELECT s::text FROM unnest(current_schemas(false)) AS s`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var x string
			if err := rows.Scan(&x); err != nil {
				return nil, err
			}
			add(x)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	case "mysql":
		var def sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&def); err != nil {
			return nil, err
		}
		s.defaultSchema = def.String
		add(def.String)
	default:
		s.defaultSchema = "main"
		if err := db.PingContext(ctx); err != nil {
			return nil, err
		}
		return []string{"main"}, nil
	}
	for _, d := range s.datasets {
		add(d.cfg.Schema)
	}
	if len(out) == 0 {
		return nil, errors.New("the connection has no schema to read (no database in the DSN, an empty search path)")
	}
	return out, nil
}

// tables lists the base tables of schemas with their columns, in order.
func (s *sqlSource) tables(ctx context.Context, db *sql.DB, schemas []string) ([]sqlTable, error) {
	var out []sqlTable
	if s.d.name == "sqlite" {
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
		if err != nil {
			return nil, err
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return nil, err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, n := range names {
			t := sqlTable{schema: "main", name: n}
			cols, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, n)
			if err != nil {
				return nil, err
			}
			for cols.Next() {
				var c string
				if err := cols.Scan(&c); err != nil {
					cols.Close()
					return nil, err
				}
				t.columns = append(t.columns, c)
			}
			cols.Close()
			if err := cols.Err(); err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	}
	in := make([]string, len(schemas))
	args := make([]any, len(schemas))
	for i, x := range schemas {
		in[i] = s.d.placeholder(i + 1)
		args[i] = x
	}
	q := `SELECT c.table_schema, c.table_name, c.column_name
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE t.table_type = 'BASE TABLE' AND c.table_schema IN (` + strings.Join(in, ", ") + `)
		ORDER BY c.table_schema, c.table_name, c.ordinal_position`
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, col string
		if err := rows.Scan(&schema, &table, &col); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].schema != schema || out[n-1].name != table {
			out = append(out, sqlTable{schema: schema, name: table})
		}
		out[len(out)-1].columns = append(out[len(out)-1].columns, col)
	}
	return out, rows.Err()
}

// sample reads the first n rows of t (every column as text) into the places of its columns.
func (s *sqlSource) sample(ctx context.Context, db *sql.DB, t sqlTable, places []*place, c *collector) (int, error) {
	if len(t.columns) == 0 {
		return 0, nil
	}
	exprs := make([]string, len(t.columns))
	for i, col := range t.columns {
		exprs[i] = s.d.text(col)
	}
	from := s.d.quote(t.name)
	if s.d.name != "sqlite" {
		from = s.d.quote(t.schema) + "." + from
	}
	rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+from+" LIMIT "+strconv.Itoa(c.sample))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]sql.NullString, len(t.columns))
	ptrs := make([]any, len(t.columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		n++
		for i, v := range vals {
			if v.Valid {
				c.observe(places[i], v.String)
			}
		}
	}
	return n, rows.Err()
}

// sqlCoverage is what the source's datasets name.
type sqlCoverage struct {
	tables  map[string][]string // schema\x00table → datasets of the table
	columns map[string]struct { // schema\x00table\x00column → dataset, type held
		dataset, holds string
	}
}

func (s *sqlSource) coverage() sqlCoverage {
	cv := sqlCoverage{tables: map[string][]string{}, columns: map[string]struct{ dataset, holds string }{}}
	for _, d := range s.datasets {
		schema := d.cfg.Schema
		if schema == "" {
			schema = s.defaultSchema
		}
		tk := s.d.fold(schema) + "\x00" + s.d.fold(d.cfg.Table)
		cv.tables[tk] = append(cv.tables[tk], d.ds.Name)
		col := func(name, holds string) {
			k := tk + "\x00" + s.d.fold(name)
			if old, ok := cv.columns[k]; ok && (old.holds != "" || holds == "") {
				return
			}
			cv.columns[k] = struct{ dataset, holds string }{d.ds.Name, holds}
		}
		keys := d.cfg.Keys
		if d.cfg.Key != nil {
			keys = append(keys, *d.cfg.Key)
		}
		for _, k := range keys {
			col(k.Column, k.Identifier)
		}
		for _, p := range d.ds.Provides {
			col(p.Field, p.Identifier)
		}
		for _, c := range d.cfg.Columns {
			col(c, "")
		}
		for c := range d.cfg.Set {
			col(c, "")
		}
	}
	return cv
}

// suggest proposes provides on a dataset of the place's table, or a new dataset keyed by the
// column; a field inside a JSON column gets advice in a comment.
func (s *sqlSource) suggest(p *place, t erasure.IdentifierType) string {
	loc := p.loc
	col, ok := s.columns[loc]
	for !ok {
		i := strings.LastIndexAny(loc, ".[")
		if i < 0 {
			return ""
		}
		loc = loc[:i]
		col, ok = s.columns[loc]
	}
	if loc != p.loc {
		return fmt.Sprintf("# %s holds JSON whose field %s looks like %s values; no key reaches inside it:\n"+
			"# redact the column (action: redact, columns: [%s]) in a dataset of table %s, or keep the value in a column of its own",
			col.column, strings.TrimPrefix(p.loc[len(loc):], "."), t.Name, col.column, col.table)
	}
	if !sqlconn.ValidName(col.column) || !sqlconn.ValidName(col.table) {
		return fmt.Sprintf("# %s.%s: the sql connector only takes names of letters, digits and _: rename it to register it", col.table, col.column)
	}
	for _, d := range s.datasets {
		schema := d.cfg.Schema
		if schema == "" {
			schema = s.defaultSchema
		}
		if s.d.fold(schema) == s.d.fold(col.schema) && s.d.fold(d.cfg.Table) == s.d.fold(col.table) {
			return fmt.Sprintf("# add to dataset %s (%s:%d): a lookup, so that a request by %s finds the row\nprovides:\n  - { identifier: %s, column: %s }",
				d.ds.Name, d.ds.File, d.ds.Line, t.Name, t.Name, col.column)
		}
	}
	ds := make([]*erasure.Dataset, len(s.datasets))
	for i, d := range s.datasets {
		ds[i] = d.ds
	}
	first := s.datasets[0]
	schema := ""
	if col.schema != s.defaultSchema && sqlconn.ValidName(col.schema) {
		schema = ", schema: " + col.schema
	}
	return fmt.Sprintf("- name: %s\n  owner: %s  # as the other datasets of this database: check\n  connector: sql\n"+
		"  sql: { driver: %s, dsn: %s%s, table: %s, key: { column: %s, identifier: %s }, action: delete }",
		datasetName(namePrefix(ds), col.table), ownerOf(ds), first.cfg.Driver,
		yamlString(rawValue(s.raw, first.ds.Name, "sql.dsn", "${DSN}")), schema, col.table, col.column, t.Name)
}

// namePrefix returns the part before the first "." that every dataset name shares, or "".
func namePrefix(ds []*erasure.Dataset) string {
	prefix := ""
	for i, d := range ds {
		p, _, ok := strings.Cut(d.Name, ".")
		if !ok {
			return ""
		}
		if i == 0 {
			prefix = p
		} else if p != prefix {
			return ""
		}
	}
	return prefix
}
