package sqlconn

import (
	"context"
	"database/sql"
	"sort"
	"strings"

	"erasure"
	"erasure/registry"
)

// The canary's plant block:
//
//	canary:
//	  plant:
//	    schema: public                 # default: the dataset's schema
//	    table: users                   # default: the dataset's table
//	    values: { name: canary, created_at: "2026-01-01" }   # the other columns the row needs
//
// Plant inserts one row holding the canary subject's value in each key column (the first value
// of each key's identifier type), the where conditions' values (equals, the first of in), and
// values, each bound as a parameter (the database converts text to the column's type).
// Remains counts the rows of the plant table holding those key values, as the application
// would read them: without the dataset's where conditions, and from the plant table, which may
// be where the application writes now. A table that moved or was renamed makes the plant fail,
// naming the table.

type plantBlock struct {
	Schema string            `yaml:"schema"`
	Table  string            `yaml:"table"`
	Values map[string]string `yaml:"values"`
}

// plantSpec is a canary's plant row: its table and the literal columns.
type plantSpec struct {
	schema, table string
	values        map[string]string
}

var _ erasure.Planter = (*Conn)(nil)

// buildPlant reads the canary's plant block into c; false after reporting a problem.
func buildPlant(b *registry.Build, c *Conn) bool {
	ps := &plantSpec{schema: c.cfg.Schema, table: c.cfg.Table, values: map[string]string{}}
	var pb plantBlock
	if !b.DecodePlant(&pb) {
		return false
	}
	ok := true
	if pb.Table != "" {
		if !ValidName(pb.Table) {
			b.Errorf(registry.Child(b.Plant, "table"), "canary.plant: table %q is not a valid name", clip(pb.Table))
			ok = false
		}
		ps.table, ps.schema = pb.Table, pb.Schema
	} else if pb.Schema != "" {
		ps.schema = pb.Schema
	}
	if ps.schema != "" && !ValidName(ps.schema) {
		b.Errorf(registry.Child(b.Plant, "schema"), "canary.plant: schema %q is not a valid name", clip(ps.schema))
		ok = false
	}
	keyCols := map[string]bool{}
	for _, k := range c.cfg.keyColumns() {
		keyCols[strings.ToLower(k.Column)] = true
	}
	for col, v := range pb.Values {
		switch {
		case !ValidName(col):
			b.Errorf(registry.Child(b.Plant, "values"), "canary.plant: values: column %q is not a valid name", clip(col))
			ok = false
		case keyCols[strings.ToLower(col)]:
			b.Errorf(registry.Child(b.Plant, "values"), "canary.plant: values: %s is a key column: it holds the canary subject's value", col)
			ok = false
		default:
			ps.values[col] = v
		}
	}
	for _, w := range c.cfg.Where {
		if _, set := ps.values[w.Column]; set || keyCols[strings.ToLower(w.Column)] {
			continue
		}
		switch {
		case w.Equals != nil:
			ps.values[w.Column] = *w.Equals
		case w.In != nil && len(*w.In) > 0:
			ps.values[w.Column] = (*w.In)[0]
		case w.IsNull != nil && !*w.IsNull:
			b.Errorf(b.Plant, "canary.plant: values: give %s a value (the dataset only erases rows where it is not null)", w.Column)
			ok = false
		}
	}
	c.plant = ps
	return ok
}

func (ps *plantSpec) tableName(d dialect) string {
	return d.table(&Config{Schema: ps.schema, Table: ps.table})
}

// plantRow returns the columns and values of the canary's row for s; false when s lacks a
// key's identifier.
func (c *Conn) plantRow(s erasure.Subject) ([]string, []any, bool) {
	var cols []string
	var vals []any
	for _, k := range c.cfg.keyColumns() {
		v := s.Values(k.Identifier)
		if len(v) == 0 {
			return nil, nil, false
		}
		cols, vals = append(cols, k.Column), append(vals, v[0])
	}
	extra := make([]string, 0, len(c.plant.values))
	for col := range c.plant.values {
		extra = append(extra, col)
	}
	sort.Strings(extra)
	for _, col := range extra {
		cols, vals = append(cols, col), append(vals, c.plant.values[col])
	}
	return cols, vals, true
}

// Plant inserts the canary's row (see the plant block). A missing table or column is a
// permanent error naming it.
func (c *Conn) Plant(ctx context.Context, s erasure.Subject) error {
	if c.plant == nil {
		return erasure.Permanentf("dataset %s has no canary plant", c.ds.Name)
	}
	db, err := c.pool()
	if err != nil {
		return err
	}
	cols, vals, ok := c.plantRow(s)
	if !ok {
		return erasure.Permanentf("the canary subject lacks a key of dataset %s", c.ds.Name)
	}
	q := &sqlBuf{d: c.d}
	quoted := make([]string, len(cols))
	params := make([]string, len(cols))
	for i, col := range cols {
		quoted[i], params[i] = c.d.quote(col), q.arg(vals[i])
	}
	q.w("INSERT INTO ", c.plant.tableName(c.d), " (", strings.Join(quoted, ", "), ") VALUES (", strings.Join(params, ", "), ")")
	if _, err := db.ExecContext(ctx, q.String(), q.args...); err != nil {
		return c.classify(ctx, "planting the canary in "+c.plant.table, err)
	}
	return nil
}

// Remains counts the plant table's rows holding the canary subject's key values.
func (c *Conn) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	if c.plant == nil {
		return false, erasure.Permanentf("dataset %s has no canary plant", c.ds.Name)
	}
	db, err := c.pool()
	if err != nil {
		return false, err
	}
	cols, vals, ok := c.plantRow(s)
	if !ok {
		return false, nil
	}
	q := &sqlBuf{d: c.d}
	var conds []string
	for i := range c.cfg.keyColumns() {
		conds = append(conds, c.d.quote(cols[i])+" = "+q.arg(vals[i]))
	}
	q.w("SELECT COUNT(*) FROM ", c.plant.tableName(c.d), " WHERE ", strings.Join(conds, " AND "))
	var n int64
	if err := db.QueryRowContext(ctx, q.String(), q.args...).Scan(&n); err != nil {
		return false, c.classify(ctx, "reading the canary back from "+c.plant.table, err)
	}
	return n > 0, nil
}

// pool returns the connection pool without reading the dataset table's columns (the canary
// must report a missing table as its own failure, from its own statement).
func (c *Conn) pool() (*sql.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, erasure.Permanentf("dataset %s: connector is closed", c.ds.Name)
	}
	if c.db == nil {
		db, err := acquire(c.d, c.cfg.DSN)
		if err != nil {
			return nil, erasure.Permanentf("dataset %s: opening the database: %v", c.ds.Name, err)
		}
		c.db = db
	}
	return c.db, nil
}
