package files

import (
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"erasure"
	"erasure/registry"
)

// Config is a dataset's `files` block.
type Config struct {
	// Path is the snapshot directory. A relative path is taken from the registry file's
	// directory.
	Path string `yaml:"path"`
	// Format is jsonl, csv or parquet.
	Format string `yaml:"format"`
	// Compression is none, gzip or auto (the default: gzip for names ending in .gz). Parquet
	// files carry their own compression and accept only none or auto.
	Compression string `yaml:"compression"`
	// Pattern selects partition files by base name (path.Match syntax, such as "*.jsonl.gz").
	// Empty selects the format's usual extensions (.jsonl/.ndjson/.json, .csv, .parquet, with
	// .gz when compression allows it).
	Pattern string `yaml:"pattern"`
	// Key says where a row's subject key is and which identifier type it holds.
	Key Key `yaml:"key"`
	// Index enables the skip index: sweeps keep a sidecar of each partition's keys and read
	// only the partitions that may hold a queued key.
	Index bool `yaml:"index"`
	// Workers is how many partitions are processed at once; 0 means runtime.NumCPU().
	Workers int `yaml:"workers"`
	// StateDir holds the sweep journal and the skip index; empty means <Path>/.erasure.
	StateDir string `yaml:"state_dir"`
}

// Key locates the subject key in a row.
type Key struct {
	// Field is a dotted path into nested JSON objects (user.id), a CSV header name (taken
	// whole, dots included), or a dotted Parquet column path (optional and nested groups
	// allowed, repeated ones not).
	Field string `yaml:"field"`
	// Identifier is the identifier type whose values the field holds.
	Identifier string `yaml:"identifier"`
}

const (
	formatJSONL   = "jsonl"
	formatCSV     = "csv"
	formatParquet = "parquet"
)

// problem is one configuration error: the YAML key at fault ("" for the block) and a message.
type problem struct{ field, msg string }

// normalize fills defaults and returns every problem of c.
func (c *Config) normalize() []problem {
	var ps []problem
	add := func(field, format string, args ...any) {
		ps = append(ps, problem{field, fmt.Sprintf(format, args...)})
	}
	if c.Path == "" {
		add("path", "files.path is required")
	} else if strings.ContainsRune(c.Path, 0) {
		add("path", "files.path contains a NUL byte")
	}
	switch c.Format {
	case formatJSONL, formatCSV, formatParquet:
	case "":
		add("format", "files.format is required: jsonl, csv or parquet")
	default:
		add("format", "files.format %q is not one of jsonl, csv, parquet", c.Format)
	}
	switch c.Compression {
	case "":
		c.Compression = "auto"
	case "auto", "none":
	case "gzip":
		if c.Format == formatParquet {
			add("compression", "files.compression gzip does not apply to parquet (parquet compresses its pages itself)")
		}
	default:
		add("compression", "files.compression %q is not one of none, gzip, auto", c.Compression)
	}
	if c.Pattern != "" {
		if _, err := path.Match(c.Pattern, ""); err != nil || strings.ContainsRune(c.Pattern, '/') {
			add("pattern", "files.pattern %q is not a valid base-name pattern", c.Pattern)
		}
	}
	if c.Key.Field == "" {
		add("key", "files.key.field is required")
	} else if c.Format != formatCSV {
		for _, seg := range strings.Split(c.Key.Field, ".") {
			if seg == "" {
				add("key", "files.key.field %q has an empty path segment", c.Key.Field)
				break
			}
		}
	}
	if c.Key.Identifier == "" {
		add("key", "files.key.identifier is required")
	} else if !erasure.ValidIdentifierType(c.Key.Identifier) {
		add("key", "files.key.identifier %q is not a valid identifier type", c.Key.Identifier)
	}
	if c.Workers < 0 {
		add("workers", "files.workers must be 0 (two per core) or more")
	} else if c.Workers == 0 {
		// Two partitions per core: while one worker waits for its fsync, another computes.
		c.Workers = 2 * runtime.NumCPU()
	}
	if c.StateDir == "" && c.Path != "" {
		c.StateDir = filepath.Join(c.Path, stateDirName)
	}
	return ps
}

// stateDirName is the default state directory inside the snapshot. Names starting with "." or
// "_" are never partitions, so it is never swept.
const stateDirName = ".erasure"

func init() { registry.Register("files", driver{}) }

type driver struct{}

func (driver) Method() erasure.Method { return erasure.MethodOffline }

func (driver) Build(b *registry.Build) erasure.Connector {
	var cfg Config
	if !b.Decode(b.Block, &cfg) {
		return nil
	}
	base := ""
	if b.File != "" {
		base = filepath.Dir(b.File)
	}
	if cfg.Path != "" && !filepath.IsAbs(cfg.Path) {
		cfg.Path = filepath.Join(base, cfg.Path)
	}
	if cfg.StateDir != "" && !filepath.IsAbs(cfg.StateDir) {
		cfg.StateDir = filepath.Join(base, cfg.StateDir)
	}
	ps := cfg.normalize()
	if cfg.Key.Identifier != "" && erasure.ValidIdentifierType(cfg.Key.Identifier) && !b.Declared(cfg.Key.Identifier) {
		ps = append(ps, problem{"key", fmt.Sprintf("files.key.identifier %q is not a declared identifier", cfg.Key.Identifier)})
	}
	for _, p := range ps {
		b.Errorf(blockKey(b.Block, p.field), "%s", p.msg)
	}
	if len(ps) > 0 {
		return nil
	}
	if r := b.Dataset.Retention; r != nil {
		if r.Column == "" {
			b.Errorf(nil, "retention.column is required: the field holding each row's time (a dotted path, a CSV header, a Parquet column)")
			return nil
		}
		if cfg.Format != formatCSV && strings.Contains("."+r.Column+".", "..") {
			b.Errorf(nil, "retention.column %q has an empty path segment", r.Column)
			return nil
		}
	}
	b.Dataset.Keys = []string{cfg.Key.Identifier}
	c := newConnector(cfg)
	c.name = b.Dataset.Name
	registry.IndexKey.Use(b.Resources, func(key []byte) {
		if err := c.SetIndexKey(key); err != nil {
			c.logger().Error("skip index: the deployment's index key is refused; sidecars serve this process only", "err", err)
		}
	})
	if b.Dataset.Canary != nil && !buildPlant(b, c) {
		return nil
	}
	c.retention = b.Dataset.Retention
	return c
}

// WithRetention sets the retention policy of a connector made with New (Build sets the
// dataset's).
func (c *Connector) WithRetention(r *erasure.Retention) *Connector {
	c.retention = r
	return c
}
