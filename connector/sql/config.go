package sqlconn

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"erasure"
)

// Config is a dataset's `sql` block. See the package documentation for the meaning of each
// field; Validate states the rules.
type Config struct {
	Driver  string            `yaml:"driver"`
	DSN     string            `yaml:"dsn"`
	Schema  string            `yaml:"schema"`
	Table   string            `yaml:"table"`
	Key     *Key              `yaml:"key"`
	Keys    []Key             `yaml:"keys"`
	Action  string            `yaml:"action"`
	Columns []string          `yaml:"columns"`
	Set     map[string]string `yaml:"set"`
	Where   []Condition       `yaml:"where"`
	Batch   int               `yaml:"batch"`
	// Hide is the hide action (an UPDATE of the subject's rows) run while a request waits for
	// its grace window; nil when the dataset declares none.
	Hide *Hide `yaml:"hide"`
}

// Hide sets Columns to NULL and each column of Set to its value (bound as a parameter) in the
// subject's rows, to hide them until they are erased.
type Hide struct {
	Columns []string          `yaml:"columns"`
	Set     map[string]string `yaml:"set"`
}

// Key maps a column to the identifier type whose values it holds.
type Key struct {
	Column     string `yaml:"column"`
	Identifier string `yaml:"identifier"`
}

// Condition is one structured restriction of the rows a dataset covers. Exactly one of
// Equals, In and IsNull is set. Its values are bound as parameters, never spliced into SQL.
type Condition struct {
	Column string    `yaml:"column"`
	Equals *string   `yaml:"equals"`
	In     *[]string `yaml:"in"`
	IsNull *bool     `yaml:"is_null"`
}

// Actions.
const (
	ActionDelete = "delete"
	ActionRedact = "redact"
)

// DefaultBatch is the number of rows one statement erases when the block sets no batch.
const DefaultBatch = 1000

// MaxBatch bounds batch, so that one statement stays short.
const MaxBatch = 100_000

const maxWhereValues = 1000

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidName reports whether s may be used as a schema, table or column name: ASCII letters,
// digits and underscores, not starting with a digit, at most 63 bytes. Names are also quoted
// in statements; the pattern keeps anything that could end a quoted name out.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// dialects maps the accepted driver names to their dialect.
var dialectNames = map[string]string{
	"postgres":   "postgres",
	"postgresql": "postgres",
	"mysql":      "mysql",
	"mariadb":    "mysql",
	"sqlite":     "sqlite",
}

// problem is one validation error, at node n when the block came from YAML.
type problem struct {
	n   *yaml.Node
	msg string
}

// keyColumns returns the configured keys, whichever of key and keys was used.
func (c *Config) keyColumns() []Key {
	if c.Key != nil {
		return []Key{*c.Key}
	}
	return c.Keys
}

// setColumns returns the columns of Set, sorted, so that statements are deterministic.
func (c *Config) setColumns() []string {
	out := make([]string, 0, len(c.Set))
	for k := range c.Set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validate checks c, applying defaults (action delete, batch DefaultBatch). declared reports
// whether an identifier type is declared (nil: any valid type). n is the block's node, used
// to locate problems (nil: no lines).
func (c *Config) validate(n *yaml.Node, declared func(string) bool) []problem {
	var ps []problem
	bad := func(at *yaml.Node, format string, args ...any) {
		ps = append(ps, problem{at, fmt.Sprintf(format, args...)})
	}
	name := func(at *yaml.Node, what, s string) {
		if !ValidName(s) {
			bad(at, "%s %q is not a valid name: use letters, digits and _ (at most 63, not starting with a digit)", what, clip(s))
		}
	}

	switch d, ok := dialectNames[c.Driver]; {
	case c.Driver == "":
		bad(field(n, "driver"), "driver is required (postgres, mysql or sqlite)")
	case !ok:
		bad(field(n, "driver"), "driver %q is not known (postgres, mysql or sqlite)", clip(c.Driver))
	default:
		if c.DSN == "" {
			bad(field(n, "dsn"), "dsn is required (use ${VAR} to read it from the environment)")
		} else if d == "mysql" {
			if _, err := mysql.ParseDSN(c.DSN); err != nil {
				// The DSN may hold a password: do not echo it.
				bad(field(n, "dsn"), "dsn is not a valid MySQL DSN (user:password@tcp(host:port)/database)")
			}
		}
	}
	if c.Schema != "" {
		name(field(n, "schema"), "schema", c.Schema)
	}
	if c.Table == "" {
		bad(field(n, "table"), "table is required")
	} else {
		name(field(n, "table"), "table", c.Table)
	}

	switch {
	case c.Key != nil && c.Keys != nil:
		bad(field(n, "keys"), "set key or keys, not both")
	case c.Key == nil && len(c.Keys) == 0:
		bad(n, "key is required: key: {column: ..., identifier: ...}")
	}
	keyNodes := []*yaml.Node{field(n, "key")}
	if c.Key == nil {
		keyNodes = items(field(n, "keys"))
	}
	seen := map[string]bool{}
	for i, k := range c.keyColumns() {
		at := nth(keyNodes, i)
		switch {
		case k.Column == "":
			bad(at, "key column is required")
		case !ValidName(k.Column):
			name(field(at, "column"), "key column", k.Column)
		case seen[strings.ToLower(k.Column)]:
			bad(field(at, "column"), "key column %s is listed twice", k.Column)
		}
		seen[strings.ToLower(k.Column)] = true
		switch {
		case k.Identifier == "":
			bad(at, "key identifier is required")
		case !erasure.ValidIdentifierType(k.Identifier):
			bad(field(at, "identifier"), "key identifier %q is not a valid identifier type", clip(k.Identifier))
		case declared != nil && !declared(k.Identifier):
			bad(field(at, "identifier"), "key identifier %q is not declared in identifiers", clip(k.Identifier))
		}
	}

	switch c.Action {
	case "":
		c.Action = ActionDelete
		fallthrough
	case ActionDelete:
		if len(c.Columns) > 0 || len(c.Set) > 0 {
			bad(firstOf(field(n, "columns"), field(n, "set")), "columns and set apply to action redact only")
		}
	case ActionRedact:
		if len(c.Columns) == 0 && len(c.Set) == 0 {
			bad(field(n, "action"), "action redact needs columns (set to NULL) or set (set to a replacement)")
		}
	default:
		bad(field(n, "action"), "action %q is not known (delete or redact)", clip(c.Action))
	}
	redacted := map[string]bool{}
	for i, col := range c.Columns {
		at := nth(items(field(n, "columns")), i)
		name(at, "column", col)
		if redacted[strings.ToLower(col)] {
			bad(at, "column %s is listed twice", clip(col))
		}
		redacted[strings.ToLower(col)] = true
	}
	for _, col := range c.setColumns() {
		at := key(field(n, "set"), col)
		name(at, "set column", col)
		if redacted[strings.ToLower(col)] {
			bad(at, "column %s is both in columns (NULL) and set (replacement)", clip(col))
		}
		redacted[strings.ToLower(col)] = true
	}

	for i, w := range c.Where {
		at := nth(items(field(n, "where")), i)
		if w.Column == "" {
			bad(at, "where: column is required")
		} else {
			name(field(at, "column"), "where column", w.Column)
		}
		ops := 0
		if w.Equals != nil {
			ops++
		}
		if w.In != nil {
			ops++
			if len(*w.In) == 0 {
				bad(field(at, "in"), "where: in needs at least one value")
			} else if len(*w.In) > maxWhereValues {
				bad(field(at, "in"), "where: in has more than %d values", maxWhereValues)
			}
		}
		if w.IsNull != nil {
			ops++
		}
		if ops != 1 {
			bad(at, "where: set exactly one of equals, in, is_null")
		}
	}

	if h := c.Hide; h != nil {
		hn := field(n, "hide")
		if len(h.Columns) == 0 && len(h.Set) == 0 {
			bad(hn, "hide needs columns (set to NULL) or set (set to a value)")
		}
		for i, col := range h.Columns {
			name(nth(items(field(hn, "columns")), i), "hide column", col)
		}
		for col := range h.Set {
			name(key(field(hn, "set"), col), "hide set column", col)
		}
	}

	switch {
	case c.Batch == 0:
		c.Batch = DefaultBatch
	case c.Batch < 0 || c.Batch > MaxBatch:
		bad(field(n, "batch"), "batch must be between 1 and %d", MaxBatch)
	}
	return ps
}

// validateProvides checks the columns of the dataset's provides entries.
func validateProvides(ps []erasure.Provide) error {
	for _, p := range ps {
		if !ValidName(p.Field) {
			return fmt.Errorf("provides %s: column %q is not a valid name", p.Identifier, clip(p.Field))
		}
	}
	return nil
}

// field returns the value node of key k in mapping n, or nil.
func field(n *yaml.Node, k string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return n.Content[i+1]
		}
	}
	return nil
}

// key returns the key node of k in mapping n (for errors about the key itself), or nil.
func key(n *yaml.Node, k string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return n.Content[i]
		}
	}
	return nil
}

func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func nth(ns []*yaml.Node, i int) *yaml.Node {
	if i < len(ns) {
		return ns[i]
	}
	return nil
}

func firstOf(ns ...*yaml.Node) *yaml.Node {
	for _, n := range ns {
		if n != nil {
			return n
		}
	}
	return nil
}

// clip shortens configuration text quoted in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
