package registry_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure/registry"
)

// FuzzParse feeds arbitrary files to Parse: it must never panic, and must return either a
// configuration or Errors, each located on a line of the file. The seed corpus is every
// testdata configuration plus testdata/fuzz/FuzzParse.
//
//	go test -fuzz=FuzzParse -fuzztime=60s ./registry
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := registry.Parse("fuzz.yaml", data, lookupTestEnv)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			for _, ds := range cfg.Datasets {
				if ds.Conn == nil || ds.Name == "" || !ds.Method.Valid() {
					t.Fatalf("accepted an incomplete dataset %+v", ds)
				}
			}
			return
		}
		if cfg != nil {
			t.Fatal("config returned with an error")
		}
		var errs registry.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not a non-empty registry.Errors: %T %v", err, err)
		}
		lines := countLines(data)
		for i, e := range errs {
			if e.File != "fuzz.yaml" || e.Line < 1 || e.Line > lines || e.Msg == "" {
				t.Fatalf("badly located error %q (file has %d lines)", e.Error(), lines)
			}
			if i > 0 && errs[i-1].Line > e.Line {
				t.Fatalf("errors not sorted by line: %q before %q", errs[i-1].Error(), e.Error())
			}
		}
	})
}

// countLines counts the lines of data as YAML does: \n, \r\n, \r and the Unicode breaks
// U+0085, U+2028, U+2029 end a line.
func countLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}
