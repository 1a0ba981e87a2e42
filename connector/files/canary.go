package files

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"

	"erasure"
	"erasure/registry"
)

// The canary's plant block:
//
//	canary:
//	  plant:
//	    partition: canary/erasure-canary.jsonl   # relative to path; default erasure-canary.<ext>
//	    fields: { event: canary }                # further fields of the row (strings)
//
// Plant appends one row to the canary partition (created when absent): for JSON lines an
// object holding the canary subject's key value at the key's path and the fields; for CSV a
// record under the header "key field, then the fields in name order" (written when the
// partition is created). The partition must be one the snapshot's pattern selects, so that
// sweeps erase it; a gzip partition gets a gzip member appended. Plant takes the snapshot's
// lock, so it never interleaves with a sweep. Remains reads the canary partition alone for the
// planted key. Parquet snapshots take no canary: a row cannot be appended to a Parquet file.

type plantBlock struct {
	Partition string            `yaml:"partition"`
	Fields    map[string]string `yaml:"fields"`
}

// plantSpec is a canary's partition and further fields.
type plantSpec struct {
	partition string // slash-separated, relative to the snapshot
	fields    map[string]string
}

var _ erasure.Planter = (*Connector)(nil)

// buildPlant reads the canary's plant block into c; false after reporting a problem.
func buildPlant(b *registry.Build, c *Connector) bool {
	if c.cfg.Format == formatParquet {
		b.Errorf(b.Block, "files: canaries are not available for parquet snapshots (a row cannot be appended to a Parquet file)")
		return false
	}
	var pb plantBlock
	if !b.DecodePlant(&pb) {
		return false
	}
	ps := &plantSpec{partition: pb.Partition, fields: pb.Fields}
	if ps.partition == "" {
		ext := map[string]string{formatJSONL: ".jsonl", formatCSV: ".csv"}[c.cfg.Format]
		if c.cfg.Compression == "gzip" {
			ext += ".gz"
		}
		ps.partition = "erasure-canary" + ext
	}
	at := registry.Child(b.Plant, "partition")
	clean := path.Clean(ps.partition)
	base := path.Base(clean)
	switch {
	case path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(clean, 0) || strings.Contains(clean, `\`):
		b.Errorf(at, "canary.plant: partition %q must be a path inside the snapshot", ps.partition)
		return false
	case strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") || !c.matches(base):
		b.Errorf(at, "canary.plant: partition %q is not a partition of this snapshot (its name must match the snapshot's pattern), so no sweep would erase it", ps.partition)
		return false
	}
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasPrefix(seg, "_") {
			b.Errorf(at, "canary.plant: partition %q is under a hidden directory, which sweeps do not read", ps.partition)
			return false
		}
	}
	ps.partition = clean
	if c.cfg.Format == formatJSONL && len(c.path) > 0 {
		if _, clash := ps.fields[c.path[0]]; clash {
			b.Errorf(registry.Child(b.Plant, "fields"), "canary.plant: fields: %s is where the key is", c.path[0])
			return false
		}
	}
	if c.cfg.Format == formatCSV {
		if _, clash := ps.fields[c.cfg.Key.Field]; clash {
			b.Errorf(registry.Child(b.Plant, "fields"), "canary.plant: fields: %s is the key column", c.cfg.Key.Field)
			return false
		}
	}
	c.plant = ps
	return true
}

// plantRow returns the bytes of the canary's row for key value v, and the CSV header when the
// format has one.
func (c *Connector) plantRow(v string) (row, header []byte, err error) {
	names := make([]string, 0, len(c.plant.fields))
	for k := range c.plant.fields {
		names = append(names, k)
	}
	sort.Strings(names)
	if c.cfg.Format == formatCSV {
		var h, r bytes.Buffer
		hw, rw := csv.NewWriter(&h), csv.NewWriter(&r)
		hw.Write(append([]string{c.cfg.Key.Field}, names...))
		vals := []string{v}
		for _, n := range names {
			vals = append(vals, c.plant.fields[n])
		}
		rw.Write(vals)
		hw.Flush()
		rw.Flush()
		return r.Bytes(), h.Bytes(), nil
	}
	obj := map[string]any{}
	for _, n := range names {
		obj[n] = c.plant.fields[n]
	}
	// The key at its path, nested objects created on the way.
	cur := obj
	for i, seg := range c.path {
		if i == len(c.path)-1 {
			cur[seg] = v
			break
		}
		next, ok := cur[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[seg] = next
		}
		cur = next
	}
	b, err := json.Marshal(obj)
	return append(b, '\n'), nil, err
}

// Plant appends the canary's row to the canary partition, creating it (with its directories)
// when absent, and syncs it. It takes the snapshot's lock: a transient error while a sweep
// runs.
func (c *Connector) Plant(ctx context.Context, s erasure.Subject) error {
	if c.plant == nil {
		return erasure.Permanentf("files: dataset %s has no canary plant", c.name)
	}
	keys := normalizeKeys(s.Values(c.cfg.Key.Identifier))
	if len(keys) == 0 {
		return erasure.Permanentf("files: the canary subject has no %s", c.cfg.Key.Identifier)
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	name := c.abs(c.plant.partition)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return classifyIO(fmt.Errorf("files: creating the canary partition's directory: %w", err))
	}
	_, statErr := os.Stat(name)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	var data bytes.Buffer
	for _, k := range keys {
		row, header, err := c.plantRow(k)
		if err != nil {
			return erasure.Permanent(err)
		}
		if fresh && header != nil && data.Len() == 0 {
			data.Write(header)
		}
		data.Write(row)
	}
	out := data.Bytes()
	if c.gzipped(c.plant.partition) {
		// A gzip member appended: readers decompress concatenated members as one stream.
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(out)
		zw.Close()
		out = z.Bytes()
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return classifyIO(fmt.Errorf("files: opening the canary partition %s: %w", name, err))
	}
	_, err = f.Write(out)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return classifyIO(fmt.Errorf("files: writing the canary partition %s: %w", name, err))
	}
	if fresh {
		if err := syncDir(filepath.Dir(name)); err != nil {
			return classifyIO(err)
		}
	}
	return nil
}

// Remains reports whether the canary partition still has a row keyed by one of the subject's
// values (a partition that is gone has none).
func (c *Connector) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	if c.plant == nil {
		return false, erasure.Permanentf("files: dataset %s has no canary plant", c.name)
	}
	keys := normalizeKeys(s.Values(c.cfg.Key.Identifier))
	if len(keys) == 0 {
		return false, nil
	}
	if _, err := os.Stat(c.abs(c.plant.partition)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	st, err := c.process(ctx, c.plant.partition, newKeySet(keys), modeFind, nil)
	if err != nil {
		return false, interrupted(err)
	}
	return st.removed > 0, nil
}
