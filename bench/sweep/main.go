// Command sweep benchmarks the files connector's sweep against the machine's limits (cat, cp)
// and against DuckDB (the peer), on a generated snapshot of JSON lines and the same rows as
// Parquet. It is heavy (gigabytes of disk and minutes of CPU): run it on demand, never in tests.
//
//	go run ./bench/sweep -gb 2 -parts 200 -subjects 10000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"

	"erasure"
	"erasure/connector/files"
)

type user struct {
	ID string `parquet:"id"`
}

type row struct {
	User    user    `parquet:"user"`
	Event   string  `parquet:"event,dict"`
	TS      int64   `parquet:"ts"`
	Page    string  `parquet:"page"`
	Session string  `parquet:"session"`
	Value   float64 `parquet:"value"`
	Agent   string  `parquet:"agent,dict"`
}

const (
	users      = 1_000_000
	localBase  = 5_000_000 // users above this live in one partition only
	localShare = 100       // one row in localShare belongs to a partition-local user
)

func main() {
	gb := flag.Float64("gb", 2, "size of the JSON lines snapshot in GB")
	parts := flag.Int("parts", 200, "partitions")
	subjects := flag.Int("subjects", 10000, "subjects erased by the main sweep")
	duck := flag.Bool("duckdb", true, "run the DuckDB peer (installs @duckdb/node-api with npm into a temp dir)")
	flag.Parse()
	root, err := os.MkdirTemp("/work", "sweepbench-")
	check(err)
	defer os.RemoveAll(root)
	var fs syscall.Statfs_t
	check(syscall.Statfs(root, &fs))
	free := float64(fs.Bavail*uint64(fs.Bsize)) / 1e9
	fmt.Printf("bench dir %s, %.1f GB free; %d CPUs\n", root, free, numCPU())
	if free < *gb*4 {
		fmt.Printf("not enough disk: need about %.1f GB\n", *gb*4)
		os.Exit(1)
	}
	jdir, pdir := filepath.Join(root, "jsonl"), filepath.Join(root, "parquet")
	t0 := time.Now()
	rows := generate(jdir, pdir, *parts, int64(*gb*1e9))
	jsize, psize := du(jdir), du(pdir)
	fmt.Printf("generated %d rows: JSON lines %.2f GB, Parquet %.2f GB, %d partitions each, in %v\n", rows, gb1(jsize), gb1(psize), *parts, time.Since(t0).Round(time.Second))

	rng := rand.New(rand.NewPCG(1, 2))
	var keys []string
	seen := map[int]bool{}
	for len(keys) < *subjects {
		u := rng.IntN(users)
		if !seen[u] {
			seen[u] = true
			keys = append(keys, "u"+strconv.Itoa(u))
		}
	}
	batch := make([]erasure.SweepSubject, len(keys))
	for i, k := range keys {
		batch[i] = erasure.SweepSubject{TaskID: int64(i), Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: k})}
	}

	// The machine's limits, on the same files.
	catJ := timeCmd("sh", "-c", "cat "+jdir+"/*.jsonl > /dev/null")
	cpCache := timeCmd("cp", "-r", jdir, filepath.Join(root, "cp-copy"))
	os.RemoveAll(filepath.Join(root, "cp-copy"))
	// The sweep syncs every file it writes, so the fair copy baseline syncs too.
	cpJ := timeCmd("sh", "-c", "cp -r "+jdir+" "+filepath.Join(root, "cp-copy")+" && sync")
	os.RemoveAll(filepath.Join(root, "cp-copy"))
	catP := timeCmd("sh", "-c", "cat "+pdir+"/*.parquet > /dev/null")
	fmt.Printf("\ncat  JSON lines: %7.0f MB/s   Parquet: %7.0f MB/s\n", mbps(jsize, catJ), mbps(psize, catP))
	fmt.Printf("cp   JSON lines: %7.0f MB/s with sync (the baseline below), %.0f MB/s into the page cache only\n", mbps(jsize, cpJ), mbps(jsize, cpCache))

	// DuckDB rewrites copies of the same files (before our sweep changes them).
	var duckJ, duckP time.Duration
	var want string
	if *duck {
		duckJ, duckP = duckdb(root, jdir, pdir, keys)
		want = duckCheck(root, pdir, true)
	}

	// Our sweep.
	sweepJ, resJ := sweepDir(jdir, "jsonl", batch, false)
	sweepP, resP := sweepDir(pdir, "parquet", batch, false)
	if want != "" {
		got := duckCheck(root, pdir, false)
		fmt.Printf("\nDuckDB reading the swept Parquet files: rows and row checksum %s; its anti-join of the originals: %s; equal: %v\n", got, want, got == want)
	}
	fmt.Printf("\nsweep of %d subjects:\n", len(keys))
	fmt.Printf("  JSON lines: %v, %.0f MB/s, %.2f M rows/s, %d rows removed of %d, %d partitions\n", sweepJ.Round(time.Millisecond), mbps(jsize, sweepJ), float64(resJ.Scanned)/sweepJ.Seconds()/1e6, resJ.Removed, resJ.Scanned, resJ.Partitions)
	fmt.Printf("  Parquet:    %v, %.0f MB/s, %.2f M rows/s, %d rows removed of %d\n", sweepP.Round(time.Millisecond), mbps(psize, sweepP), float64(resP.Scanned)/sweepP.Seconds()/1e6, resP.Removed, resP.Scanned)
	fmt.Printf("  Parquet size after the sweep: %.3f GB (%.1f%% of before; row groups with a match are re-encoded)\n", gb1(du(pdir)), 100*float64(du(pdir))/float64(psize))
	fmt.Printf("  vs cp (JSON lines): %.2fx (target >= 0.5x)\n", cpJ.Seconds()/sweepJ.Seconds())
	if duckJ > 0 {
		fmt.Printf("  vs DuckDB anti-join rewrite: JSON lines %v -> %.2fx, Parquet %v -> %.2fx (target >= 1.5x)\n",
			duckJ.Round(time.Millisecond), duckJ.Seconds()/sweepJ.Seconds(), duckP.Round(time.Millisecond), duckP.Seconds()/sweepP.Seconds())
	}

	// Subjects in 1% of the partitions, with the skip index.
	local := localUsers(*parts)
	lbatch := make([]erasure.SweepSubject, len(local))
	for i, k := range local {
		lbatch[i] = erasure.SweepSubject{TaskID: int64(i), Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: k})}
	}
	for _, f := range []struct{ dir, format string }{{jdir, "jsonl"}, {pdir, "parquet"}} {
		c := conn(f.dir, f.format, true)
		t1 := time.Now()
		ix, err := c.BuildIndex(context.Background(), nil)
		check(err)
		buildT := time.Since(t1)
		var last files.Progress
		ctx := files.ContextWithProgress(context.Background(), func(p files.Progress) { last = p })
		t2 := time.Now()
		res, err := c.Sweep(ctx, lbatch)
		check(err)
		el := time.Since(t2)
		fmt.Printf("\nskip index, %s: built %d sidecars in %v; sweep of %d subjects in %d%% of partitions: %v, %d rows removed\n",
			f.format, ix.Built, buildT.Round(time.Millisecond), len(local), 1, el.Round(time.Millisecond), res.Removed)
		fmt.Printf("  partition bytes read / total = %d / %d = %.4f; with index bytes (%d): %.4f\n",
			last.BytesRead, last.BytesTotal, float64(last.BytesRead)/float64(last.BytesTotal), last.IndexBytes,
			float64(last.BytesRead+last.IndexBytes)/float64(last.BytesTotal))
	}
}

func conn(dir, format string, index bool) *files.Connector {
	c, err := files.New(files.Config{Path: dir, Format: format, Key: files.Key{Field: "user.id", Identifier: "user_id"}, Index: index})
	check(err)
	return c
}

func sweepDir(dir, format string, batch []erasure.SweepSubject, index bool) (time.Duration, erasure.SweepResult) {
	c := conn(dir, format, index)
	t := time.Now()
	res, err := c.Sweep(context.Background(), batch)
	check(err)
	return time.Since(t), res
}

// localUsers returns the partition-local users of the first 1% of partitions.
func localUsers(parts int) []string {
	n := max(parts/100, 1)
	var out []string
	for p := 0; p < n; p++ {
		for k := 0; k < 50; k++ {
			out = append(out, "u"+strconv.Itoa(localBase+k*parts+p))
		}
	}
	return out
}

var events = []string{"view", "click", "purchase", "scroll", "signup", "logout"}
var agents = []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"}

func generate(jdir, pdir string, parts int, target int64) int64 {
	check(os.MkdirAll(jdir, 0o755))
	check(os.MkdirAll(pdir, 0o755))
	perPart := target / int64(parts)
	var total int64
	done := make(chan int64)
	sem := make(chan struct{}, numCPU())
	for p := 0; p < parts; p++ {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			done <- genPart(jdir, pdir, p, parts, perPart)
		}()
	}
	for p := 0; p < parts; p++ {
		total += <-done
	}
	return total
}

func genPart(jdir, pdir string, p, parts int, size int64) int64 {
	rng := rand.New(rand.NewPCG(uint64(p), 99))
	jf, err := os.Create(filepath.Join(jdir, fmt.Sprintf("part-%04d.jsonl", p)))
	check(err)
	bw := bufio.NewWriterSize(jf, 1<<20)
	pf, err := os.Create(filepath.Join(pdir, fmt.Sprintf("part-%04d.parquet", p)))
	check(err)
	pw := parquet.NewGenericWriter[row](pf, parquet.Compression(&parquet.Snappy), parquet.MaxRowsPerRowGroup(16384))
	var written, n int64
	buf := make([]row, 0, 1024)
	line := make([]byte, 0, 512)
	for written < size {
		var uid int
		if rng.IntN(localShare) == 0 {
			uid = localBase + rng.IntN(50)*parts + p
		} else {
			uid = rng.IntN(users)
		}
		r := row{User: user{ID: "u" + strconv.Itoa(uid)}, Event: events[rng.IntN(len(events))], TS: 1_700_000_000_000 + rng.Int64N(1e10),
			Page: fmt.Sprintf("/p/%08x/%d", rng.Uint32(), rng.IntN(1000)), Session: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			Value: float64(rng.IntN(1_000_000)) / 100, Agent: agents[rng.IntN(len(agents))]}
		line = line[:0]
		line = fmt.Appendf(line, `{"user":{"id":%q},"event":%q,"ts":%d,"page":%q,"session":%q,"value":%s,"agent":%q}`+"\n",
			r.User.ID, r.Event, r.TS, r.Page, r.Session, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Agent)
		bw.Write(line)
		written += int64(len(line))
		buf = append(buf, r)
		if len(buf) == cap(buf) {
			_, err := pw.Write(buf)
			check(err)
			buf = buf[:0]
		}
		n++
	}
	_, err = pw.Write(buf)
	check(err)
	check(pw.Close())
	check(pf.Close())
	check(bw.Flush())
	check(jf.Close())
	return n
}

// duckdb installs @duckdb/node-api into a temp dir and times DuckDB rewriting copies of both
// snapshots, file by file, with an anti-join on the erased keys.
func duckdb(root, jdir, pdir string, keys []string) (time.Duration, time.Duration) {
	dd := filepath.Join(root, "duckdb")
	check(os.MkdirAll(dd, 0o755))
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "@duckdb/node-api")
	cmd.Dir = dd
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Printf("DuckDB peer skipped: npm install @duckdb/node-api failed: %v\n%s\n", err, out)
		return 0, 0
	}
	keyFile := filepath.Join(dd, "keys.csv")
	check(os.WriteFile(keyFile, []byte("id\n"+strings.Join(keys, "\n")+"\n"), 0o644))
	script := `
const { DuckDBInstance } = require('@duckdb/node-api');
const fs = require('fs'), path = require('path');
(async () => {
  const [dir, out, format, keys] = process.argv.slice(2);
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run("CREATE TABLE keys AS SELECT id FROM read_csv('" + keys + "', header=true, columns={'id':'VARCHAR'})");
  if (format === 'check' || format === 'check-anti') {
    // Row count and an order-independent checksum of every row, as DuckDB reads them.
    const anti = format === 'check-anti' ? " ANTI JOIN keys k ON e.\"user\".id = k.id" : "";
    const r = await c.runAndReadAll("SELECT count(*)::VARCHAR || ' ' || sum(hash(e))::VARCHAR FROM read_parquet('" + dir + "/*.parquet') e" + anti);
    console.log(r.getRows()[0][0]);
    return;
  }
  fs.mkdirSync(out, { recursive: true });
  const t = Date.now();
  for (const f of fs.readdirSync(dir).sort()) {
    const src = path.join(dir, f), dst = path.join(out, f);
    const read = format === 'parquet' ? "read_parquet('" + src + "')" : "read_json('" + src + "', format='newline_delimited')";
    const fmt = format === 'parquet' ? "(FORMAT parquet, COMPRESSION snappy)" : "(FORMAT json)";
    await c.run("COPY (SELECT e.* FROM " + read + " e ANTI JOIN keys k ON e.\"user\".id = k.id) TO '" + dst + "' " + fmt);
  }
  console.log(Date.now() - t);
})().catch(e => { console.error(e); process.exit(1); });
`
	check(os.WriteFile(filepath.Join(dd, "sweep.js"), []byte(script), 0o644))
	var outSize int64
	run := func(dir, format string) time.Duration {
		out := filepath.Join(dd, "out-"+format)
		cmd := exec.Command("node", "sweep.js", dir, out, format, keyFile)
		cmd.Dir = dd
		b, err := cmd.CombinedOutput()
		outSize = du(out)
		os.RemoveAll(out)
		if err != nil {
			fmt.Printf("DuckDB %s failed: %v\n%s\n", format, err, b)
			return 0
		}
		ms, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return time.Duration(ms) * time.Millisecond
	}
	j := run(jdir, "jsonl")
	p := run(pdir, "parquet")
	fmt.Printf("DuckDB (@duckdb/node-api) anti-join rewrite: JSON lines %v (%.0f MB/s), Parquet %v (%.0f MB/s, writing %.3f GB)\n",
		j.Round(time.Millisecond), mbps(du(jdir), j), p.Round(time.Millisecond), mbps(du(pdir), p), gb1(outSize))
	return j, p
}

// duckCheck has DuckDB (installed by duckdb) count the rows of the Parquet files in dir and sum
// a hash of each, less the rows of the erased keys when anti is set. Empty when it fails.
func duckCheck(root, dir string, anti bool) string {
	dd := filepath.Join(root, "duckdb")
	mode := "check"
	if anti {
		mode = "check-anti"
	}
	cmd := exec.Command("node", "sweep.js", dir, "", mode, filepath.Join(dd, "keys.csv"))
	cmd.Dir = dd
	b, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Printf("DuckDB check failed: %v\n%s\n", err, b)
		return ""
	}
	return strings.TrimSpace(string(b))
}

func timeCmd(name string, args ...string) time.Duration {
	t := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		fmt.Printf("%s failed: %v %s\n", name, err, out)
	}
	return time.Since(t)
}

func du(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			n += info.Size()
		}
	}
	return n
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}
func gb1(n int64) float64 { return float64(n) / 1e9 }
func numCPU() int         { return max(1, runtimeNumCPU()) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
