package files_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"

	"erasure/connector/files"
)

// benchRow has the shape of the rows of bench/sweep: a nested key, dictionary columns, and
// high-entropy strings.
type benchRow struct {
	User struct {
		ID string `parquet:"id"`
	} `parquet:"user"`
	Event   string  `parquet:"event,dict"`
	TS      int64   `parquet:"ts"`
	Page    string  `parquet:"page"`
	Session string  `parquet:"session"`
	Value   float64 `parquet:"value"`
	Agent   string  `parquet:"agent,dict"`
}

const benchUsers = 1_000_000

func writeBenchPartition(b *testing.B, name string, seed uint64, rows int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	w := parquet.NewGenericWriter[benchRow](f, parquet.Compression(&parquet.Snappy), parquet.MaxRowsPerRowGroup(16384))
	buf := make([]benchRow, 0, 1024)
	for i := 0; i < rows; i++ {
		var r benchRow
		r.User.ID = "u" + strconv.Itoa(rng.IntN(benchUsers))
		r.Event = []string{"view", "click", "purchase"}[rng.IntN(3)]
		r.TS = 1_700_000_000_000 + rng.Int64N(1e10)
		r.Page = fmt.Sprintf("/p/%08x/%d", rng.Uint32(), rng.IntN(1000))
		r.Session = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		r.Value = float64(rng.IntN(1_000_000)) / 100
		r.Agent = []string{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)"}[rng.IntN(2)]
		buf = append(buf, r)
		if len(buf) == cap(buf) || i == rows-1 {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// BenchmarkSweep_Parquet sweeps 1% of a million users out of partitions of 40,000 random rows
// (every row group holds matches, so none is copied whole), with one worker and with one per
// core, and reports MB/s of Parquet read; the baseline is reading every row of the same files
// into parquet.Row values.
func BenchmarkSweep_Parquet(b *testing.B) {
	const parts, rows = 4, 40_000
	src := b.TempDir()
	var size int64
	for p := 0; p < parts; p++ {
		name := filepath.Join(src, fmt.Sprintf("part-%d.parquet", p))
		writeBenchPartition(b, name, uint64(p), rows)
		st, _ := os.Stat(name)
		size += st.Size()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []string
	for len(keys) < benchUsers/100 {
		keys = append(keys, "u"+strconv.Itoa(rng.IntN(benchUsers)))
	}
	subjects := batch(keys...)
	b.Run("ReadRows", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for p := 0; p < parts; p++ {
				f, err := os.Open(filepath.Join(src, fmt.Sprintf("part-%d.parquet", p)))
				if err != nil {
					b.Fatal(err)
				}
				st, _ := f.Stat()
				pf, err := parquet.OpenFile(f, st.Size())
				if err != nil {
					b.Fatal(err)
				}
				r := parquet.NewReader(pf)
				buf := make([]parquet.Row, 256)
				for {
					n, err := r.ReadRows(buf)
					if n == 0 && err != nil {
						break
					}
				}
				f.Close()
			}
		}
	})
	for _, workers := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("Sweep/Workers=%d", workers), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				for p := 0; p < parts; p++ {
					data, err := os.ReadFile(filepath.Join(src, fmt.Sprintf("part-%d.parquet", p)))
					if err != nil {
						b.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.parquet", p)), data, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				c, err := files.New(files.Config{Path: dir, Format: "parquet", Workers: workers, Key: files.Key{Field: "user.id", Identifier: "user_id"}})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := c.Sweep(context.Background(), subjects)
				if err != nil {
					b.Fatal(err)
				}
				if res.Removed == 0 {
					b.Fatal("nothing removed")
				}
			}
		})
	}
}
