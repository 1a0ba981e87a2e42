package files_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"erasure"
	"erasure/connector/files"
)

var cutoff = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// stamped is a row of the retention fixtures: a user, a creation time, and whether the time is
// before the cutoff (the row must go).
type stamped struct {
	User    string `parquet:"user_id"`
	Created int64  `parquet:"created_ms"`
	Note    string `parquet:"note"`
}

// fixture returns n rows, every third one before the cutoff, some without a readable time.
func fixture(n int) (rows []stamped, old map[string]bool) {
	old = map[string]bool{}
	for i := 0; i < n; i++ {
		t := cutoff.Add(time.Duration(i%7+1) * 24 * time.Hour)
		if i%3 == 0 {
			t = cutoff.Add(-time.Duration(i+1) * time.Hour)
			old[fmt.Sprint(i)] = true
		}
		rows = append(rows, stamped{User: fmt.Sprint(i), Created: t.UnixMilli(), Note: fmt.Sprintf("row %d, with \"quotes\"", i)})
	}
	return rows, old
}

// checksum is a SHA-256 of the sorted rows: the same whatever the order or the partitioning.
func checksum(rows []string) string {
	s := append([]string(nil), rows...)
	sort.Strings(s)
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(s, "\n"))))
}

func TestRetention_RemovesExactlyTheOldRows(t *testing.T) {
	rows, old := fixture(300)
	var keep []string
	for _, r := range rows {
		if !old[r.User] {
			keep = append(keep, r.User+"|"+fmt.Sprint(r.Created))
		}
	}
	formats := []struct {
		name   string
		format string
		field  string
		write  func(t *testing.T, dir string)
		read   func(t *testing.T, dir string) []string
	}{
		{"JSONLinesRFC3339", "jsonl", "meta.created", func(t *testing.T, dir string) {
			for p := 0; p < 3; p++ {
				var b strings.Builder
				for i := p; i < len(rows); i += 3 {
					r := rows[i]
					fmt.Fprintf(&b, `{"user_id":%q,"meta":{"created":%q,"ms":%d},"note":%q}`+"\n", r.User, time.UnixMilli(r.Created).UTC().Format(time.RFC3339Nano), r.Created, r.Note)
				}
				b.WriteString(`{"user_id":"no-time","meta":{"created":null}}` + "\n" + `{"user_id":"bad-time","meta":{"created":"yesterday"}}` + "\n")
				writeFile(t, filepath.Join(dir, fmt.Sprintf("part-%d.jsonl.gz", p)), []byte(b.String()))
			}
		}, func(t *testing.T, dir string) []string {
			var out []string
			untimed := 0
			for p := 0; p < 3; p++ {
				for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, fmt.Sprintf("part-%d.jsonl.gz", p))))), "\n") {
					var row struct {
						User string `json:"user_id"`
						Meta struct {
							MS int64 `json:"ms"`
						} `json:"meta"`
					}
					if err := json.Unmarshal([]byte(l), &row); err != nil {
						t.Fatal(err)
					}
					if strings.HasSuffix(row.User, "-time") {
						untimed++ // rows without a readable time are kept
						continue
					}
					out = append(out, row.User+"|"+fmt.Sprint(row.Meta.MS))
				}
			}
			if untimed != 6 {
				t.Fatalf("%d rows without a readable time left, want all 6", untimed)
			}
			return out
		}},
		{"CSVUnixMillis", "csv", "created_ms", func(t *testing.T, dir string) {
			var b strings.Builder
			b.WriteString("user_id,created_ms,note\n")
			for _, r := range rows {
				fmt.Fprintf(&b, "%s,%d,\"%s\"\n", r.User, r.Created, strings.ReplaceAll(r.Note, `"`, `""`))
			}
			writeFile(t, filepath.Join(dir, "all.csv"), []byte(b.String()))
		}, func(t *testing.T, dir string) []string {
			var out []string
			for i, l := range strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, "all.csv")))), "\n") {
				if i == 0 {
					continue
				}
				f := strings.SplitN(l, ",", 3)
				out = append(out, f[0]+"|"+f[1])
			}
			return out
		}},
		{"ParquetUnixMillis", "parquet", "created_ms", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "events.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			w := parquet.NewGenericWriter[stamped](f, parquet.MaxRowsPerRowGroup(64))
			if _, err := w.Write(rows); err != nil {
				t.Fatal(err)
			}
			w.Close()
			f.Close()
		}, func(t *testing.T, dir string) []string {
			b, err := os.ReadFile(filepath.Join(dir, "events.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parquet.Read[stamped](strings.NewReader(string(b)), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range got {
				out = append(out, r.User+"|"+fmt.Sprint(r.Created))
			}
			return out
		}},
	}
	for _, tc := range formats {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.write(t, dir)
			before := tree(t, dir)
			c := newConn(t, files.Config{Path: dir, Format: tc.format, Key: files.Key{Field: "user_id"}}).
				WithRetention(&erasure.Retention{OlderThan: time.Hour, Column: tc.field, Format: "auto"})

			t.Run("DryRunCountsAndChangesNothing", func(t *testing.T) {
				res, err := c.Expire(context.Background(), cutoff, func(n int64) error { return erasure.ErrDryRun })
				if !errors.Is(err, erasure.ErrDryRun) || res.Expired != int64(len(old)) || res.Removed != 0 {
					t.Fatalf("%+v, %v; want %d expired", res, err, len(old))
				}
				after := tree(t, dir)
				for name, b := range before {
					if string(after[name]) != string(b) {
						t.Fatalf("dry run changed %s", name)
					}
				}
				noLeftovers(t, dir)
			})
			t.Run("AGuardRefusingChangesNothing", func(t *testing.T) {
				refused := erasure.Errorf(erasure.ECONFLICT, "guard: too many")
				if _, err := c.Expire(context.Background(), cutoff, func(n int64) error { return refused }); err != refused {
					t.Fatalf("err %v", err)
				}
				if got := checksum(tc.read(t, dir)); got == checksum(keep) {
					t.Fatal("refused run removed rows")
				}
			})
			res, err := c.Expire(context.Background(), cutoff, func(n int64) error { return nil })
			if err != nil || res.Expired != int64(len(old)) || res.Removed != int64(len(old)) {
				t.Fatalf("%+v, %v; want %d removed", res, err, len(old))
			}
			got := tc.read(t, dir)
			if len(got) != len(keep) || checksum(got) != checksum(keep) {
				t.Fatalf("kept %d rows (checksum %s), want %d (%s)", len(got), checksum(got), len(keep), checksum(keep))
			}
			noLeftovers(t, dir)
			again, err := c.Expire(context.Background(), cutoff, func(n int64) error { return nil })
			if err != nil || again.Expired != 0 {
				t.Fatalf("second run %+v, %v", again, err)
			}
		})
	}
}

func TestReplay_RemovesTheMatchingKeys(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, `{"user_id":"%d","n":%d}`+"\n", i%100, i)
	}
	writeFile(t, filepath.Join(dir, "a.jsonl"), []byte(b.String()))
	erased := map[string]bool{"3": true, "42": true, "99": true}
	c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user_id"}})
	var progressed bool
	dry, err := c.Replay(context.Background(), func(v string) bool { return erased[v] }, true, func(erasure.ReplayProgress) { progressed = true })
	if err != nil || dry.Matched != 15 || dry.Removed != 0 || dry.Scanned != 500 || !progressed {
		t.Fatalf("dry run %+v, %v (progress %v)", dry, err, progressed)
	}
	res, err := c.Replay(context.Background(), func(v string) bool { return erased[v] }, false, nil)
	if err != nil || res.Removed != 15 {
		t.Fatalf("%+v, %v", res, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, "a.jsonl")))), "\n") {
		for k := range erased {
			if strings.Contains(l, `"user_id":"`+k+`"`) {
				t.Fatalf("row of %s left: %s", k, l)
			}
		}
	}
	if n := strings.Count(string(readFile(t, filepath.Join(dir, "a.jsonl"))), "\n"); n != 485 {
		t.Fatalf("%d rows left, want 485", n)
	}
	noLeftovers(t, dir)
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, format string }{
		{"1717243200", "auto"}, {"1717243200000", "auto"}, {"1717243200000000", "auto"}, {"1717243200000000000", "auto"},
		{"2024-06-01T12:00:00Z", "auto"}, {"2024-06-01T14:00:00+02:00", "rfc3339"}, {"2024-06-01 12:00:00", "auto"},
		{"1717243200", "unix"}, {"1717243200000", "unix_ms"},
	} {
		got, ok := files.ParseTime([]byte(tc.in), tc.format)
		if !ok || !got.Equal(want) {
			t.Errorf("ParseTime(%q, %s) = %s, %v", tc.in, tc.format, got, ok)
		}
	}
	for _, bad := range []string{"", "yesterday", "2024-13-01"} {
		if _, ok := files.ParseTime([]byte(bad), "auto"); ok {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}
