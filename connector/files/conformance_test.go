package files_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"erasure"
	"erasure/connector/connectortest"
)

// TestConnectorContract runs the connectors' common contract on a snapshot directory of JSON
// lines partitions: each subject has a partition of its own and a row in a partition shared
// with the others.
func TestConnectorContract(t *testing.T) {
	connectortest.Run(t, connectortest.Target{
		Local: true,
		Open: func(t *testing.T) *connectortest.Service {
			dir := filepath.Join(t.TempDir(), "events")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			return &connectortest.Service{
				Registry: contractRegistry,
				Env:      map[string]string{"SNAPSHOT": dir},
				Key:      "user_id",
				Plant: func(t *testing.T, s erasure.Subject) []erasure.Identifier {
					for _, v := range s.Values("user_id") {
						writeFile(t, filepath.Join(dir, "day=1", "user-"+v+".jsonl"), []byte(fmt.Sprintf(`{"user_id":%q,"event":"login"}`+"\n", v)))
						f, err := os.OpenFile(filepath.Join(dir, "shared.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
						if err != nil {
							t.Fatal(err)
						}
						fmt.Fprintf(f, `{"user_id":%s,"event":"click"}`+"\n", v)
						if err := f.Close(); err != nil {
							t.Fatal(err)
						}
					}
					return nil
				},
				Remaining: func(t *testing.T, s erasure.Subject) int64 {
					return countRows(t, dir, s.Values("user_id"))
				},
			}
		},
		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{Registry: contractRegistry, Env: map[string]string{"SNAPSHOT": at.Path}, Key: "user_id"}
		},
	})
}

const contractRegistry = `version: 1
identifiers: [user_id, email]
datasets:
  - name: warehouse.events
    owner: data-team
    connector: files
    files: { path: "${SNAPSHOT}", format: jsonl, key: { field: user_id, identifier: user_id } }
`

// countRows counts the rows of the snapshot's partitions whose user_id is one of values,
// reading every .jsonl file but hidden ones.
func countRows(t *testing.T, dir string, values []string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(p, ".jsonl") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var row struct {
				UserID json.Number `json:"user_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				return fmt.Errorf("%s: %v", p, err)
			}
			for _, v := range values {
				if string(row.UserID) == v {
					n++
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
