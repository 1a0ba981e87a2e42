package files_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"erasure"
	"erasure/connector/files"
)

var csvFixture = []line{
	{"id,name,note\r\n", false},
	{"42,alice,plain\r\n", true},
	{"43,\"bob, jr\",\"said \"\"hi\"\"\"\r\n", false},
	{"\"42\",carol,\"multi\nline, with 42\n\"\r\n", true},
	{"44,dave,\"line one\r\nline two\"\r\n", false},
	{"7,eve,\"\"\r\n", true},
	{"420,frank,no\r\n", false},
	{"42,\"last\nrecord\",no newline at end", true},
}

func TestSweep_CSV(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.csv"), content(csvFixture, false))
	writeFile(t, filepath.Join(dir, "b.csv.gz"), content(csvFixture, false))
	c := newConn(t, files.Config{Path: dir, Format: "csv", Key: files.Key{Field: "id"}})
	res := sweep(t, c, "42", "7")

	want := content(csvFixture, true)
	for _, name := range []string{"a.csv", "b.csv.gz"} {
		if got := readFile(t, filepath.Join(dir, name)); string(got) != string(want) {
			t.Errorf("%s =\n%q\nwant\n%q", name, got, want)
		}
	}
	if res.Removed != 8 || res.Scanned != 14 {
		t.Errorf("result = %+v, want 8 of 14 rows removed", res)
	}
	noLeftovers(t, dir)

	t.Run("MissingKeyColumnIsAnErrorNamingTheFile", func(t *testing.T) {
		c := newConn(t, files.Config{Path: dir, Format: "csv", Key: files.Key{Field: "user_id"}})
		err := c.Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), "a.csv") || !strings.Contains(err.Error(), "user_id") {
			t.Errorf("Check = %v, want an error naming a.csv and the column", err)
		}
	})
}

type profile struct {
	ID   *string `parquet:"id,optional"`
	Name string  `parquet:"name"`
}

type event struct {
	N       int64    `parquet:"n"`
	User    *profile `parquet:"user,optional"`
	Tags    []string `parquet:"tags,list"`
	Score   *float64 `parquet:"score,optional"`
	Payload []byte   `parquet:"payload"`
}

func ptr[T any](v T) *T { return &v }

func events() []event {
	var out []event
	for i := int64(0); i < 50; i++ {
		e := event{N: i, Tags: []string{"t", string(rune('a' + i%26))}, Payload: bytes.Repeat([]byte{byte(i)}, int(i%5))}
		switch i % 5 {
		case 0:
			e.User = nil // an optional group that is null
		case 1:
			e.User = &profile{ID: nil, Name: "no id"}
		default:
			e.User = &profile{ID: ptr([]string{"42", "43", "7", "44"}[i%4]), Name: "u"}
		}
		if i%3 == 0 {
			e.Score = ptr(float64(i) / 2)
		}
		out = append(out, e)
	}
	return out
}

func writeParquet(t *testing.T, name string, rows []event) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[event](f, parquet.MaxRowsPerRowGroup(10), parquet.Compression(&parquet.Zstd), parquet.KeyValueMetadata("origin", "fixture"))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func readParquet(t *testing.T, name string) ([]event, *parquet.File) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := parquet.NewGenericReader[event](bytes.NewReader(b))
	rows := make([]event, pf.NumRows())
	if n, _ := r.Read(rows); n != len(rows) {
		t.Fatalf("%s: read %d of %d rows", name, n, len(rows))
	}
	return rows, pf
}

func TestSweep_Parquet(t *testing.T) {
	tests := []struct {
		name  string
		field string
		keys  []string
		erase func(e event) bool
	}{
		{"OptionalNestedColumn", "user.id", []string{"42", "7"}, func(e event) bool {
			return e.User != nil && e.User.ID != nil && (*e.User.ID == "42" || *e.User.ID == "7")
		}},
		{"IntegerColumnComparedAsString", "n", []string{"3", "17", "49", "99"}, func(e event) bool { return e.N == 3 || e.N == 17 || e.N == 49 }},
		{"OptionalDoubleInCanonicalForm", "score", []string{"3", "1.5"}, func(e event) bool {
			return e.Score != nil && (*e.Score == 3 || *e.Score == 1.5)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			orig := events()
			writeParquet(t, filepath.Join(dir, "a.parquet"), orig)
			untouched := []event{{N: 1000, User: &profile{ID: ptr("1"), Name: "x"}}}
			writeParquet(t, filepath.Join(dir, "b.parquet"), untouched)
			old := age(t, filepath.Join(dir, "b.parquet"))
			_, origFile := readParquet(t, filepath.Join(dir, "a.parquet"))

			c := newConn(t, files.Config{Path: dir, Format: "parquet", Key: files.Key{Field: tt.field}})
			res := sweep(t, c, tt.keys...)

			var want []event
			for _, e := range orig {
				if !tt.erase(e) {
					want = append(want, e)
				}
			}
			got, gotFile := readParquet(t, filepath.Join(dir, "a.parquet"))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows after the sweep differ from the rows kept, in order (%d rows, want %d)", len(got), len(want))
			}
			if res.Removed != int64(len(orig)-len(want)) || res.Removed == 0 {
				t.Errorf("removed %d rows, want %d", res.Removed, len(orig)-len(want))
			}
			var perTask int64
			for _, n := range res.PerTask {
				perTask += n
			}
			if perTask != res.Removed {
				t.Errorf("the tasks report %d rows removed (%v), the sweep %d", perTask, res.PerTask, res.Removed)
			}
			if !parquet.EqualNodes(gotFile.Schema(), origFile.Schema()) {
				t.Errorf("schema changed:\n%v\nwas\n%v", gotFile.Schema(), origFile.Schema())
			}
			if v, ok := gotFile.Lookup("origin"); !ok || v != "fixture" {
				t.Errorf("key/value metadata lost: %q, %v", v, ok)
			}
			if len(gotFile.RowGroups()) != len(origFile.RowGroups()) {
				t.Errorf("%d row groups, want %d", len(gotFile.RowGroups()), len(origFile.RowGroups()))
			}
			if got := mtime(t, filepath.Join(dir, "b.parquet")); !got.Equal(old) {
				t.Errorf("partition without a match was rewritten")
			}
			if again := sweep(t, c, tt.keys...); again.Removed != 0 {
				t.Errorf("second sweep removed %d rows", again.Removed)
			}
			noLeftovers(t, dir)
		})
	}
	t.Run("RepeatedOrMissingKeyColumnIsAnError", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, filepath.Join(dir, "a.parquet"), events())
		for _, field := range []string{"tags.list.element", "user.email"} {
			c := newConn(t, files.Config{Path: dir, Format: "parquet", Key: files.Key{Field: field}})
			_, err := c.Sweep(context.Background(), batch("42"))
			if err == nil || !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "a.parquet") {
				t.Errorf("key %s: err = %v, want a permanent error naming a.parquet", field, err)
			}
		}
	})
}

func TestSweep_BadInput(t *testing.T) {
	good := content(jsonFixture, false)
	tests := []struct {
		name   string
		format string
		bad    string
		data   func(t *testing.T, dir string) []byte
		want   string
	}{
		{"CorruptParquet", "parquet", "b.parquet", func(t *testing.T, dir string) []byte {
			writeParquet(t, filepath.Join(dir, "tmp.parquet"), events())
			b, _ := os.ReadFile(filepath.Join(dir, "tmp.parquet"))
			os.Remove(filepath.Join(dir, "tmp.parquet"))
			for i := len(b) - 200; i < len(b)-8; i++ {
				b[i] ^= 0x5a // the footer
			}
			return b
		}, "b.parquet"},
		{"TruncatedGzip", "jsonl", "b.jsonl.gz", func(t *testing.T, dir string) []byte {
			writeFile(t, filepath.Join(dir, "tmp"), nil)
			os.Remove(filepath.Join(dir, "tmp"))
			var buf bytes.Buffer
			writeFile(t, filepath.Join(dir, "x.gz"), bytes.Repeat(good, 50))
			b, _ := os.ReadFile(filepath.Join(dir, "x.gz"))
			os.Remove(filepath.Join(dir, "x.gz"))
			buf.Write(b[:len(b)/2])
			return buf.Bytes()
		}, "truncated"},
		{"MalformedJSONLine", "jsonl", "b.jsonl", func(t *testing.T, dir string) []byte {
			return append(append([]byte{}, good...), "\n{\"user\":{\"id\":\"42\"},\"n\":}\n"...)
		}, "line 13"},
		{"CSVRecordWithWrongFieldCount", "csv", "b.csv", func(t *testing.T, dir string) []byte {
			return []byte("id,name\n42,a\n43,b,extra\n")
		}, "b.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Good partitions holding the keys, on both sides of the bad one.
			for _, n := range []string{"a", "c"} {
				switch tt.format {
				case "parquet":
					writeParquet(t, filepath.Join(dir, n+".parquet"), events())
				case "csv":
					writeFile(t, filepath.Join(dir, n+".csv"), content(csvFixture, false))
				default:
					writeFile(t, filepath.Join(dir, n+".jsonl"), good)
				}
			}
			bad := tt.data(t, dir)
			if err := os.WriteFile(filepath.Join(dir, tt.bad), bad, 0o644); err != nil {
				t.Fatal(err)
			}
			before := tree(t, dir)
			field := "user.id"
			if tt.format == "csv" {
				field = "id"
			}
			c := newConn(t, files.Config{Path: dir, Format: tt.format, Key: files.Key{Field: field}, Workers: 1})
			_, err := c.Sweep(context.Background(), batch("42", "7"))
			if err == nil {
				t.Fatal("sweep succeeded on bad input")
			}
			if !erasure.IsPermanent(err) || !strings.Contains(err.Error(), filepath.Join(dir, tt.bad)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a permanent error naming %s and saying %q", err, tt.bad, tt.want)
			}
			after := tree(t, dir)
			if len(after) != len(before) {
				t.Errorf("files %v, were %v", names(after), names(before))
			}
			for n, b := range before {
				if !bytes.Equal(after[n], b) {
					t.Errorf("%s changed although the sweep failed", n)
				}
			}
			noLeftovers(t, dir)
			if ids, _ := c.Pending(); len(ids) != 0 {
				t.Errorf("pending sweeps after a failure before the swap: %v", ids)
			}
		})
	}
}

func TestSkipIndex(t *testing.T) {
	dir := t.TempDir()
	var big []line
	for i := 0; i < 2000; i++ {
		big = append(big, line{`{"user":{"id":"u` + string(rune('a'+i%26)) + `"},"pad":"` + strings.Repeat("x", 50) + `"}` + "\n", false})
	}
	for _, n := range []string{"p1", "p2", "p3", "p4"} {
		writeFile(t, filepath.Join(dir, n+".jsonl"), content(big, false))
	}
	target := append(append([]line{}, big[:10]...), line{`{"user":{"id":"42"}}` + "\n", true})
	writeFile(t, filepath.Join(dir, "p0.jsonl"), content(target, false))
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}, Index: true})
	ctx := context.Background()
	rep, err := c.BuildIndex(ctx, nil)
	if err != nil || rep.Built != 5 {
		t.Fatalf("BuildIndex = %+v, %v; want 5 sidecars", rep, err)
	}
	if rep, _ := c.BuildIndex(ctx, nil); rep.Built != 0 || rep.Current != 5 {
		t.Errorf("second BuildIndex = %+v, want all 5 current", rep)
	}
	bigSize := int64(len(content(big, false)))

	t.Run("SweepReadsOnlyPartitionsThatMayHoldAKey", func(t *testing.T) {
		var last files.Progress
		res, err := c.Sweep(files.ContextWithProgress(ctx, func(p files.Progress) { last = p }), batch("42"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Removed != 1 {
			t.Errorf("removed %d, want 1", res.Removed)
		}
		if res.Bytes >= bigSize || last.BytesRead >= bigSize {
			t.Errorf("read %d bytes (progress %d), less than one skipped partition (%d) expected", res.Bytes, last.BytesRead, bigSize)
		}
		if last.BytesTotal != 4*bigSize+int64(len(content(target, true))+len(`{"user":{"id":"42"}}`+"\n")) {
			t.Errorf("progress total %d", last.BytesTotal)
		}
		if string(readFile(t, filepath.Join(dir, "p0.jsonl"))) != string(content(target, true)) {
			t.Errorf("p0 not swept")
		}
	})
	t.Run("RewrittenPartitionGetsAFreshSidecar", func(t *testing.T) {
		if rep, _ := c.BuildIndex(ctx, nil); rep.Built != 0 {
			t.Errorf("BuildIndex after the sweep rebuilt %d sidecars, want 0", rep.Built)
		}
	})
	t.Run("StaleSidecarIsIgnored", func(t *testing.T) {
		// Append a row of the key to p3 after its sidecar was made: same name, new content.
		f, _ := os.OpenFile(filepath.Join(dir, "p3.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(`{"user":{"id":"99"}}` + "\n")
		f.Close()
		// And replace p4 with same-size content holding the key, keeping its mtime.
		p4 := filepath.Join(dir, "p4.jsonl")
		st, _ := os.Stat(p4)
		b, _ := os.ReadFile(p4)
		last := `{"user":{"id":"99"},"pad":"` + strings.Repeat("x", 50) + `"}` + "\n"
		copy(b[len(b)-len(last):], last)
		os.WriteFile(p4, b, 0o644)
		os.Chtimes(p4, st.ModTime(), st.ModTime())
		res := sweep(t, c, "99")
		if res.Removed != 2 {
			t.Errorf("removed %d rows, want 2: a stale sidecar was trusted", res.Removed)
		}
	})
}

func TestWriteExport(t *testing.T) {
	subjects := []erasure.SweepSubject{
		{TaskID: 9, Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "42"}, erasure.Identifier{Type: "email", Value: "a@example.com"})},
		{TaskID: 3, Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "<\"7\">"})},
	}
	t.Run("JSONLines", func(t *testing.T) {
		var b bytes.Buffer
		n, err := files.WriteExport(&b, "jsonl", subjects, []string{"user_id"})
		want := `{"task_id":3,"identifier":"user_id","value":"<\"7\">"}` + "\n" + `{"task_id":9,"identifier":"user_id","value":"42"}` + "\n"
		if err != nil || n != 2 || b.String() != want {
			t.Errorf("export = %d, %v\n%s\nwant\n%s", n, err, b.String(), want)
		}
	})
	t.Run("Parquet", func(t *testing.T) {
		var b bytes.Buffer
		n, err := files.WriteExport(&b, "parquet", subjects, nil)
		if err != nil || n != 3 {
			t.Fatalf("export = %d, %v", n, err)
		}
		rows, err := parquet.Read[files.ExportRow](bytes.NewReader(b.Bytes()), int64(b.Len()))
		want := []files.ExportRow{{3, "user_id", "<\"7\">"}, {9, "email", "a@example.com"}, {9, "user_id", "42"}}
		if err != nil || !reflect.DeepEqual(rows, want) {
			t.Errorf("rows = %v, %v; want %v", rows, err, want)
		}
	})
	t.Run("UnknownFormat", func(t *testing.T) {
		_, err := files.WriteExport(&bytes.Buffer{}, "csv", subjects, nil)
		if erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("err = %v, want EINVALID", err)
		}
	})
}

func TestNew_RejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  files.Config
		want string
	}{
		{"NoPath", files.Config{Format: "jsonl", Key: files.Key{Field: "id", Identifier: "user_id"}}, "path is required"},
		{"UnknownFormat", files.Config{Path: "/d", Format: "xml", Key: files.Key{Field: "id", Identifier: "user_id"}}, "not one of jsonl"},
		{"GzipParquet", files.Config{Path: "/d", Format: "parquet", Compression: "gzip", Key: files.Key{Field: "id", Identifier: "user_id"}}, "does not apply"},
		{"BadPattern", files.Config{Path: "/d", Format: "csv", Pattern: "[", Key: files.Key{Field: "id", Identifier: "user_id"}}, "pattern"},
		{"EmptySegment", files.Config{Path: "/d", Format: "jsonl", Key: files.Key{Field: "user..id", Identifier: "user_id"}}, "empty path segment"},
		{"BadIdentifier", files.Config{Path: "/d", Format: "jsonl", Key: files.Key{Field: "id", Identifier: "User-ID"}}, "not a valid identifier"},
		{"NegativeWorkers", files.Config{Path: "/d", Format: "jsonl", Workers: -1, Key: files.Key{Field: "id", Identifier: "user_id"}}, "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := files.New(tt.cfg)
			var e *erasure.Error
			if !errors.As(err, &e) || e.Code != erasure.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want EINVALID saying %q", err, tt.want)
			}
		})
	}
}
