package files_test

import (
	"strings"
	"testing"

	"erasure"
	"erasure/connector/files"
	"erasure/registry"
)

func TestDriver_Build(t *testing.T) {
	const head = "version: 1\nidentifiers: [user_id, email]\ndatasets:\n"
	t.Run("BuildsAnOfflineConnector", func(t *testing.T) {
		cfg, err := registry.Parse("/etc/erasure/erasure.yaml", []byte(head+`  - name: warehouse.events
    owner: data
    connector: files
    files: { path: data/events, format: jsonl, pattern: "*.jsonl.gz", key: { field: user.id, identifier: user_id }, index: true }
`), nil)
		if err != nil {
			t.Fatal(err)
		}
		ds := cfg.Dataset("warehouse.events")
		c, ok := ds.Conn.(*files.Connector)
		if !ok || ds.Method != erasure.MethodOffline || len(ds.Keys) != 1 || ds.Keys[0] != "user_id" {
			t.Fatalf("dataset = %+v", ds)
		}
		if got := c.Config(); got.Path != "/etc/erasure/data/events" || got.StateDir != "/etc/erasure/data/events/.erasure" || got.Workers < 1 || !got.Index {
			t.Errorf("config = %+v", got)
		}
	})
	tests := []struct {
		name, block, want string
	}{
		{"UnknownKey", `{ path: /d, format: csv, key: { field: id, identifier: user_id }, colour: red }`, `:7: dataset d: files: unknown key "colour"`},
		{"UndeclaredIdentifier", `{ path: /d, format: csv, key: { field: id, identifier: phone } }`, `is not a declared identifier`},
		{"BadFormat", "\n      path: /d\n      format: xml\n      key: { field: id, identifier: user_id }", `:9: dataset d: files.format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.Parse("r.yaml", []byte(head+"  - name: d\n    owner: o\n    connector: files\n    files: "+tt.block+"\n"), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
