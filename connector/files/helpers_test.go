package files_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/connector/files"
)

// line is one record of a fixture and whether the sweep must erase it.
type line struct {
	text   string
	erased bool
}

func content(lines []line, keep bool) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		if !keep || !l.erased {
			b.WriteString(l.text)
		}
	}
	return b.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		var b bytes.Buffer
		z := gzip.NewWriter(&b)
		z.Write(data)
		z.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile returns a file's bytes, decompressed when its name ends in .gz.
func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b, err = io.ReadAll(z); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return b
}

// age sets a file's mtime an hour back, so that a rewrite would show.
func age(t *testing.T, name string) time.Time {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(name, old, old); err != nil {
		t.Fatal(err)
	}
	return old
}

func mtime(t *testing.T, name string) time.Time {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

func batch(values ...string) []erasure.SweepSubject {
	var out []erasure.SweepSubject
	for i, v := range values {
		out = append(out, erasure.SweepSubject{TaskID: int64(i + 1), Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: v})})
	}
	return out
}

func newConn(t *testing.T, cfg files.Config) *files.Connector {
	t.Helper()
	if cfg.Key.Identifier == "" {
		cfg.Key.Identifier = "user_id"
	}
	c, err := files.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetIndexKey(testIndexKey); err != nil {
		t.Fatal(err)
	}
	return c
}

// testIndexKey is the index key the tests' connectors share, as a deployment's processes
// share the one the server derives from the audit key: a connector that resumes another's
// sweep must find its journal sealed under its own key.
var testIndexKey = bytes.Repeat([]byte{0x5a}, 32)

// tree returns every file under dir (relative path → bytes), the state directory excepted.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() && d.Name() == ".erasure" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			b, _ := os.ReadFile(p)
			out[rel] = b
		}
		return nil
	})
	return out
}

func names(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// noLeftovers fails when a temporary file or a sweep journal remains.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	for name := range tree(t, dir) {
		if strings.Contains(name, ".erasure-") && !strings.Contains(name, "0123456789ab") {
			t.Errorf("temporary file %s left behind", name)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, ".erasure", "sweeps"))
	if len(ents) > 0 {
		t.Errorf("%d sweep journals left behind", len(ents))
	}
}

func sweep(t *testing.T, c *files.Connector, keys ...string) erasure.SweepResult {
	t.Helper()
	res, err := c.Sweep(context.Background(), batch(keys...))
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return res
}
