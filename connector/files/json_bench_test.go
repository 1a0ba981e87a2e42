package files_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"erasure/connector/files"
)

// writeBenchLines writes a JSON lines partition of about size bytes with the rows of
// bench/sweep (nested key first, then six more fields).
func writeBenchLines(b *testing.B, name string, seed uint64, size int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	events := []string{"view", "click", "purchase"}
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)"}
	for n := 0; n < size; {
		line := fmt.Appendf(nil, `{"user":{"id":%q},"event":%q,"ts":%d,"page":%q,"session":%q,"value":%s,"agent":%q}`+"\n",
			"u"+strconv.Itoa(rng.IntN(benchUsers)), events[rng.IntN(3)], 1_700_000_000_000+rng.Int64N(1e10),
			fmt.Sprintf("/p/%08x/%d", rng.Uint32(), rng.IntN(1000)), fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			strconv.FormatFloat(float64(rng.IntN(1_000_000))/100, 'f', -1, 64), agents[rng.IntN(2)])
		w.Write(line)
		n += len(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// BenchmarkSweep_JSONL sweeps 1% of a million users out of JSON lines partitions (every
// partition holds matches), with one worker and with one per core, and reports MB/s of
// partition read; the baseline copies the same files and syncs them.
func BenchmarkSweep_JSONL(b *testing.B) {
	const parts, size = 16, 16 << 20
	src := b.TempDir()
	var total int64
	for p := 0; p < parts; p++ {
		name := filepath.Join(src, fmt.Sprintf("part-%d.jsonl", p))
		writeBenchLines(b, name, uint64(p), size)
		st, _ := os.Stat(name)
		total += st.Size()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []string
	for len(keys) < benchUsers/100 {
		keys = append(keys, "u"+strconv.Itoa(rng.IntN(benchUsers)))
	}
	subjects := batch(keys...)
	fresh := func(b *testing.B) string {
		dir := b.TempDir()
		for p := 0; p < parts; p++ {
			data, err := os.ReadFile(filepath.Join(src, fmt.Sprintf("part-%d.jsonl", p)))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.jsonl", p)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		return dir
	}
	b.Run("CopySync", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			dir := b.TempDir()
			for p := 0; p < parts; p++ {
				data, err := os.ReadFile(filepath.Join(src, fmt.Sprintf("part-%d.jsonl", p)))
				if err != nil {
					b.Fatal(err)
				}
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%d.jsonl", p)))
				if err != nil {
					b.Fatal(err)
				}
				f.Write(data)
				f.Sync()
				f.Close()
			}
		}
	})
	for _, workers := range []int{1, runtime.NumCPU(), 2 * runtime.NumCPU()} {
		b.Run(fmt.Sprintf("Sweep/Workers=%d", workers), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				b.StopTimer()
				dir := fresh(b)
				c, err := files.New(files.Config{Path: dir, Format: "jsonl", Workers: workers, Key: files.Key{Field: "user.id", Identifier: "user_id"}})
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
