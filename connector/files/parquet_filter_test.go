package files_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"

	"erasure"
	"erasure/connector/files"
)

type attr struct {
	K string `parquet:"k"`
	V *int32 `parquet:"v,optional"`
}

type inner struct {
	Label *string `parquet:"label,optional"`
	Codes []int64 `parquet:"codes,list"`
}

// wide has a column of every shape a row group filter must carry: a plain key, a dictionary
// column, nulls, a list, a repeated group with optional members, an optional group holding a
// list.
type wide struct {
	ID     string   `parquet:"id"`
	Kind   string   `parquet:"kind,dict"`
	N      int64    `parquet:"n"`
	Score  *float64 `parquet:"score,optional"`
	Tags   []string `parquet:"tags,list"`
	Attrs  []attr   `parquet:"attrs"`
	Nested *inner   `parquet:"nested,optional"`
}

func wideRows(n int) []wide {
	out := make([]wide, n)
	for i := range out {
		w := wide{ID: "k" + strconv.Itoa(i), Kind: []string{"a", "b", "c"}[i%3], N: int64(i) * 7}
		if i%4 != 0 {
			w.Score = ptr(float64(i) / 4)
		}
		for j := 0; j < i%5; j++ {
			w.Tags = append(w.Tags, fmt.Sprintf("t%d-%d", i, j))
		}
		for j := 0; j < i%3; j++ {
			a := attr{K: fmt.Sprintf("a%d", j)}
			if j%2 == 0 {
				a.V = ptr(int32(i + j))
			}
			w.Attrs = append(w.Attrs, a)
		}
		if i%6 != 0 {
			w.Nested = &inner{Codes: []int64{int64(i), int64(i + 1)}[:i%3]}
			if i%2 == 0 {
				w.Nested.Label = ptr("l" + strconv.Itoa(i))
			}
		}
		out[i] = w
	}
	return out
}

func writeWide(t *testing.T, name string, rows []wide, opts ...parquet.WriterOption) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[wide](f, append([]parquet.WriterOption{parquet.KeyValueMetadata("origin", "fixture")}, opts...)...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// readWide returns a file's rows, its metadata, and the number of rows of each row group.
func readWide(t *testing.T, name string) ([]wide, *parquet.File, []int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var sizes []int64
	for _, rg := range pf.RowGroups() {
		sizes = append(sizes, rg.NumRows())
	}
	rows := make([]wide, pf.NumRows())
	if len(rows) > 0 {
		r := parquet.NewGenericReader[wide](bytes.NewReader(b))
		if n, _ := r.Read(rows); n != len(rows) {
			t.Fatalf("%s: read %d of %d rows", name, n, len(rows))
		}
	}
	return rows, pf, sizes
}

func TestSweep_ParquetRowGroupFilter(t *testing.T) {
	const groupRows = 20
	big := wideRows(60)
	// A row whose list values outnumber a decoding batch (a page holds whole rows).
	for i := 0; i < 9000; i++ {
		big[31].Tags = append(big[31].Tags, "long-"+strconv.Itoa(i))
	}
	keys := func(ids ...int) []string {
		var out []string
		for _, i := range ids {
			out = append(out, "k"+strconv.Itoa(i))
		}
		return out
	}
	tests := []filterCase{
		{"FirstAndLastRowsOfEachGroup", wideRows(60), &parquet.Snappy, 0, keys(0, 19, 20, 39, 40, 59)},
		{"ScatteredOverManyPages", wideRows(60), &parquet.Zstd, 64, keys(1, 2, 3, 17, 25, 26, 44, 58)},
		{"WholeRowGroup", wideRows(60), &parquet.Snappy, 0, keys(20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 5)},
		{"EveryRow", wideRows(45), &parquet.Snappy, 0, keys(seq(45)...)},
		{"RowsAroundALongList", big, &parquet.Snappy, 1024, keys(30, 32)},
		{"TheLongList", big, &parquet.Gzip, 1024, keys(31)},
		{"LongListAmongFilteredGroups", big, &parquet.Snappy, 0, keys(5, 30, 32, 45)},
		{"GroupsWithoutAMatchBetween", wideRows(100), &parquet.Snappy, 0, keys(3, 45, 46, 99)},
		{"Uncompressed", wideRows(60), &parquet.Uncompressed, 256, keys(7, 8, 9, 59)},
	}
	// One core filters row groups one at a time; four filter up to four at once and commit them
	// in order; with little memory, a large row group is filtered alone, after those pending.
	for _, cfg := range []struct {
		name   string
		procs  int
		memory int64
	}{{"OneCore", 1, 0}, {"FourCores", 4, 0}, {"FourCoresLittleMemory", 4, 64 << 10}} {
		t.Run(cfg.name, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cfg.procs))
			if cfg.memory > 0 {
				defer files.SetParallelBytes(files.SetParallelBytes(cfg.memory))
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { checkRowGroupFilter(t, tc) })
			}
		})
	}
}

type filterCase struct {
	name  string
	rows  []wide
	codec compress.Codec
	page  int // page buffer size of the fixture (0: the default)
	keys  []string
}

// checkRowGroupFilter sweeps tc.keys out of a file of tc.rows in row groups of 20 rows and
// checks that exactly the other rows remain, in order, in the same row groups (less those
// emptied), with the same schema, metadata, codecs and dictionary columns.
func checkRowGroupFilter(t *testing.T, tc filterCase) {
	t.Helper()
	const groupRows = 20
	dir := t.TempDir()
	name := filepath.Join(dir, "a.parquet")
	opts := []parquet.WriterOption{parquet.MaxRowsPerRowGroup(groupRows), parquet.Compression(tc.codec)}
	if tc.page > 0 {
		opts = append(opts, parquet.PageBufferSize(tc.page))
	}
	writeWide(t, name, tc.rows, opts...)
	orig, origFile, origSizes := readWide(t, name)

	c := newConn(t, files.Config{Path: dir, Format: "parquet", Key: files.Key{Field: "id"}})
	res := sweep(t, c, tc.keys...)

	want := []wide{}
	var wantSizes []int64
	for g, n := range origSizes {
		kept := int64(0)
		for _, r := range orig[int64(g)*groupRows : int64(g)*groupRows+n] {
			if !slices.Contains(tc.keys, r.ID) {
				want = append(want, r)
				kept++
			}
		}
		if kept > 0 {
			wantSizes = append(wantSizes, kept)
		}
	}
	got, gotFile, gotSizes := readWide(t, name)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows after the sweep differ from the rows kept, in order (%d rows, want %d)", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("first difference at row %d: %+v, want %+v", i, got[i], want[i])
				break
			}
		}
	}
	if res.Removed != int64(len(orig)-len(want)) {
		t.Errorf("removed %d rows, want %d", res.Removed, len(orig)-len(want))
	}
	if !reflect.DeepEqual(gotSizes, wantSizes) {
		t.Errorf("row groups of %v rows, want %v", gotSizes, wantSizes)
	}
	if !parquet.EqualNodes(gotFile.Schema(), origFile.Schema()) {
		t.Errorf("schema changed:\n%v\nwas\n%v", gotFile.Schema(), origFile.Schema())
	}
	if v, ok := gotFile.Lookup("origin"); !ok || v != "fixture" {
		t.Errorf("key/value metadata lost: %q, %v", v, ok)
	}
	origCols := origFile.Metadata().RowGroups[0].Columns
	for _, rg := range gotFile.Metadata().RowGroups {
		for i, col := range rg.Columns {
			path := col.MetaData.PathInSchema
			if col.MetaData.Codec != origCols[i].MetaData.Codec {
				t.Errorf("column %v: codec %v, was %v", path, col.MetaData.Codec, origCols[i].MetaData.Codec)
			}
			if dict := slices.Contains(col.MetaData.Encoding, format.RLEDictionary); dict != slices.Contains(origCols[i].MetaData.Encoding, format.RLEDictionary) {
				t.Errorf("column %v: dictionary encoded %v, was %v", path, dict, !dict)
			}
		}
	}
	if again := sweep(t, c, tc.keys...); again.Removed != 0 {
		t.Errorf("second sweep removed %d rows", again.Removed)
	}
	noLeftovers(t, dir)
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestSweep_ParquetCorruptPageInAFilteredRowGroup(t *testing.T) {
	for _, procs := range []int{1, 4} {
		t.Run(fmt.Sprintf("Cores%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			dir := t.TempDir()
			name := filepath.Join(dir, "a.parquet")
			writeWide(t, name, wideRows(100), parquet.MaxRowsPerRowGroup(20), parquet.Compression(&parquet.Snappy))
			_, pf, _ := readWide(t, name)
			b, _ := os.ReadFile(name)
			// The page header of column n in the second row group; the key column is intact, so
			// the scan finds matches in every row group and the rewrite meets the damage.
			var off int64 = -1
			for _, col := range pf.Metadata().RowGroups[1].Columns {
				if slices.Equal(col.MetaData.PathInSchema, []string{"n"}) {
					off = col.MetaData.DataPageOffset
				}
			}
			if off < 0 {
				t.Fatal("column n not found")
			}
			for i := off; i < off+16; i++ {
				b[i] = 0xff
			}
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			before := tree(t, dir)

			c := newConn(t, files.Config{Path: dir, Format: "parquet", Key: files.Key{Field: "id"}})
			_, err := c.Sweep(context.Background(), batch("k5", "k25", "k45", "k65", "k85"))
			if err == nil {
				t.Fatal("sweep succeeded over a corrupt page")
			}
			if !erasure.IsPermanent(err) || !strings.Contains(err.Error(), name) {
				t.Errorf("err = %v, want a permanent error naming %s", err, name)
			}
			after := tree(t, dir)
			if !reflect.DeepEqual(after, before) {
				t.Errorf("files changed although the sweep failed: %v, were %v", names(after), names(before))
			}
			noLeftovers(t, dir)
		})
	}
}
