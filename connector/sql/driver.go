package sqlconn

import (
	"erasure"
	"erasure/registry"
)

func init() { registry.Register("sql", sqlDriver{}) }

// sqlDriver builds `sql` datasets.
type sqlDriver struct{}

// Method is realtime: rows are erased inside the call. A dataset may declare method: offline
// to be swept instead (warehouse tables).
func (sqlDriver) Method() erasure.Method { return erasure.MethodRealtime }

// Build decodes the `sql` block strictly, validates it (names, keys, action, where, batch),
// sets ds.Keys and returns a *Conn. It performs no I/O.
func (sqlDriver) Build(b *registry.Build) erasure.Connector {
	var c Config
	if !b.Decode(b.Block, &c) {
		return nil
	}
	ps := c.validate(b.Block, b.Declared)
	for _, p := range ps {
		b.Errorf(p.n, "sql: %s", p.msg)
	}
	if err := validateProvides(b.Dataset.Provides); err != nil {
		b.Errorf(nil, "%v", err)
		return nil
	}
	if r := b.Dataset.Retention; r != nil {
		if r.Column == "" {
			b.Errorf(nil, "retention.column is required: the column holding each row's time")
			return nil
		} else if !ValidName(r.Column) {
			b.Errorf(nil, "retention.column %q is not a valid column name", clip(r.Column))
			return nil
		}
	}
	if len(ps) > 0 {
		return nil
	}
	b.Dataset.Keys = keyTypes(&c)
	conn := newConn(b.Dataset, c, b.Config)
	if b.Dataset.Canary != nil && !buildPlant(b, conn) {
		return nil
	}
	return conn
}
