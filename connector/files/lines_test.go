package files_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"erasure/connector/files"
)

// bigLines returns about 12 MiB of JSON lines (several of the sweep's read chunks), whose rows
// keyed "gone" sit at chunk boundaries, in runs, first, last (without a newline), and beside
// lines longer than a chunk.
func bigLines() []line {
	var lines []line
	add := func(key, pad string) {
		lines = append(lines, line{fmt.Sprintf(`{"user":{"id":%q},"n":%d,"pad":%q}`+"\n", key, len(lines), pad), key == "gone"})
	}
	add("gone", "first")
	for i := 0; i < 120_000; i++ {
		key := fmt.Sprintf("k%d", i)
		if i%997 == 0 || (i >= 5000 && i < 5010) {
			key = "gone"
		}
		add(key, strings.Repeat("x", i%150))
		if i == 60_000 {
			add("kept-long", strings.Repeat("y", 5<<20))
			add("gone", strings.Repeat("z", 5<<20))
		}
	}
	lines[len(lines)-1] = line{`{"user":{"id":"gone"},"n":"last"}`, true}
	return lines
}

func TestSweep_JSONLinesAcrossReadChunks(t *testing.T) {
	fixture := bigLines()
	for _, name := range []string{"big.jsonl", "big.jsonl.gz"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, name), content(fixture, false))
			c := newConn(t, files.Config{Path: dir, Format: "jsonl", Key: files.Key{Field: "user.id"}})
			res := sweep(t, c, "gone")
			want := content(fixture, true)
			got := readFile(t, filepath.Join(dir, name))
			if string(got) != string(want) {
				t.Fatalf("swept partition differs from the kept lines: %d bytes, want %d", len(got), len(want))
			}
			var erased int64
			for _, l := range fixture {
				if l.erased {
					erased++
				}
			}
			if res.Removed != erased || res.Scanned != int64(len(fixture)) {
				t.Errorf("result = %+v, want %d of %d rows removed", res, erased, len(fixture))
			}
			noLeftovers(t, dir)
		})
	}
}
