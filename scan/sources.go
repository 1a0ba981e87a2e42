package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/connector/files"
	redisconn "erasure/connector/redis"
	sqlconn "erasure/connector/sql"
	"erasure/registry"
)

// sources builds the sources to scan from the registry: one per distinct SQL driver and DSN,
// Redis URL, and snapshot directory and format; only those of opts.Dataset when it is set.
func sources(cfg *registry.Config, opts Options) ([]source, error) {
	raw := rawBlocks(cfg.File)
	var out []source
	sqlByKey := map[string]*sqlSource{}
	redisByKey := map[string]*redisSource{}
	filesByKey := map[string]*filesSource{}
	var redisAll []*redisDataset
	for _, d := range cfg.Datasets {
		switch c := d.Conn.(type) {
		case *sqlconn.Conn:
			cc := c.Config()
			dia := dialectOf(cc.Driver)
			key := dia.name + "\x00" + cc.DSN
			s := sqlByKey[key]
			if s == nil {
				s = &sqlSource{d: dia, dsn: cc.DSN, raw: raw}
				sqlByKey[key] = s
				out = append(out, s)
			}
			s.datasets = append(s.datasets, sqlDataset{ds: d, cfg: cc})
		case *redisconn.Connector:
			rd, err := newRedisDataset(d, c)
			if err != nil {
				return nil, err
			}
			redisAll = append(redisAll, rd)
			s := redisByKey[c.URL()]
			if s == nil {
				s = &redisSource{url: c.URL(), match: opts.RedisMatch, raw: raw}
				redisByKey[c.URL()] = s
				out = append(out, s)
			}
			s.datasets = append(s.datasets, rd)
		case *files.Connector:
			fc := c.Config()
			key := filepath.Clean(fc.Path) + "\x00" + fc.Format
			s := filesByKey[key]
			if s == nil {
				s = &filesSource{conn: c, cfg: fc, raw: raw}
				filesByKey[key] = s
				out = append(out, s)
			}
			s.datasets = append(s.datasets, filesDataset{ds: d, cfg: fc})
		}
	}
	// A Redis key is covered by any dataset on the same server and database, whatever the
	// spelling of its URL.
	for _, s := range redisByKey {
		if err := s.init(redisAll); err != nil {
			return nil, err
		}
	}
	// Files datasets on the same directory in another format still name their key fields.
	for _, s := range filesByKey {
		for _, o := range filesByKey {
			if o != s && filepath.Clean(o.cfg.Path) == filepath.Clean(s.cfg.Path) {
				s.others = append(s.others, o.datasets...)
			}
		}
	}
	if opts.Dataset == "" {
		return out, nil
	}
	d := cfg.Dataset(opts.Dataset)
	if d == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not in the registry", opts.Dataset)
	}
	for _, s := range out {
		if contains(s.describe().Datasets, d.Name) {
			return []source{s}, nil
		}
	}
	return nil, erasure.Errorf(erasure.EINVALID, "dataset %s uses the %s connector: scan reads the sql, redis and files datasets", d.Name, d.Connector)
}

// rawBlocks reads the configuration file again for the connector blocks' values as written,
// before ${VAR} expansion ("accounts.users" → "sql.dsn" → "${ACCOUNTS_DSN}"), so that the
// suggested entries name the same variables instead of printing secrets. A file that cannot be
// read gives none: suggestions then use placeholders.
func rawBlocks(file string) map[string]map[string]string {
	out := map[string]map[string]string{}
	data, err := os.ReadFile(file)
	if err != nil || len(data) > registry.MaxFileBytes {
		return out
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return out
	}
	datasets := registry.Child(doc.Content[0], "datasets")
	if datasets == nil || datasets.Kind != yaml.SequenceNode {
		return out
	}
	for _, d := range datasets.Content {
		name := registry.Child(d, "name")
		if d.Kind != yaml.MappingNode || name == nil || name == d || name.Kind != yaml.ScalarNode {
			continue
		}
		vals := map[string]string{}
		for _, k := range []string{"sql.dsn", "redis.url", "files.path"} {
			block, key, _ := strings.Cut(k, ".")
			b := registry.Child(d, block)
			if b == d || b == nil {
				continue
			}
			if v := registry.Child(b, key); v != nil && v != b && v.Kind == yaml.ScalarNode {
				vals[k] = v.Value
			}
		}
		out[name.Value] = vals
	}
	return out
}

// rawValue returns the value of key ("sql.dsn") of dataset as written, or fallback.
func rawValue(raw map[string]map[string]string, dataset, key, fallback string) string {
	if v, ok := raw[dataset][key]; ok && v != "" {
		return v
	}
	return fallback
}

// yamlString quotes s for a YAML flow value.
func yamlString(s string) string {
	return fmt.Sprintf("%q", s)
}

// datasetName makes a dataset name ([a-z0-9._-], starting with a letter or digit) from parts.
func datasetName(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		for _, r := range strings.ToLower(p) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
				b.WriteRune(r)
			default:
				b.WriteByte('-')
			}
		}
	}
	s := strings.Trim(b.String(), ".-_")
	if s == "" {
		s = "unregistered"
	}
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// ownerOf returns the most common owner of ds, for a suggestion to start from.
func ownerOf(ds []*erasure.Dataset) string {
	count := map[string]int{}
	for _, d := range ds {
		count[d.Owner]++
	}
	best := ""
	for o, n := range count {
		if best == "" || n > count[best] || n == count[best] && o < best {
			best = o
		}
	}
	if best == "" {
		return "TODO"
	}
	return best
}

func names(ds []*erasure.Dataset) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
