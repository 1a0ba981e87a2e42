package scan

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"erasure"
	"erasure/connector/files"
)

// maxLine is the longest JSON lines row read.
const maxLine = 8 << 20

// filesDataset is a files dataset with its configuration.
type filesDataset struct {
	ds  *erasure.Dataset
	cfg files.Config
}

// filesSource is one snapshot directory in one format.
type filesSource struct {
	conn     *files.Connector
	cfg      files.Config
	raw      map[string]map[string]string
	datasets []filesDataset
	others   []filesDataset // on the same directory in another format
}

func (s *filesSource) describe() Source {
	ds := make([]*erasure.Dataset, len(s.datasets))
	for i, d := range s.datasets {
		ds[i] = d.ds
	}
	return Source{Kind: SourceFiles, Name: "files:" + s.cfg.Path + " (" + s.cfg.Format + ")", Datasets: names(ds)}
}

func (s *filesSource) scan(ctx context.Context, c *collector, src *Source) error {
	c.setup = s.cover
	parts, err := s.conn.Partitions(ctx)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return nil
	}
	quota := max(1, c.sample/len(parts))
	var failed int
	var firstErr error
	for i, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := c.sample - int(src.Rows)
		if left <= 0 {
			break
		}
		n, err := s.read(ctx, filepath.Join(s.cfg.Path, filepath.FromSlash(p.Path)), p.Size, min(quota, left), c)
		src.Rows += int64(n)
		src.Units++
		c.progress(fmt.Sprintf("%s %s: partition %d/%d %s: %s", SourceFiles, src.Name, i+1, len(parts), p.Path, plural(n, "row")))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", p.Path, err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s could not be read, first %v", plural(failed, "partition"), firstErr)
	}
	return nil
}

// cover marks a field place that a dataset keys on or reads identifiers from.
func (s *filesSource) cover(p *place) {
	for _, d := range append(append([]filesDataset(nil), s.datasets...), s.others...) {
		if p.dataset == "" {
			p.dataset = d.ds.Name
		}
		holds := ""
		if d.cfg.Key.Field == p.loc {
			holds = d.cfg.Key.Identifier
		}
		for _, pr := range d.ds.Provides {
			if pr.Field == p.loc {
				holds = pr.Identifier
			}
		}
		if holds != "" {
			p.covered, p.dataset = true, d.ds.Name
			if p.holds == nil {
				p.holds = map[string]bool{}
			}
			p.holds[holds] = true
		}
	}
}

// read reads up to n rows of one partition.
func (s *filesSource) read(ctx context.Context, name string, size int64, n int, c *collector) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if s.cfg.Format == "parquet" {
		return readParquet(ctx, f, size, n, c)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("not a gzip stream: %v", err)
		}
		defer z.Close()
		r = z
	}
	if s.cfg.Format == "csv" {
		return readCSV(ctx, r, n, c)
	}
	return readJSONLines(ctx, r, n, c)
}

func readJSONLines(ctx context.Context, r io.Reader, n int, c *collector) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	rows, bad := 0, 0
	for rows < n && sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if rows%256 == 0 && ctx.Err() != nil {
			return rows, ctx.Err()
		}
		if !c.observeJSONRow(line) {
			bad++
			continue
		}
		rows++
	}
	if err := sc.Err(); err != nil {
		return rows, err
	}
	if bad > 0 {
		return rows, fmt.Errorf("%s not a JSON object", plural(bad, "line is"))
	}
	return rows, nil
}

func readCSV(ctx context.Context, r io.Reader, n int, c *collector) (int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	places := make([]*place, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		if contains(header[:i], h) {
			continue // a repeated column name: the first one is read
		}
		places[i] = c.place(h, h, "")
	}
	rows := 0
	for rows < n {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return rows, err
		}
		if rows%256 == 0 && ctx.Err() != nil {
			return rows, ctx.Err()
		}
		rows++
		for i, v := range rec {
			if i < len(places) {
				c.observe(places[i], v)
			}
		}
	}
	return rows, nil
}

func readParquet(ctx context.Context, f *os.File, size int64, n int, c *collector) (int, error) {
	pf, err := parquet.OpenFile(f, size, parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("not a readable Parquet file: %v", err)
	}
	cols := pf.Schema().Columns()
	places := make([]*place, len(cols))
	for i, col := range cols {
		places[i] = c.place(strings.Join(col, "."), col[len(col)-1], "")
	}
	rows := 0
	buf := make([]parquet.Row, 64)
	for _, rg := range pf.RowGroups() {
		if rows >= n {
			break
		}
		rr := rg.Rows()
		for rows < n {
			if err := ctx.Err(); err != nil {
				rr.Close()
				return rows, err
			}
			k, err := rr.ReadRows(buf[:min(len(buf), n-rows)])
			for _, row := range buf[:k] {
				for _, v := range row {
					if col := v.Column(); !v.IsNull() && col >= 0 && col < len(places) {
						c.observe(places[col], parquetString(v))
					}
				}
			}
			rows += k
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				rr.Close()
				return rows, err
			}
		}
		rr.Close()
	}
	return rows, nil
}

// parquetString is a Parquet value as keys are compared (see connector/files): byte arrays as
// their bytes, numbers in decimal, booleans as true/false.
func parquetString(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	case parquet.Float, parquet.Double:
		x := v.Double()
		if v.Kind() == parquet.Float {
			x = float64(v.Float())
		}
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return v.String()
}

// suggest proposes a second dataset on the same snapshot keyed by the field: a sweep then
// erases the rows whose field holds a subject's identifier.
func (s *filesSource) suggest(p *place, t erasure.IdentifierType) string {
	if strings.Contains(p.loc, "[]") {
		return fmt.Sprintf("# %s is inside a list: a files key cannot reach it; keep %s values in a field of their own", p.loc, t.Name)
	}
	d := s.datasets[0]
	dir := rawValue(s.raw, d.ds.Name, "files.path", d.cfg.Path)
	field := datasetName(p.loc)
	extra := ""
	if d.cfg.Pattern != "" {
		extra += ", pattern: " + yamlString(d.cfg.Pattern)
	}
	if d.cfg.Compression != "" && d.cfg.Compression != "auto" {
		extra += ", compression: " + d.cfg.Compression
	}
	return fmt.Sprintf("# a second dataset on the same snapshot: its sweeps erase the rows whose %s is the subject's %s\n"+
		"- name: %s\n  owner: %s\n  connector: files\n"+
		"  files: { path: %s, format: %s%s, key: { field: %s, identifier: %s }, state_dir: %s }",
		p.loc, t.Name, datasetName(d.ds.Name, "by-"+field), d.ds.Owner, yamlString(dir), d.cfg.Format, extra,
		yamlString(p.loc), t.Name, yamlString(path.Join(dir, ".erasure-"+field)))
}
